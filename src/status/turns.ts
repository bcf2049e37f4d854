/**
 * Turns on the event loop for background work that may be large: status
 * bodies are parsed one slice per turn, and at most one turn runs per
 * event-loop iteration, so Checks (socket I/O) are served between any two
 * slices. Without it, 500 pods answering in the same instant, or one pod
 * answering 7 MB, would hold the loop for as long as all of it takes.
 */
const waiting: (() => void)[] = [];
let pumping = false;

/** Resolves in a later event-loop iteration than the previous turn; first come, first served. */
export function takeTurn(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (!pumping) {
      pumping = true;
      setImmediate(pump);
    }
  });
}

function pump(): void {
  // The turn's work runs in the microtasks right after this callback; the next
  // turn is queued for the next iteration's check phase, after its I/O.
  waiting.shift()?.();
  if (waiting.length > 0) setImmediate(pump);
  else pumping = false;
}

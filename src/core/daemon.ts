/**
 * What the Dify plugin daemon does on its own (PLATFORM=local), in one place:
 * the gate's state rules and Retry-After hints and the simulated daemon every
 * test trusts read these facts from here, so they cannot disagree.
 *
 * Read from langgenius/dify-plugin-daemon (main, commit bdb5642a, Aug 2026):
 * - internal/core/control_panel/server_local.go, `handleNewLocalPlugins`: each
 *   scan skips a plugin whose fails record has `RetryCount >= MAX_RETRY_COUNT`,
 *   and skips it while `time.Since(LastTriedAt) < calculateWaitTime(RetryCount)`;
 *   a failed launch stores `RetryCount + 1`, a successful one deletes the
 *   record. So `RetryCount` is the number of failed launches so far, and the
 *   wait before the next attempt is looked up with that number, not with
 *   `failures - 1`.
 * - same file, `calculateWaitTime` over `RETRY_WAIT_INTERVAL_MAP`: the largest
 *   wait whose threshold the count has reached — 0 from 0, 30 s from 3, 60 s
 *   from 8 (its 240 s row at 15 is never used: 15 failures already stop).
 * - same file, `startLocalMonitor`: one scan at start, then every 30 s; a wait
 *   that has passed is acted on at the next scan.
 * - internal/types/app/default.go: `PluginLocalLaunchingConcurrent` defaults to 2
 *   (`PLUGIN_LOCAL_LAUNCHING_CONCURRENT`, the size of the launch semaphore in
 *   internal/core/control_panel/daemon.go).
 * - internal/core/control_panel/metrics_notifier.go, `OnLocalRuntimeStartFailed`:
 *   every failed launch sets `plugin_runtime_status` to 0 and adds one to
 *   `plugin_installations_total{status="failed"}`, so that counter is the
 *   daemon's `RetryCount` for the process.
 */

/** `MAX_RETRY_COUNT`: after this many failed launches the daemon stops trying (PR #600 makes it configurable). */
export const DAEMON_MAX_RETRY_COUNT = 15;

/** `PLUGIN_LOCAL_LAUNCHING_CONCURRENT` default: launches at once. */
export const DAEMON_LAUNCH_CONCURRENCY = 2;

/** The daemon lists installed plugins at start and then every 30 s. */
export const DAEMON_SCAN_INTERVAL_MS = 30_000;

/** `RETRY_WAIT_INTERVAL_MAP` as thresholds, ascending: from `failures` failed launches on, wait `waitMs`. */
export const DAEMON_RETRY_WAITS: readonly { readonly failures: number; readonly waitMs: number }[] = [
  { failures: 0, waitMs: 0 },
  { failures: 3, waitMs: 30_000 },
  { failures: 8, waitMs: 60_000 },
];

/**
 * The daemon's wait before the next launch of a plugin that has failed
 * `failures` launches so far (`calculateWaitTime(RetryCount)`), in daemon ms.
 * The daemon acts on it at its next 30 s scan, so the real gap can be longer.
 */
export function daemonRetryWaitMs(failures: number): number {
  let wait = 0;
  for (const row of DAEMON_RETRY_WAITS) if (failures >= row.failures) wait = row.waitMs;
  return wait;
}

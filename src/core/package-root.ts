/**
 * The package root (where package.json and proto/ live), found by walking up
 * from this file: the same code runs from src/ under a loader and from dist/src/.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

export function packageRoot(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto'))) return (cached = dir);
    const up = dirname(dir);
    if (up === dir) throw new Error('plugin-gate: cannot find the package root (package.json with proto/ beside it)');
    dir = up;
  }
}

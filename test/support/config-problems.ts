/**
 * The problems a configuration loader refused with: `fn` must throw a
 * GateError `config_invalid`, whose one-line-per-key problems are returned.
 * Anything else (no throw, another error) fails the test.
 */
import assert from 'node:assert/strict';
import { GateError } from '../../src/core/errors.js';

export function configProblems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof GateError && err.code === 'config_invalid') return [...err.problems];
    throw err;
  }
  assert.fail('expected a config_invalid GateError');
}

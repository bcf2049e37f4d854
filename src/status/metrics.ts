/** Source `metrics`: `GET /metrics/` of one pod, reduced to the families the gate reads. */
import type { MetricsData, SourceResult } from './types.js';
import { parseExpositionInSlices, type ExpositionMemo } from './prometheus.js';
import { takeTurn } from './turns.js';
import { readSource, type ReadOptions } from './source.js';

/** The daemon serves `/metrics/`; `/metrics` answers a 301 there (followed if asked). */
export const METRICS_PATH = '/metrics/';
/** Ask for the classic text format, never OpenMetrics or protobuf. */
const ACCEPT = 'text/plain;version=0.0.4;q=1,*/*;q=0.1';

/**
 * `last` (one pod's previous answer, updated here) lets an unchanged answer be
 * handed on as the very same object, unparsed.
 */
export function readMetrics(address: string, opts: ReadOptions, last?: { memo: ExpositionMemo | undefined }): Promise<SourceResult<MetricsData>> {
  return readSource(address, METRICS_PATH, opts, { accept: ACCEPT }, async (res) => {
    // One slice per event-loop turn: a large body, or many pods answering at once, never holds up Checks.
    const parsed = await parseExpositionInSlices(res.body, opts.maxPlugins, last?.memo, takeTurn);
    if (!parsed.ok) return parsed.error;
    if (last !== undefined) last.memo = parsed;
    return parsed.data;
  });
}

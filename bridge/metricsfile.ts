/** The metrics JSON-lines file: one snapshot per sampler tick (100 ms), appended. */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Metrics } from '../engine/metrics/index';

/**
 * Appends one JSON line per tick of `metrics`' sampler to `path` (created if missing).
 * Returns the stop function. A write that fails (disk full, file removed) stops the
 * writer with one warning; serving goes on.
 */
export function writeMetricsFile(metrics: Metrics, path: string): () => void {
  const fd = openSync(path, 'a');
  let open = true;
  const stop = () => {
    if (!open) return;
    open = false;
    unsubscribe();
    closeSync(fd);
  };
  const unsubscribe = metrics.subscribe((snap) => {
    try {
      writeSync(fd, JSON.stringify(snap) + '\n');
    } catch (e) {
      process.emitWarning(`vtpu: metrics file ${path}: ${(e as Error).message}; no more lines are written`);
      stop();
    }
  });
  return stop;
}

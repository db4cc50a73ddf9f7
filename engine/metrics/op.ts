/** METRICS: the engine's metrics as a JSON snapshot, or as Prometheus text. */
import type { EngineContext, Instruction } from '../instruction';
import { VtpuError } from '../errors';
import type { OpInput, OpOutput } from '../types';
import { renderPrometheus } from './prometheus';

/**
 * `params.format` `"json"` (default): result is the snapshot (see MetricsSnapshot), with
 * `details` (e.g. the expert-load matrix) when `params.details` is true.
 * `"prometheus"`: result `{format}`, raw body the exposition text (UTF-8).
 */
export const METRICS: Instruction = {
  name: 'METRICS',
  run(engine: EngineContext, input: OpInput): OpOutput {
    const format = input.params.format ?? 'json';
    if (format === 'json') {
      const snap = engine.metrics.snapshot() as unknown as Record<string, unknown>;
      if (input.params.details === true) snap.details = engine.metrics.readDetails();
      return { result: snap };
    }
    if (format === 'prometheus') return { result: { format }, raw: Buffer.from(renderPrometheus(engine.metrics)) };
    throw new VtpuError('E_PARAM', `METRICS: format must be "json" or "prometheus", got ${JSON.stringify(format)}`);
  },
};

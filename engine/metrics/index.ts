/** Metrics: what the sidecar measures, as JSON snapshots and Prometheus text. */
export { Histogram, BUCKETS, PER_OCTAVE, OCTAVES, bucketOf, bucketUpperUs, quantileMs } from './histogram';
export { Metrics } from './registry';
export type { MetricsSnapshot, OpSnapshot, OpCounters, SectionReader, WindowFigures } from './registry';
export { renderPrometheus, PROMETHEUS_CONTENT_TYPE } from './prometheus';
export { METRICS } from './op';

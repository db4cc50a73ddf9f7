/**
 * The sidecar process surface: start an engine behind a ROUTER socket, and run it until a
 * signal. Options are checked here, at the boundary, with TypeErrors that name the option.
 */
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../engine/engine';
import { initChecksum } from '../engine/phext';
import { DEFAULTS } from './protocol';
import { ReadPool } from './pool';
import { ComputePool } from './compute';
import { ExpertHost } from './experts';
import { SidecarServer } from './server';
import { writeMetricsFile } from './metricsfile';
import type { HttpOptions, HttpServer } from './http/server';
import { Journal, type DurableOptions, type Recovery } from './durable/journal';
import { initSyncHash } from '../engine/sync/hash';
import { SyncService } from './sync/service';
import { applyOwnership, checkSyncOptions, type SyncOptions } from './sync/options';
import { checkExposure, checkKey } from './security';
import { claimIpc, probeIpc } from './ipc';

/** Options of {@link startSidecar}; every one has a default. */
export interface SidecarOptions extends SyncOptions {
  /** `ipc://path` or `tcp://host:port` (port `*`/0 = ephemeral). Default `ipc://<tmp>/vtpu-<pid>.sock`. */
  address?: string;
  /** Largest request, all frames together, in bytes (protocol default). */
  maxRequestBytes?: number;
  /** Most rows in one batch (protocol default). */
  maxBatch?: number;
  /** Event-loop budget of one request in ms, 0 = none (protocol default; engine/budget.ts). */
  maxLoopMs?: number;
  /** Pool worker threads (default min(4, available parallelism)). */
  threads?: number;
  /** Batched CGETs with at least this many rows go to the pool; 0 disables the pool (default 65536). */
  poolThreshold?: number;
  /** CATTEND requests of at least this many estimated flops run off the main thread; 0 disables (default 2e7). */
  computeThreshold?: number;
  /** Serve this engine instead of a new, empty one (its limits are the defaults then). */
  engine?: Engine;
  /** Record metrics (default true); false only to measure what recording costs. */
  metrics?: boolean;
  /** Append a metrics snapshot as one JSON line every 100 ms to this file (default: none). */
  metricsFile?: string;
  /** Serve HTTP/WebSocket (metrics, dashboard, SQ API) too; default off. */
  http?: HttpOptions;
  /** Keep the store in a data directory (write log + snapshots); default memory only. */
  durable?: DurableOptions;
  /** CURVE secret key (z85): clients need the matching public key; required beyond loopback unless `insecure`. */
  curveSecretKey?: string;
  /** Allow binding tcp:// beyond loopback without CURVE (default false). */
  insecure?: boolean;
  /** Most distinct clients served at once; more get E_LIMIT until one disconnects or is idle for 60 s (default 1024). */
  maxPeers?: number;
}

/** A running sidecar. */
export interface Sidecar {
  /** The bound endpoint, ephemeral tcp ports resolved. */
  readonly address: string;
  /** The engine it serves. */
  readonly engine: Engine;
  /** Requests being handled right now. */
  readonly inFlight: number;
  /** The HTTP front end, when one was asked for. */
  readonly http?: { readonly port: number; readonly url: string };
  /** What recovery from the data directory found, when the sidecar has one. */
  readonly recovery?: Recovery;
  /** Graceful stop: no new requests, in-flight ones answered, socket closed, pool destroyed, ipc file removed (if still ours). */
  close(): Promise<void>;
}

/** Default ipc address for this process. */
export function defaultAddress(): string {
  return `ipc://${join(tmpdir(), `vtpu-${process.pid}.sock`)}`;
}

/**
 * Starts a sidecar and resolves once its socket is bound. Throws TypeError on bad
 * options (synchronously checked, reported as a rejection); rejects when binding fails,
 * or when an ipc address already has a live process answering on it (./ipc).
 */
export async function startSidecar(opts: SidecarOptions = {}): Promise<Sidecar> {
  const o = checkOptions(opts);
  // Before anything else is set up: binding an ipc path a live sidecar uses would steal it.
  await probeIpc(o.address);
  // PHEXT_EXPORT checksums synchronously, so the WASM hash must be compiled before serving.
  await initChecksum();
  await initSyncHash();
  // PING reports the engine's limits, so a new engine gets the server's.
  const engine = opts.engine ?? new Engine({ maxBatch: o.maxBatch, maxRequestBytes: o.maxRequestBytes, maxLoopMs: o.maxLoopMs });
  engine.metrics.enabled = opts.metrics ?? true;
  const syncTarget = checkSyncOptions(opts);
  // Recover before serving (no request may see a half-loaded store) and before the
  // ownership guard goes on: replayed writes were acknowledged once already.
  const journal = opts.durable ? await Journal.open(engine.store, opts.durable) : undefined;
  applyOwnership(engine, opts);
  const sync = new SyncService(engine);
  const pool = o.poolThreshold > 0 ? new ReadPool(engine, { threads: o.threads, threshold: o.poolThreshold }) : undefined;
  const compute = o.computeThreshold > 0 ? new ComputePool(engine, { threads: o.threads, minFlops: o.computeThreshold }) : undefined;
  const experts = new ExpertHost(); // its thread starts on the first CEXPERTS request
  engine.metrics.detail('expert_load', () => experts.load());
  engine.metrics.section('experts_bell', () => ({ ...(experts.bellStats() ?? { calls: 0, fallbacks: 0, ms: 0 }) }));
  let server: SidecarServer;
  try {
    server = await SidecarServer.bind(engine, { address: o.address, maxRequestBytes: o.maxRequestBytes, maxBatch: o.maxBatch, pool, compute, experts, sync, curveSecretKey: o.curveSecretKey, maxPeers: o.maxPeers });
  } catch (e) {
    await pool?.destroy();
    await compute?.destroy();
    journal?.close();
    throw e;
  }
  const releaseIpc = claimIpc(server.address);
  let http: HttpServer | undefined;
  let stopFile: (() => void) | undefined;
  try {
    if (opts.http) http = await (await import('./http/server')).startHttp(server, engine, opts.http);
    if (opts.metricsFile !== undefined) stopFile = writeMetricsFile(engine.metrics, opts.metricsFile);
  } catch (e) {
    http?.close();
    await server.close();
    releaseIpc();
    await pool?.destroy();
    journal?.close();
    throw e;
  }
  // Rates and percentiles over the last second need the 100 ms sampler.
  engine.metrics.start();
  const stopSync = syncTarget && sync.every((w, fn) => server.call('CSYNC', w, 0, fn, () => 0), syncTarget, syncTarget.everyMs);
  let closed: Promise<void> | undefined;
  return {
    address: server.address,
    engine,
    http: http && { port: http.port, url: http.url },
    recovery: journal?.recovery,
    get inFlight() { return server.inFlight; },
    close: () => (closed ??= (async () => {
      http?.close();
      stopFile?.();
      stopSync?.();
      engine.metrics.stop();
      await server.close();
      journal?.close();
      await pool?.destroy();
      await compute?.destroy();
      await experts.destroy();
      releaseIpc();
    })()),
  };
}

/** Options of {@link serveForever}: the sidecar's, plus how the process ends. */
export interface ServeOptions extends SidecarOptions {
  /** Also shut down when stdin reaches EOF (the launching process died). */
  exitWithStdin?: boolean;
}

/**
 * Runs a sidecar until SIGTERM or SIGINT (or stdin EOF with `exitWithStdin`), then closes
 * it gracefully and exits 0. Prints
 * exactly one line to stdout, `vtpu sidecar listening on <address>`, once bound — the
 * Python launcher waits for it.
 */
export async function serveForever(opts: ServeOptions = {}): Promise<Sidecar> {
  const { exitWithStdin, ...sidecarOpts } = opts;
  const sidecar = await startSidecar(sidecarOpts);
  const stop = (signal: string) => {
    process.removeListener('SIGTERM', stop);
    process.removeListener('SIGINT', stop);
    // A close that hangs must not keep a stopped sidecar alive.
    setTimeout(() => process.exit(1), 10_000).unref();
    sidecar.close().then(() => process.exit(0), (e) => {
      process.stderr.write(`vtpu: close after ${signal} failed: ${(e as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (exitWithStdin) {
    // The parent holds our stdin pipe: EOF means it is gone, even after a SIGKILL.
    process.stdin.on('end', () => stop('stdin EOF'));
    process.stdin.on('error', () => stop('stdin error'));
    process.stdin.resume();
  }
  // Before the ZeroMQ line: the launcher reads everything up to that one.
  const r = sidecar.recovery;
  if (r) {
    if (r.cut) process.stderr.write(`vtpu: --recover=truncate: ${r.cut.damage}; cut off, kept in ${r.cut.copies.join(', ')}\n`);
    process.stdout.write(`vtpu data recovered ${r.snapshotRows} snapshot rows and ${r.logRecords} log records` +
      ` (${r.tornBytes} torn bytes dropped${r.cut ? `; damage cut off, copies in ${r.cut.copies.join(', ')}` : ''}) in ${r.ms.toFixed(1)} ms\n`);
  }
  if (sidecar.http) process.stdout.write(`vtpu http listening on ${sidecar.http.url}\n`);
  process.stdout.write(`vtpu sidecar listening on ${sidecar.address}\n`);
  return sidecar;
}

function checkOptions(opts: SidecarOptions) {
  if (typeof opts !== 'object' || opts === null) throw new TypeError('options must be an object');
  const known = ['address', 'maxRequestBytes', 'maxBatch', 'maxLoopMs', 'threads', 'poolThreshold', 'engine', 'metrics', 'metricsFile', 'http', 'computeThreshold', 'durable',
    'agent', 'owns', 'owners', 'sync', 'curveSecretKey', 'insecure', 'maxPeers'];
  for (const k of Object.keys(opts)) if (!known.includes(k)) throw new TypeError(`unknown option '${k}'`);
  const address = opts.address ?? defaultAddress();
  if (typeof address !== 'string' || !/^(ipc:\/\/.+|tcp:\/\/(\[[0-9a-fA-F:.]+\]|[^:/[\]]+):(\d+|\*))$/.test(address)) {
    throw new TypeError(`option 'address' must be 'ipc://<path>' or 'tcp://<host>:<port|*>', got ${JSON.stringify(address)}`);
  }
  const int = (name: keyof SidecarOptions, v: unknown, min: number, dflt: number): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new TypeError(`option '${name}' must be an integer >= ${min}, got ${String(v)}`);
    }
    return v;
  };
  if (opts.engine !== undefined && !(opts.engine instanceof Engine)) throw new TypeError(`option 'engine' must be an Engine`);
  if (opts.metricsFile !== undefined && (typeof opts.metricsFile !== 'string' || opts.metricsFile === '')) {
    throw new TypeError(`option 'metricsFile' must be a file path`);
  }
  if (opts.http !== undefined && (typeof opts.http !== 'object' || opts.http === null)) throw new TypeError(`option 'http' must be an object`);
  if (opts.curveSecretKey !== undefined) checkKey(opts.curveSecretKey, `option 'curveSecretKey'`);
  if (opts.insecure !== undefined && typeof opts.insecure !== 'boolean') throw new TypeError(`option 'insecure' must be a boolean`);
  checkExposure(address, opts.curveSecretKey, opts.insecure === true);
  return {
    address,
    curveSecretKey: opts.curveSecretKey,
    maxRequestBytes: int('maxRequestBytes', opts.maxRequestBytes, 1, opts.engine?.maxRequestBytes ?? DEFAULTS.maxRequestBytes),
    maxBatch: int('maxBatch', opts.maxBatch, 1, opts.engine?.maxBatch ?? DEFAULTS.maxBatch),
    maxLoopMs: int('maxLoopMs', opts.maxLoopMs, 0, opts.engine?.maxLoopMs ?? DEFAULTS.maxLoopMs),
    threads: int('threads', opts.threads, 1, Math.min(4, availableParallelism())),
    maxPeers: int('maxPeers', opts.maxPeers, 1, 1024),
    poolThreshold: int('poolThreshold', opts.poolThreshold, 0, 65_536),
    computeThreshold: int('computeThreshold', opts.computeThreshold, 0, 20_000_000),
  };
}

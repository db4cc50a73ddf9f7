/**
 * The ZeroMQ ROUTER loop. One receive loop reads messages and hands each to its own
 * async task (at most `maxInFlight` at once, so a slow pool read never stops reads);
 * every task catches everything and always answers, so one bad request cannot take the
 * server down. Replies go out as they finish (ids match them) through one send chain,
 * because a zeromq.js socket allows one send in progress at a time.
 */
import * as zmq from 'zeromq';
import { VtpuError } from '../engine/errors';
import { Metrics } from '../engine/metrics/index';
import type { OpInput, OpOutput } from '../engine/types';
import { RequestError, errorReply, okReply, parseRequest, peekId, rowsIn, toOpInput } from './frames';
import type { ReadPool } from './pool';
import type { ComputePool } from './compute';
import type { ExpertHost } from './experts';
import type { SyncService } from './sync/service';
import { curveServerOptions } from './security';
import { PeerLimit, isDisconnect, notifyDisconnects } from './peers';

/** What the server needs from the engine: synchronous op execution. */
export interface Executor {
  execute(op: string, input: OpInput): OpOutput;
  /** Where the server records each request; absent = a private registry. */
  readonly metrics?: Metrics;
}

/** Bytes in a list of frames. */
function frameBytes(frames: readonly Uint8Array[]): number {
  let n = 0;
  for (const f of frames) n += f.byteLength;
  return n;
}

/** Options of {@link SidecarServer}; checked by the caller (see startSidecar). */
export interface ServerOptions {
  /** ZeroMQ endpoint to bind, `ipc://…` or `tcp://host:port` (port `*` or 0 = ephemeral). */
  address: string;
  /** Requests whose frames total more bytes are refused with E_LIMIT, undecoded. */
  maxRequestBytes: number;
  /** Batches with more rows are refused with E_LIMIT. */
  maxBatch: number;
  /** Requests handled concurrently before the loop stops reading (default 64). */
  maxInFlight?: number;
  /** Worker pool for large batched reads; absent = everything runs on the main thread. */
  pool?: ReadPool;
  /** Off-main-thread CATTEND (ONNX Runtime / worker threads); absent = the engine's JS kernels inline. */
  compute?: ComputePool;
  /** The expert runtime (CEXPERTS); absent = the engine answers that op with E_INTERNAL. */
  experts?: ExpertHost;
  /** Handles CSYNC run (drives a sync with a peer); absent = CSYNC run is E_PARAM. */
  sync?: SyncService;
  /** Serve with CURVE using this z85 secret key (bridge/security.ts). */
  curveSecretKey?: string;
  /** Most distinct clients served at once (bridge/peers.ts; default 1024). */
  maxPeers?: number;
}

/**
 * Orders store access. Pool reads run on other threads against a view of the store, so
 * a write must not start while one is in flight. FIFO: a read that arrives behind a
 * waiting write waits too, so effects follow arrival order and writers cannot starve.
 */
export class Gate {
  private readers = 0;
  private writing = false;
  private readonly queue: { write: boolean; go: () => void }[] = [];

  /** Runs `fn` holding the gate shared (`write` false) or exclusive (`write` true). */
  async run<T>(write: boolean, fn: () => T | Promise<T>): Promise<T> {
    if (this.queue.length === 0 && this.free(write)) this.enter(write);
    else await new Promise<void>((go) => this.queue.push({ write, go }));
    try {
      return await fn();
    } finally {
      if (write) this.writing = false;
      else this.readers--;
      this.pump();
    }
  }

  /** Callers waiting to enter. */
  get waiting(): number {
    return this.queue.length;
  }

  /** True while nothing holds or waits on the gate. */
  get idle(): boolean {
    return this.readers === 0 && !this.writing && this.queue.length === 0;
  }

  private free(write: boolean): boolean {
    return !this.writing && (!write || this.readers === 0);
  }

  private enter(write: boolean): void {
    if (write) this.writing = true;
    else this.readers++;
  }

  private pump(): void {
    while (this.queue.length && this.free(this.queue[0].write)) {
      const w = this.queue.shift()!;
      this.enter(w.write);
      w.go();
    }
  }
}

const WRITES = new Set(['CPUT', 'CDEL', 'PHEXT_IMPORT']);

/** True when `op` with `params` changes the store or the routing table. */
export function isWrite(op: string, params: Record<string, unknown>): boolean {
  if (WRITES.has(op)) return true;
  if (op === 'CROUTE') return params.table !== undefined;
  if (op === 'CSYNC') return params.step === 'apply' || params.step === 'delete';
  if (op === 'PROGRAM' && Array.isArray(params.steps)) {
    return params.steps.some((s) => typeof s === 'object' && s !== null &&
      isWrite(String((s as { op?: unknown }).op), ((s as { params?: unknown }).params ?? {}) as Record<string, unknown>));
  }
  return false;
}

/** Replies queued per client before ROUTER drops that client's replies (README "Concurrency"). */
export const SEND_HWM = 1_000;
/** Requests queued per client before ZeroMQ stops reading from that client's connection. */
export const RECEIVE_HWM = 1_000;

/** A bound ROUTER serving one engine. Create with {@link SidecarServer.bind}. */
export class SidecarServer {
  /** The bound endpoint (ephemeral tcp ports resolved). */
  readonly address: string;
  /** The registry every request is recorded in (the engine's). */
  readonly metrics: Metrics;
  private readonly gate = new Gate();
  private readonly peers: PeerLimit;
  private readonly tasks = new Set<Promise<void>>();
  private readonly slotWaiters: (() => void)[] = [];
  private sendChain: Promise<void> = Promise.resolve();
  /** Replies handed to {@link reply} whose send has not settled yet. */
  private sending = 0;
  private closing = false;
  private loopDone: Promise<void>;

  private constructor(
    private readonly sock: zmq.Router,
    private readonly engine: Executor,
    private readonly opts: Required<Omit<ServerOptions, 'pool' | 'compute' | 'experts' | 'sync' | 'curveSecretKey'>> & { pool?: ReadPool; compute?: ComputePool; experts?: ExpertHost; sync?: SyncService },
  ) {
    this.address = sock.lastEndpoint ?? opts.address;
    this.metrics = engine.metrics ?? new Metrics();
    this.peers = new PeerLimit(opts.maxPeers);
    this.metrics.section('server', () => ({ in_flight: this.tasks.size, gate_waiting: this.gate.waiting }));
    this.loopDone = this.loop();
  }

  /** Binds `opts.address` and starts serving. Rejects (code from ZeroMQ) when binding fails. */
  static async bind(engine: Executor, opts: ServerOptions): Promise<SidecarServer> {
    const sock = new zmq.Router({
      linger: 0,
      // Per client: a client that stops reading gets at most SEND_HWM replies queued, then
      // ROUTER drops its replies (it times out) while everyone else is served as before.
      sendHighWaterMark: SEND_HWM,
      // Per client: a client flooding requests waits in its own queue, not in others'.
      receiveHighWaterMark: RECEIVE_HWM,
      ipv6: /^tcp:\/\/\[/.test(opts.address),
      ...curveServerOptions(opts.curveSecretKey),
      // Over-limit requests must reach us to be answered E_LIMIT, so no maxMessageSize.
    });
    notifyDisconnects(sock);
    try {
      await sock.bind(opts.address.replace(/^(tcp:\/\/[^:]+):0$/, '$1:*'));
    } catch (e) {
      sock.close();
      throw e;
    }
    const { curveSecretKey: _key, ...rest } = opts;
    return new SidecarServer(sock, engine, { maxInFlight: 64, maxPeers: 1024, ...rest });
  }

  /** Requests being handled right now. */
  get inFlight(): number {
    return this.tasks.size;
  }

  /**
   * Runs `fn` (engine calls of one request from another front end, e.g. HTTP) under the
   * same store gate as ZeroMQ requests, exclusive when `write`, and records it in the
   * metrics as `op`. `bytesIn` is the request's size; the reply's size comes from `size`.
   */
  async call<T>(op: string, write: boolean, bytesIn: number, fn: () => T, size: (r: T) => number): Promise<T> {
    const t0 = performance.now();
    let ok = false;
    let out = 0;
    try {
      const r = await this.gate.run(write, fn);
      ok = true;
      out = size(r);
      return r;
    } finally {
      this.metrics.record(op, performance.now() - t0, bytesIn, out, ok);
    }
  }

  /**
   * Stops taking requests (later ones are answered E_INTERNAL "closing"), waits for
   * in-flight ones to reply, then closes the socket. Idempotent.
   */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      while (this.tasks.size) await Promise.allSettled([...this.tasks]);
      await this.sendChain;
      // Replies were handed to ZeroMQ; give its I/O thread a moment to flush them, as
      // linger 0 drops whatever is still queued at close.
      await new Promise((r) => setTimeout(r, 20));
      this.sock.close();
    }
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    try {
      for await (const msg of this.sock) {
        const identity = msg[0];
        if (isDisconnect(msg)) {
          // Also what an empty request looks like: it is answered as before (ROUTER drops the
          // answer when the peer is gone), but not counted in the metrics.
          const req = this.decode(msg, identity);
          this.peers.forget(identity);
          if (req.reply) this.reply(identity, req.reply);
          continue;
        }
        if (this.closing) {
          this.reply(identity, errorReply(peekId(msg[1]), new VtpuError('E_INTERNAL', 'sidecar is closing')));
          continue;
        }
        const t0 = performance.now();
        const req = this.decode(msg, identity);
        if (req.reply) {
          this.metrics.record('INVALID', performance.now() - t0, req.bytes, frameBytes(req.reply), false);
          this.reply(identity, req.reply);
          continue;
        }
        const { id, op, input, bytes } = req;
        const pool = this.opts.pool;
        const compute = this.opts.compute;
        if (this.tasks.size === 0 && this.gate.idle && !(pool && pool.wants(op, input)) && !(compute && compute.wants(op, input)) &&
          !this.opts.experts?.wants(op) && !this.opts.sync?.wants(op, input)) {
          // Fast path: nothing else in flight, so nothing can interleave with a
          // synchronous engine call; answer without a task, gate or promise hop.
          let reply: Uint8Array[];
          let ok = true;
          try {
            reply = okReply(id, this.engine.execute(op, input));
          } catch (e) {
            reply = errorReply(id, e);
            ok = false;
          }
          this.metrics.record(op, performance.now() - t0, bytes, frameBytes(reply), ok);
          this.reply(identity, reply);
          continue;
        }
        while (this.tasks.size >= this.opts.maxInFlight) await new Promise<void>((r) => this.slotWaiters.push(r));
        const task: Promise<void> = this.handle(identity, id, op, input, t0, bytes).finally(() => {
          this.tasks.delete(task);
          this.slotWaiters.shift()?.();
        });
        this.tasks.add(task);
      }
    } catch (e) {
      // Only a closed socket ends the loop normally; anything else is a bug worth seeing.
      if (!this.closing) process.emitWarning(`vtpu: receive loop failed: ${(e as Error).message}`);
    }
  }

  /** Header and bodies → engine input, or the error reply when the request is unusable. */
  private decode(msg: Buffer[], identity: Buffer): { id: number; op: string; input: OpInput; bytes: number; reply?: undefined } | { reply: Uint8Array[]; bytes: number } {
    const frames = msg.length === 2 ? [msg[1]] : msg.slice(1);
    let id = 0;
    let total = 0;
    try {
      for (const f of frames) total += f.length;
      if (!this.peers.admit(identity)) {
        id = peekId(frames[0]);
        throw new VtpuError('E_LIMIT', `sidecar serves at most ${this.peers.max} clients (--max-peers); try again later`);
      }
      if (total > this.opts.maxRequestBytes) {
        id = peekId(frames[0]);
        throw new VtpuError('E_LIMIT', `request is ${total} bytes, over max_request_bytes ${this.opts.maxRequestBytes}`);
      }
      const req = parseRequest(frames);
      id = req.id;
      const input = toOpInput(req);
      const rows = rowsIn(input);
      if (rows > this.opts.maxBatch) throw new VtpuError('E_LIMIT', `batch of ${rows} rows is over max_batch ${this.opts.maxBatch}`);
      return { id, op: req.op, input, bytes: total };
    } catch (e) {
      return { reply: errorReply(e instanceof RequestError ? e.id : id, e), bytes: total };
    }
  }

  private async handle(identity: Buffer, id: number, op: string, input: OpInput, t0: number, bytes: number): Promise<void> {
    let reply: Uint8Array[];
    let ok = true;
    try {
      reply = okReply(id, await this.run(op, input));
    } catch (e) {
      reply = errorReply(id, e);
      ok = false;
    }
    this.metrics.record(op, performance.now() - t0, bytes, frameBytes(reply), ok);
    await this.reply(identity, reply);
  }

  private run(op: string, input: OpInput): Promise<OpOutput> {
    // Expert weights live in the runtime's thread, not the store: no gate.
    if (this.opts.experts?.wants(op)) return this.opts.experts.run(input);
    const pool = this.opts.pool;
    if (pool && pool.wants(op, input)) return this.gate.run(false, () => pool.run(op, input));
    const compute = this.opts.compute;
    // Only the input gathering holds the gate; the compute itself runs outside it.
    if (compute && compute.wants(op, input)) return compute.run(op, input, (fn) => this.gate.run(false, fn));
    // A sync holds the gate only for each local step, never across a peer round trip.
    if (this.opts.sync?.wants(op, input)) return this.opts.sync.run(input, (w, fn) => this.gate.run(w, fn));
    return this.gate.run(isWrite(op, input.params), () => this.engine.execute(op, input));
  }

  /**
   * Sends a reply. zeromq.js allows one send in progress per socket, so replies queue
   * behind the last one; when none is outstanding (the common case) it goes out now.
   */
  private reply(identity: Buffer, frames: Uint8Array[]): Promise<void> {
    const parts = frames.length === 1 ? [identity, frames[0]] : frames.length === 2 ? [identity, frames[0], frames[1]] : [identity, ...frames];
    let sent: Promise<void>;
    if (this.sending === 0) {
      try {
        sent = this.sock.send(parts);
      } catch (e) {
        sent = Promise.reject(e);
      }
    } else {
      sent = this.sendChain.then(() => this.sock.send(parts));
    }
    this.sending++;
    this.sendChain = sent.then(this.sentOne, this.sendFailed);
    return this.sendChain;
  }

  private readonly sentOne = (): void => {
    this.sending--;
  };

  private readonly sendFailed = (e: unknown): void => {
    this.sending--;
    // A vanished peer is dropped by ROUTER silently; anything else must not stop serving.
    if (!this.sock.closed) process.emitWarning(`vtpu: reply failed: ${(e as Error).message}`);
  };
}

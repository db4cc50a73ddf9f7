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
import { Gate } from './gate';
import { wantsLayout } from './tensor_layout';
import { isWrite, offloadOf } from '../engine/ops/index';
import type { Offload as Hint } from '../engine/instruction';
import { ShmLinks, type LinkHandle } from './shm/links';
import type { RouteTable } from '../engine/routes';
import { checkRouteVersion } from '../engine/shard';

/** What the server needs from the engine: synchronous op execution. */
export interface Executor {
  execute(op: string, input: OpInput): OpOutput;
  /** Runs a client's request within the event-loop budget (engine/budget.ts); absent = execute. */
  serve?(op: string, input: OpInput): OpOutput;
  /** Where the server records each request; absent = a private registry. */
  readonly metrics?: Metrics;
  /** The cluster route table, when the executor has one: requests are version-checked against it. */
  readonly routes?: RouteTable;
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
  /** Serve the shared-memory tensor path (bridge/shm/links.ts; default true). */
  shm?: boolean;
}

/**
 * A reply that is a view of the store (`rawIsView`) copied while nothing can write: into
 * the link's reply arena (warm pages, and then sent without another copy) or a new buffer.
 */
function settle(out: OpOutput, link?: LinkHandle): OpOutput {
  if (!out.rawIsView || !out.raw) return out;
  const view = out.raw;
  const block = link?.reserve(view.length);
  if (block) block.bytes.set(view);
  return { ...out, raw: block ? block.bytes : view.slice(), rawIsView: false };
}

/** The executors that take requests off the event loop (see SidecarServer.offload). */
type Offload = Hint['to'];

/** How long ZeroMQ may go on sending queued replies after the server closes. */
const CLOSE_LINGER_MS = 1_000;

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
  /** Same-host clients' shared-memory links; null when served without. */
  private readonly shm: ShmLinks | null;
  private readonly tasks = new Set<Promise<void>>();
  private readonly slotWaiters: (() => void)[] = [];
  private sendChain: Promise<void> = Promise.resolve();
  /** Replies handed to {@link reply} whose send has not settled yet. */
  private sending = 0;
  private closing = false;
  private loopDone: Promise<void>;

  private constructor(
    shm: boolean,
    private readonly sock: zmq.Router,
    private readonly engine: Executor,
    private readonly opts: Required<Omit<ServerOptions, 'pool' | 'compute' | 'experts' | 'sync' | 'curveSecretKey' | 'shm'>> & { pool?: ReadPool; compute?: ComputePool; experts?: ExpertHost; sync?: SyncService },
  ) {
    this.address = sock.lastEndpoint ?? opts.address;
    this.metrics = engine.metrics ?? new Metrics();
    this.peers = new PeerLimit(opts.maxPeers);
    this.shm = shm ? new ShmLinks() : null;
    this.metrics.section('shm', () => ({ links: this.shm?.size ?? 0, reply_bytes_held: this.shm?.outBytes ?? 0 }));
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
    const { curveSecretKey: _key, shm = true, ...rest } = opts;
    return new SidecarServer(shm, sock, engine, { maxInFlight: 64, maxPeers: 1024, ...rest });
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
      // Replies were handed to ZeroMQ: let it flush what is still queued (bounded, for a
      // client that went away) instead of dropping it as linger 0 would.
      this.sock.linger = CLOSE_LINGER_MS;
      this.sock.close();
      this.shm?.close();
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
        const { id, op, input, bytes, link } = req;
        if (op === 'SHM') {
          // Link bookkeeping only (no store access): answered here, in arrival order.
          this.answerShm(identity, id, input, t0, bytes);
          continue;
        }
        const offload = this.offload(op, input);
        if (this.tasks.size === 0 && this.gate.idle && !offload) {
          // Fast path: nothing else in flight, so nothing can interleave with a
          // synchronous engine call; answer without a task, gate or promise hop.
          let reply: Uint8Array[];
          let ok = true;
          try {
            reply = okReply(id, settle(this.serve(op, input), link), wantsLayout(input.params), link?.place);
          } catch (e) {
            reply = errorReply(id, e);
            ok = false;
          }
          this.metrics.record(op, performance.now() - t0, bytes, frameBytes(reply), ok);
          this.reply(identity, reply);
          continue;
        }
        while (this.tasks.size >= this.opts.maxInFlight) await new Promise<void>((r) => this.slotWaiters.push(r));
        const task: Promise<void> = this.handle(identity, id, op, input, t0, bytes, link, offload).finally(() => {
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
  private decode(msg: Buffer[], identity: Buffer): { id: number; op: string; input: OpInput; bytes: number; link?: LinkHandle; reply?: undefined } | { reply: Uint8Array[]; bytes: number } {
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
      // A cluster shard answers only requests routed by its own table version (engine/shard.ts).
      if (this.engine.routes) checkRouteVersion(this.engine.routes, req.op, req.params);
      let link: LinkHandle | undefined;
      if (req.shm !== undefined) {
        if (!this.shm) throw new VtpuError('E_FRAME', 'shm: this sidecar serves without shared memory');
        const r = this.shm.resolve(req.shm, req.bodies);
        total = frameBytes(r.bodies) + frameBytes(frames.slice(0, 1)); // the header and every body, wherever it travelled
        if (total > this.opts.maxRequestBytes) throw new VtpuError('E_LIMIT', `request is ${total} bytes, over max_request_bytes ${this.opts.maxRequestBytes}`);
        req.bodies = r.bodies;
        link = r.link;
      }
      const input = toOpInput(req);
      input.replyViews = true; // settle() copies them before the store gate opens
      const rows = rowsIn(input);
      if (rows > this.opts.maxBatch) throw new VtpuError('E_LIMIT', `batch of ${rows} rows is over max_batch ${this.opts.maxBatch}`);
      return { id, op: req.op, input, bytes: total, link };
    } catch (e) {
      return { reply: errorReply(e instanceof RequestError ? e.id : id, e), bytes: total };
    }
  }

  private async handle(identity: Buffer, id: number, op: string, input: OpInput, t0: number, bytes: number, link?: LinkHandle, offload?: Offload | null): Promise<void> {
    let reply: Uint8Array[];
    let ok = true;
    try {
      reply = okReply(id, await this.run(op, input, link, offload ?? null), wantsLayout(input.params), link?.place);
    } catch (e) {
      reply = errorReply(id, e);
      ok = false;
    }
    this.metrics.record(op, performance.now() - t0, bytes, frameBytes(reply), ok);
    await this.reply(identity, reply);
  }

  private answerShm(identity: Buffer, id: number, input: OpInput, t0: number, bytes: number): void {
    let reply: Uint8Array[];
    let ok = true;
    try {
      if (!this.shm) throw new VtpuError('E_PARAM', 'SHM: this sidecar serves without shared memory');
      reply = okReply(id, { result: this.shm.handle(input.params, this.opts.experts?.bellTable() ?? null) });
    } catch (e) {
      reply = errorReply(id, e);
      ok = false;
    }
    this.metrics.record('SHM', performance.now() - t0, bytes, frameBytes(reply), ok);
    this.reply(identity, reply);
  }

  private serve(op: string, input: OpInput): OpOutput {
    return this.engine.serve ? this.engine.serve(op, input) : this.engine.execute(op, input);
  }

  /** Which executor off the event loop serves this request, or null: the engine, inline. Asked once per request. */
  private offload(op: string, input: OpInput): Offload | null {
    const hint = offloadOf(op, input); // the op's file says where it may go...
    if (hint === null) return null;
    const { experts, pool, compute, sync } = this.opts; // ...and that executor, if served, whether it takes it
    switch (hint.to) {
      case 'pool': return pool?.accepts(op, hint) ? 'pool' : null;
      case 'compute': return compute?.accepts(hint) ? 'compute' : null;
      case 'experts': return experts?.accepts() ? 'experts' : null;
      case 'sync': return sync ? 'sync' : null;
    }
  }

  private run(op: string, input: OpInput, link: LinkHandle | undefined, offload: Offload | null): Promise<OpOutput> {
    const { experts, pool, compute, sync } = this.opts;
    switch (offload) {
      // Expert weights live in the runtime's thread, not the store: no gate.
      case 'experts': return (experts as ExpertHost).run(input, link);
      case 'pool': return this.gate.run(false, () => (pool as ReadPool).run(op, input));
      // Only the input gathering holds the gate; the compute itself runs outside it.
      case 'compute': return (compute as ComputePool).run(op, input, (fn) => this.gate.run(false, fn), link);
      // A sync holds the gate only for each local step, never across a peer round trip.
      case 'sync': return (sync as SyncService).run(input, (w, fn) => this.gate.run(w, fn));
      default: return this.gate.run(isWrite(op, input.params), () => settle(this.serve(op, input), link));
    }
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

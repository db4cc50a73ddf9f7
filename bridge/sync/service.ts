/**
 * The sidecar's sync front: `CSYNC {step: "run"}` requests (from a client) and the optional
 * interval trigger (`vtpu serve --sync-peer A --sync-every S`) both end up in {@link syncWith}.
 */
import { VtpuError } from '../../engine/errors';
import type { Engine } from '../../engine/engine';
import type { OpInput, OpOutput } from '../../engine/types';
import { parsePattern } from '../../engine/pattern';
import { Peer } from './peer';
import { syncWith, type GateRun, type SyncStats } from './driver';

/** A sync target: the peer, the range, how to reach it. */
export interface SyncTarget {
  peer: string;
  pattern: string;
  serverKey?: string;
  timeoutMs?: number;
  passes?: number;
}

/** Runs syncs for one engine. */
export class SyncService {
  constructor(private readonly engine: Engine) {}

  /** Handles `CSYNC {step: "run", peer, pattern, server_key?, timeout_ms?, passes?}`. */
  async run(input: OpInput, gate: GateRun): Promise<OpOutput> {
    const p = input.params;
    const int = (name: string, dflt: number, max: number): number => {
      const v = p[name] ?? dflt;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
        throw new VtpuError('E_PARAM', `CSYNC: ${name} must be an integer 1..${max}, got ${JSON.stringify(v)}`);
      }
      return v;
    };
    if (typeof p.peer !== 'string') throw new VtpuError('E_PARAM', 'CSYNC run needs peer: the peer sidecar address');
    if (typeof p.pattern !== 'string') throw new VtpuError('E_PARAM', 'CSYNC run needs pattern: the range to sync');
    if (p.server_key !== undefined && typeof p.server_key !== 'string') throw new VtpuError('E_PARAM', 'CSYNC: server_key must be a string');
    const stats = await this.sync(gate, {
      peer: p.peer, pattern: p.pattern, serverKey: p.server_key as string | undefined,
      timeoutMs: int('timeout_ms', 10_000, 3_600_000), passes: int('passes', 3, 100),
    });
    return { result: { ...stats } };
  }

  /** One sync with `t`; E_PEER when the peer fails, E_PARAM / E_PATTERN for bad targets. */
  async sync(gate: GateRun, t: SyncTarget): Promise<SyncStats> {
    parsePattern(t.pattern);
    const peer = Peer.connect(t.peer, { serverKey: t.serverKey, timeoutMs: t.timeoutMs ?? 10_000 });
    try {
      return await syncWith(this.engine, gate, peer, t.pattern, t.passes ?? 3);
    } finally {
      peer.close();
    }
  }

  /**
   * Syncs with `t` every `everyMs` (a sync still running skips a tick); failures go to stderr
   * and the next tick tries again. Returns the stop function.
   */
  every(gate: GateRun, t: SyncTarget, everyMs: number): () => void {
    let running = false;
    const timer = setInterval(() => {
      if (running) return;
      running = true;
      this.sync(gate, t).catch((e) => {
        process.stderr.write(`vtpu: sync with ${t.peer} failed: ${(e as Error).message}\n`);
      }).finally(() => {
        running = false;
      });
    }, everyMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}

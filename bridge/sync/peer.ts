/**
 * A DEALER to a sync peer: one request at a time, each answered within `timeoutMs` or failed
 * with E_PEER (the peer is unreachable or vanished). Counts the bytes both ways, split into
 * hash exchange (hello, hash, list) and data (fetch, apply, delete), for the sync stats.
 */
import * as zmq from 'zeromq';
import { VtpuError } from '../../engine/errors';
import type { OpBody } from '../../engine/types';
import { encodeBody } from '../frames';
import { VERSION } from '../protocol';

/** Options of {@link Peer}. */
export interface PeerOptions {
  /** The peer's CURVE public key (z85, 40 characters) when it serves with CURVE. */
  serverKey?: string;
  /** Milliseconds to wait for each reply (and to hand over each request). */
  timeoutMs: number;
}

/** One reply: its result object and its body frame, if any. */
export interface PeerReply {
  result: Record<string, unknown>;
  body?: Uint8Array;
}

/** A connection to one peer sidecar. Create with {@link Peer.connect}; always {@link close}. */
export class Peer {
  /** Bytes sent and received in hash-exchange steps. */
  hashBytes = 0;
  /** Bytes sent and received moving scrolls. */
  dataBytes = 0;
  /** Bytes sent to the peer. */
  sent = 0;
  /** Bytes received from the peer. */
  received = 0;
  /** Request round trips. */
  rounds = 0;
  private nextId = 1;

  private constructor(private readonly sock: zmq.Dealer, readonly address: string) {}

  /** Connects (lazily, as ZeroMQ does); E_PARAM for a malformed address or key. */
  static connect(address: string, opts: PeerOptions): Peer {
    if (typeof address !== 'string' || !/^(ipc|tcp):\/\/.+/.test(address)) {
      throw new VtpuError('E_PARAM', `CSYNC: peer must be an ipc:// or tcp:// address, got ${JSON.stringify(address)}`);
    }
    const curve: Partial<zmq.Dealer> = {};
    if (opts.serverKey !== undefined) {
      if (typeof opts.serverKey !== 'string' || !/^[0-9A-Za-z.:+=^!/*?&<>()[\]{}@%$#-]{40}$/.test(opts.serverKey)) {
        throw new VtpuError('E_PARAM', 'CSYNC: server_key must be a 40-character z85 CURVE public key');
      }
      const kp = zmq.curveKeyPair();
      Object.assign(curve, { curveServerKey: opts.serverKey, curvePublicKey: kp.publicKey, curveSecretKey: kp.secretKey });
    }
    const sock = new zmq.Dealer({
      linger: 0, immediate: true, sendTimeout: opts.timeoutMs, receiveTimeout: opts.timeoutMs, ...curve,
    });
    try {
      sock.connect(address);
    } catch (e) {
      sock.close();
      throw new VtpuError('E_PARAM', `CSYNC: cannot connect to ${address}: ${(e as Error).message}`);
    }
    return new Peer(sock, address);
  }

  /** Sends one request and waits for its reply; E_PEER on timeout or a refused request. */
  async call(op: string, params: Record<string, unknown>, body?: OpBody): Promise<PeerReply> {
    const id = this.nextId++;
    const frames: Uint8Array[] = [Buffer.from(JSON.stringify({ v: VERSION, id, op, params }))];
    const b = body && encodeBody(body);
    if (b) frames.push(b);
    const out = frames.reduce((n, f) => n + f.byteLength, 0);
    try {
      await this.sock.send(frames);
    } catch (e) {
      throw this.gone('is unreachable', e);
    }
    this.rounds++;
    for (;;) {
      let msg: Buffer[];
      try {
        msg = await this.sock.receive();
      } catch (e) {
        throw this.gone('did not answer', e);
      }
      const header = parseHeader(msg[0]);
      // A late reply to an earlier, timed-out request: not ours.
      if (header.id !== id) continue;
      const inBytes = msg.reduce((n, f) => n + f.byteLength, 0);
      this.count(op, params, out, inBytes);
      if (header.ok !== true) {
        const err = (header.error ?? {}) as { code?: string; message?: string };
        throw new VtpuError('E_PEER', `peer ${this.address} refused ${op} ${String(params.step ?? '')}: ${err.code}: ${err.message}`);
      }
      return { result: (header.result ?? {}) as Record<string, unknown>, body: msg[1] };
    }
  }

  /** Closes the socket; idempotent. */
  close(): void {
    if (!this.sock.closed) this.sock.close();
  }

  private count(op: string, params: Record<string, unknown>, out: number, inBytes: number): void {
    this.sent += out;
    this.received += inBytes;
    const hash = op === 'CSYNC' && (params.step === 'hello' || params.step === 'hash' || params.step === 'list');
    if (hash) this.hashBytes += out + inBytes;
    else this.dataBytes += out + inBytes;
  }

  private gone(what: string, e: unknown): VtpuError {
    const why = (e as { code?: string }).code === 'EAGAIN' ? 'timed out' : (e as Error).message;
    return new VtpuError('E_PEER', `sync peer ${this.address} ${what} (${why}); nothing partial was applied`);
  }
}

function parseHeader(f: Buffer | undefined): Record<string, unknown> {
  try {
    const h = JSON.parse(f ? f.toString('utf8') : '');
    if (typeof h === 'object' && h !== null) return h as Record<string, unknown>;
  } catch {
    // fall through: a peer that speaks garbage is not a vtpu sidecar
  }
  throw new VtpuError('E_PEER', 'sync peer sent a reply that is not a vtpu header');
}

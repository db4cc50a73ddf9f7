/**
 * The connection limit: at most `max` distinct clients (ZeroMQ routing identities: one per
 * client connection, so per Python thread) are served at once. A client stops counting when
 * its connection closes (the ROUTER's disconnect notification, see {@link notifyDisconnects})
 * or after `idleMs` without a message; a new client beyond the limit is answered E_LIMIT (by
 * the server) until one leaves.
 */
import type * as zmq from 'zeromq';

/** libzmq's ZMQ_ROUTER_NOTIFY (a draft option, built into zeromq.js) and ZMQ_NOTIFY_DISCONNECT. */
const ZMQ_ROUTER_NOTIFY = 97;
const ZMQ_NOTIFY_DISCONNECT = 2;

/**
 * Makes `sock` deliver an empty message from a peer whose connection closed, so the limit
 * frees its slot at once instead of after the idle expiry. A valid request is never empty
 * (it has a header), so an empty message either is the notification or frees the slot of a
 * client that sent garbage (it is admitted again with its next message).
 */
export function notifyDisconnects(sock: zmq.Router): void {
  // zeromq.js types only the stable options; the setter itself is public at run time.
  (sock as unknown as { setInt32Option(option: number, value: number): void }).setInt32Option(ZMQ_ROUTER_NOTIFY, ZMQ_NOTIFY_DISCONNECT);
}

/** True for the ROUTER's disconnect notification: `[identity, <empty>]`. */
export function isDisconnect(msg: Buffer[]): boolean {
  return msg.length === 2 && msg[1].length === 0;
}

/** Tracks the clients a ROUTER has heard from recently and whose connection is open. */
export class PeerLimit {
  private readonly seen = new Map<string, number>();

  constructor(readonly max: number, private readonly idleMs = 60_000) {}

  /** Clients counted now. */
  get size(): number {
    return this.seen.size;
  }

  /** Notes a message from `identity` at `now`; false when it is a new client over the limit. */
  admit(identity: Buffer, now = Date.now()): boolean {
    const key = identity.toString('latin1');
    if (this.seen.has(key)) {
      // Re-insert: Map order is then least recently seen first, which sweep relies on.
      this.seen.delete(key);
      this.seen.set(key, now);
      return true;
    }
    if (this.seen.size >= this.max) this.sweep(now);
    if (this.seen.size >= this.max) return false;
    this.seen.set(key, now);
    return true;
  }

  /** Stops counting `identity` (its connection closed). */
  forget(identity: Buffer): void {
    this.seen.delete(identity.toString('latin1'));
  }

  private sweep(now: number): void {
    for (const [k, t] of this.seen) {
      if (now - t < this.idleMs) break;
      this.seen.delete(k);
    }
  }
}

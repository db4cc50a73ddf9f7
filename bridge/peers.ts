/**
 * The connection limit: at most `max` distinct clients (ZeroMQ routing identities: one per
 * client socket, so per Python thread) are served at once. A client idle for `idleMs` stops
 * counting; a new client beyond the limit is answered E_LIMIT (by the server) until one goes idle.
 */
/** Tracks the clients a ROUTER has heard from recently. */
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

  private sweep(now: number): void {
    for (const [k, t] of this.seen) {
      if (now - t < this.idleMs) break;
      this.seen.delete(k);
    }
  }
}

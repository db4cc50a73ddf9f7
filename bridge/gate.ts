/**
 * The store gate (bridge/server.ts holds one): orders store access. Pool reads run on
 * other threads against a view of the store, so a write must not start while one is in
 * flight. FIFO: a read that arrives behind a
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

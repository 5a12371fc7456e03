/**
 * Waiting for a store revision to be programmed (Agent.waitForRevision): a wait resolves
 * once `reached` was told a revision at least as high, rejects after its timeout, and
 * rejects at once when the agent stops — also a wait asked for after the stop.
 */
export class RevisionWaits {
  private programmed = 0n;
  private stopped = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly node: string) {}

  get revision(): bigint {
    return this.programmed;
  }

  /** A reconcile programmed the model of store revision `rev`. */
  reached(rev: bigint): void {
    if (rev > this.programmed) this.programmed = rev;
    for (const w of [...this.waiters]) w();
  }

  /** The agent stopped: every wait rejects, now and later. */
  stop(): void {
    this.stopped = true;
    for (const w of [...this.waiters]) w();
  }

  /**
   * Resolves once revision `want` is programmed; rejects after `timeoutMs` with the
   * message `late()` describes, or when the agent stops.
   */
  wait(want: bigint, timeoutMs: number, late: () => string): Promise<void> {
    if (this.programmed >= want) return Promise.resolve();
    if (this.stopped) return Promise.reject(new Error(`${this.node}: agent stopped`));
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.programmed < want && !this.stopped) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        if (this.programmed >= want) resolve();
        else reject(new Error(`${this.node}: agent stopped`));
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(late()));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }
}

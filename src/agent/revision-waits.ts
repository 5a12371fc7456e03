/**
 * Waiting for a store revision to be programmed (Agent.waitForRevision): a wait resolves
 * once `reached` was told a revision at least as high, rejects after its timeout, and
 * rejects at once when the agent stops — also a wait asked for after the stop.
 *
 * Revisions are kept two ways:
 *  - one for the whole model (the highest revision of any event it had applied): on etcd
 *    every key shares one revision counter, so "programmed at R" covers every kind;
 *  - one per kind (the highest revision of an event of that kind). On the Kubernetes
 *    datastore the watch delivers several API resources, whose resourceVersions are not
 *    ordered across them (each resource's watch runs on its own, from its own watch
 *    cache): a NetworkPolicy at 120 may arrive after a Pod at 130, so "programmed at 130"
 *    says nothing about the policy. There a wait names its kind, and only that kind's
 *    revision answers it (`globalOrder: false`).
 */
export class RevisionWaits {
  private programmed = 0n;
  private readonly byKind = new Map<string, bigint>();
  private stopped = false;
  private readonly waiters = new Set<() => void>();

  constructor(
    private readonly node: string,
    /** true (etcd): the global revision answers a wait for any kind too. */
    private readonly globalOrder = true,
  ) {}

  get revision(): bigint {
    return this.programmed;
  }

  /** The programmed revision of each kind that has one (decimal strings, sorted by kind). */
  get kinds(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const k of [...this.byKind.keys()].sort()) out[k] = String(this.byKind.get(k));
    return out;
  }

  /** The programmed revision of `kind` (0: none yet). */
  revisionOf(kind: string): bigint {
    return this.byKind.get(kind) ?? 0n;
  }

  /** Whether a wait for `want` (of `kind`, if named) would resolve now. */
  has(want: bigint, kind?: string): boolean {
    if (kind === undefined || this.globalOrder) {
      if (this.programmed >= want) return true;
      if (kind === undefined) return false;
    }
    return this.revisionOf(kind) >= want;
  }

  /**
   * A reconcile programmed the model of store revision `rev`, whose kinds were at
   * `kinds` (kind → the highest revision of an event of it).
   */
  reached(rev: bigint, kinds?: ReadonlyMap<string, bigint>): void {
    if (rev > this.programmed) this.programmed = rev;
    for (const [kind, r] of kinds ?? []) if (r > this.revisionOf(kind)) this.byKind.set(kind, r);
    for (const w of [...this.waiters]) w();
  }

  /** The agent stopped: every wait rejects, now and later. */
  stop(): void {
    this.stopped = true;
    for (const w of [...this.waiters]) w();
  }

  /**
   * Resolves once revision `want` is programmed (of `kind`, when named); rejects after
   * `timeoutMs` with the message `late()` describes, or when the agent stops.
   */
  wait(want: bigint, timeoutMs: number, late: () => string, kind?: string): Promise<void> {
    if (this.has(want, kind)) return Promise.resolve();
    if (this.stopped) return Promise.reject(new Error(`${this.node}: agent stopped`));
    return new Promise((resolve, reject) => {
      const check = () => {
        const done = this.has(want, kind);
        if (!done && !this.stopped) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        if (done) resolve();
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

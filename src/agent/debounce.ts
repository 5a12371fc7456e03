/**
 * Coalescing bursts of changes into few reconciles: a run starts once `quietMs` passed
 * without a new trigger, or `maxDelayMs` after the first trigger of a burst, whichever
 * comes first. Runs never overlap: a trigger during a run schedules one more run after
 * it. The clock is injectable, so the behaviour is unit-tested with fake timers.
 *
 * With `leading`, a trigger that finds the debouncer idle — nothing scheduled or running,
 * and no run ended within the last `quietMs` — runs at the next turn of the event loop
 * (setImmediate) instead of after the quiet time: a single change is enforced without
 * waiting. Everything delivered in the same turn is in that run: setImmediate fires only
 * after the current I/O callback and every microtask it queued have run, and the etcd
 * watch hands out all events of one response — which holds whole transactions, etcd never
 * splits a revision across responses — from one callback through a chain of microtasks
 * (../datastore/watch.ts deliver). So a run never sees half a transaction. The triggers
 * that come during that run or within quietMs after it are a burst, and are coalesced by
 * the quiet time as without `leading`.
 */

export interface DebouncerOptions {
  readonly quietMs: number;
  readonly maxDelayMs: number;
  /** An idle debouncer runs a trigger at the next turn of the event loop (see above). */
  readonly leading?: boolean;
  /** Told about a run that threw (the debouncer keeps going). */
  readonly onError?: (err: unknown) => void;
}

export class Debouncer {
  private timer: NodeJS.Timeout | undefined;
  /** A leading run set for the next turn of the event loop. */
  private soon: NodeJS.Immediate | undefined;
  /** When the last run ended (for `leading`: idle means quiet since then). */
  private lastEndAt: number | undefined;
  private firstAt: number | undefined;
  private running: Promise<void> | undefined;
  private pendingWhileRunning = false;
  /** A flush() came during a run: the next run starts as soon as it ends, without quiet time. */
  private flushWhileRunning = false;
  private stopped = false;
  private waiters: (() => void)[] = [];
  /** Runs started so far. */
  runs = 0;

  constructor(
    private readonly run: () => Promise<void> | void,
    private readonly options: DebouncerOptions,
    private readonly now: () => number = Date.now,
  ) {}

  /** Something changed: run (again) soon. */
  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.pendingWhileRunning = true;
      return;
    }
    if (this.soon !== undefined) return; // the run set for the next turn sees this change
    const now = this.now();
    if (
      this.options.leading === true &&
      this.timer === undefined &&
      (this.lastEndAt === undefined || now - this.lastEndAt >= this.options.quietMs)
    ) {
      this.soon = setImmediate(() => {
        this.soon = undefined;
        this.fire();
      });
      return;
    }
    this.firstAt ??= now;
    const latest = this.firstAt + this.options.maxDelayMs;
    const delay = Math.max(0, Math.min(this.options.quietMs, latest - now));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.fire(), delay);
  }

  /** Run now (still after a run in progress), skipping the quiet time. */
  flush(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    clearTimeout(this.timer);
    this.timer = undefined;
    clearImmediate(this.soon);
    this.soon = undefined;
    if (this.running) {
      this.pendingWhileRunning = true;
      this.flushWhileRunning = true;
      return this.idle();
    }
    this.fire();
    return this.idle();
  }

  /** Resolves when nothing is scheduled or running. */
  idle(): Promise<void> {
    if (!this.running && this.timer === undefined && this.soon === undefined)
      return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** No more runs; resolves after the current one finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearImmediate(this.soon);
    this.soon = undefined;
    await this.running;
    this.wake();
  }

  private fire(): void {
    this.timer = undefined;
    this.firstAt = undefined;
    if (this.stopped) return this.wake();
    this.runs++;
    this.running = (async () => {
      try {
        await this.run();
      } catch (e) {
        this.options.onError?.(e);
      }
    })().finally(() => {
      this.running = undefined;
      this.lastEndAt = this.now();
      if (this.pendingWhileRunning && !this.stopped) {
        this.pendingWhileRunning = false;
        if (this.flushWhileRunning) {
          this.flushWhileRunning = false;
          this.fire();
        } else {
          this.trigger();
        }
      } else {
        this.wake();
      }
    });
  }

  private wake(): void {
    if (this.running || this.timer !== undefined || this.soon !== undefined) return;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

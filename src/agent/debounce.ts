/**
 * Coalescing bursts of changes into few reconciles: a run starts once `quietMs` passed
 * without a new trigger, or `maxDelayMs` after the first trigger of a burst, whichever
 * comes first. Runs never overlap: a trigger during a run schedules one more run after
 * it. The clock is injectable, so the behaviour is unit-tested with fake timers.
 */

export interface DebouncerOptions {
  readonly quietMs: number;
  readonly maxDelayMs: number;
  /** Told about a run that threw (the debouncer keeps going). */
  readonly onError?: (err: unknown) => void;
}

export class Debouncer {
  private timer: NodeJS.Timeout | undefined;
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
    const now = this.now();
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
    if (!this.running && this.timer === undefined) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** No more runs; resolves after the current one finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
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
    if (this.running || this.timer !== undefined) return;
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

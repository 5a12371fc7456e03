import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Debouncer } from '../../src/agent/debounce.js';

describe('the reconcile debouncer', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a burst of triggers makes one run, after the quiet time', async () => {
    const run = vi.fn();
    const d = new Debouncer(run, { quietMs: 20, maxDelayMs: 200 });
    for (let i = 0; i < 10; i++) {
      d.trigger();
      await vi.advanceTimersByTimeAsync(5);
    }
    expect(run).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(20);
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('leading: an idle trigger runs at the next turn with what that turn delivered; a burst after it waits for quiet', async () => {
    const seen: number[] = [];
    let delivered = 0;
    const d = new Debouncer(() => void seen.push(delivered), {
      quietMs: 20,
      maxDelayMs: 200,
      leading: true,
    });
    // One watch response: its events are handled in microtasks of one callback.
    let chain = Promise.resolve();
    for (let i = 0; i < 3; i++)
      chain = chain.then(() => {
        delivered++;
        d.trigger();
      });
    await chain;
    expect(seen).toEqual([]);
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toEqual([3]);
    // Within quietMs of that run: a burst, coalesced after the quiet time.
    for (let i = 0; i < 3; i++) {
      delivered++;
      d.trigger();
      await vi.advanceTimersByTimeAsync(5);
    }
    expect(seen).toEqual([3]);
    await vi.advanceTimersByTimeAsync(20);
    expect(seen).toEqual([3, 6]);
    // Quiet again: the next change runs at once.
    await vi.advanceTimersByTimeAsync(50);
    delivered++;
    d.trigger();
    await vi.advanceTimersByTimeAsync(0);
    expect(seen).toEqual([3, 6, 7]);
    await d.stop();
  });

  it('a burst that never goes quiet still runs by maxDelayMs after its first trigger', async () => {
    const run = vi.fn();
    const d = new Debouncer(run, { quietMs: 20, maxDelayMs: 100 });
    for (let t = 0; t < 100; t += 10) {
      d.trigger();
      await vi.advanceTimersByTimeAsync(10);
    }
    expect(run).toHaveBeenCalledTimes(1);
  });

  it('runs never overlap: triggers during a run make exactly one more run after it', async () => {
    let active = 0;
    let maxActive = 0;
    let release: () => void = () => undefined;
    const run = vi.fn(async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise<void>((r) => (release = r));
      active--;
    });
    const d = new Debouncer(run, { quietMs: 10, maxDelayMs: 100 });
    d.trigger();
    await vi.advanceTimersByTimeAsync(10);
    expect(run).toHaveBeenCalledTimes(1);
    d.trigger();
    d.trigger();
    d.trigger();
    await vi.advanceTimersByTimeAsync(50);
    expect(run).toHaveBeenCalledTimes(1);
    release();
    await vi.advanceTimersByTimeAsync(10);
    expect(run).toHaveBeenCalledTimes(2);
    release();
    await vi.advanceTimersByTimeAsync(100);
    expect(run).toHaveBeenCalledTimes(2);
    expect(maxActive).toBe(1);
  });

  it('flush runs at once and resolves when done; idle waits for scheduled work', async () => {
    const run = vi.fn();
    const d = new Debouncer(run, { quietMs: 1000, maxDelayMs: 5000 });
    d.trigger();
    await d.flush();
    expect(run).toHaveBeenCalledTimes(1);
    d.trigger();
    let idle = false;
    void d.idle().then(() => (idle = true));
    await vi.advanceTimersByTimeAsync(500);
    expect(idle).toBe(false);
    await vi.advanceTimersByTimeAsync(600);
    expect(idle).toBe(true);
    expect(run).toHaveBeenCalledTimes(2);
  });

  it('a run that throws is reported and does not stop later runs; stop ends everything', async () => {
    const errors: unknown[] = [];
    const run = vi.fn(() => {
      throw new Error('boom');
    });
    const d = new Debouncer(run, { quietMs: 5, maxDelayMs: 50, onError: (e) => errors.push(e) });
    d.trigger();
    await vi.advanceTimersByTimeAsync(5);
    d.trigger();
    await vi.advanceTimersByTimeAsync(5);
    expect(run).toHaveBeenCalledTimes(2);
    expect(errors).toHaveLength(2);
    await d.stop();
    d.trigger();
    await vi.advanceTimersByTimeAsync(100);
    expect(run).toHaveBeenCalledTimes(2);
  });
});

/**
 * Waiting for a condition in tests. The bound only decides when to give up (generous, for a
 * loaded machine): a condition that holds ends the wait at once, so no test asserts on
 * time. A check that throws counts as "not yet"; the last error is named if the bound is
 * reached.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `ok` until it holds; returns the elapsed ms, throws naming `what` at the bound. */
export async function until(
  what: string,
  ok: () => boolean | Promise<boolean>,
  boundMs = 60_000,
  everyMs = 50,
): Promise<number> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      if (await ok()) return Date.now() - t0;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > boundMs) {
      const why = last === undefined ? '' : ` (last check failed: ${String(last)})`;
      throw new Error(`not within ${boundMs} ms: ${what}${why}`);
    }
    await sleep(everyMs);
  }
}

/**
 * Reads `get` until `ok` holds of its value or the bound is reached, and returns the last
 * value either way, for an `expect` on it to show what was seen.
 */
export async function eventually<T>(
  get: () => T | Promise<T>,
  ok: (v: T) => boolean,
  boundMs = 60_000,
  everyMs = 200,
): Promise<T> {
  const deadline = Date.now() + boundMs;
  for (;;) {
    const v = await get();
    if (ok(v) || Date.now() > deadline) return v;
    await sleep(everyMs);
  }
}

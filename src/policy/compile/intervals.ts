/**
 * Sets of integers as sorted, disjoint, non-adjacent inclusive intervals.
 *
 * The compiler describes both the peer address space (u32) and the (protocol, port)
 * space (u24) this way. Every function returns a normalised set and never mutates its
 * arguments; values stay below 2^53, so plain number arithmetic is exact (bitwise
 * operators are avoided: they are signed 32-bit).
 */

export type Interval = readonly [lo: number, hi: number];
/** Sorted by `lo`, pairwise disjoint and non-adjacent (hi + 1 < next lo). */
export type IntervalSet = readonly Interval[];

/** Sorts and merges any intervals (overlapping or adjacent ones coalesce). */
export function normalize(intervals: readonly Interval[]): IntervalSet {
  if (intervals.length <= 1) return intervals.slice();
  const sorted = intervals.slice().sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && lo <= last[1] + 1) {
      if (hi > last[1]) last[1] = hi;
    } else {
      out.push([lo, hi]);
    }
  }
  return out;
}

export function union(a: IntervalSet, b: IntervalSet): IntervalSet {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  return normalize([...a, ...b]);
}

export function intersect(a: IntervalSet, b: IntervalSet): IntervalSet {
  const out: Interval[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const [alo, ahi] = a[i]!;
    const [blo, bhi] = b[j]!;
    const lo = Math.max(alo, blo);
    const hi = Math.min(ahi, bhi);
    if (lo <= hi) out.push([lo, hi]);
    if (ahi < bhi) i++;
    else j++;
  }
  return out;
}

export function subtract(a: IntervalSet, b: IntervalSet): IntervalSet {
  if (a.length === 0 || b.length === 0) return a;
  const out: Interval[] = [];
  let j = 0;
  for (const [alo, ahi] of a) {
    let lo = alo;
    while (j < b.length && b[j]![1] < lo) j++;
    let k = j;
    while (k < b.length && b[k]![0] <= ahi) {
      const [blo, bhi] = b[k]!;
      if (blo > lo) out.push([lo, blo - 1]);
      lo = Math.max(lo, bhi + 1);
      if (lo > ahi) break;
      k++;
    }
    if (lo <= ahi) out.push([lo, ahi]);
  }
  return out;
}

/** Whether `x` is in the set (binary search). */
export function contains(set: IntervalSet, x: number): boolean {
  let lo = 0;
  let hi = set.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const [a, b] = set[mid]!;
    if (x < a) hi = mid - 1;
    else if (x > b) lo = mid + 1;
    else return true;
  }
  return false;
}

/** How many integers the set holds. */
export function size(set: IntervalSet): number {
  let n = 0;
  for (const [lo, hi] of set) n += hi - lo + 1;
  return n;
}

/** A canonical spelling, for fingerprints. */
export function spell(set: IntervalSet): string {
  return set.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}-${hi}`)).join(',');
}

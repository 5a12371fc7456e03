/**
 * Ranges as longest-prefix-match entries.
 *
 * A prefix of `bits` over a `width`-bit space covers [value, value + 2^(width-bits) - 1]
 * with `value` aligned to that size. A range decomposes into the maximal aligned
 * prefixes it contains (the fewest disjoint prefixes that cover it exactly). A whole
 * piecewise-constant function decomposes into one bits-0 entry for its most common value
 * (by how many points it covers) plus the prefixes of every other piece: under longest
 * prefix match the longer entries override the bits-0 one.
 */

export interface Prefix {
  /** The first value covered: aligned to 2^(width - bits). */
  readonly value: number;
  readonly bits: number;
}

/** One piece of a function: every point in [lo, hi] maps to `value`. */
export interface Piece<V> {
  readonly lo: number;
  readonly hi: number;
  readonly value: V;
}

export interface PrefixEntry<V> extends Prefix {
  readonly value: number;
  readonly result: V;
}

/** The largest power of two dividing `x` (0 < x < 2^32); 2^32 for x = 0. */
function alignment(x: number): number {
  return x === 0 ? 2 ** 32 : (x & -x) >>> 0;
}

const POWERS_OF_TWO = Array.from({ length: 33 }, (_, k) => 2 ** k);

/** The largest power of two not above `n` (1 <= n <= 2^32). */
function floorPowerOfTwo(n: number): number {
  return n >= 2 ** 32 ? 2 ** 32 : POWERS_OF_TWO[31 - Math.clz32(n)]!;
}

/** log2 of a power of two up to 2^32. */
function log2(size: number): number {
  return size === 2 ** 32 ? 32 : 31 - Math.clz32(size);
}

/** The maximal aligned prefixes covering exactly [lo, hi] over a `width`-bit space (width <= 32). */
export function rangeToPrefixes(lo: number, hi: number, width: number): Prefix[] {
  const top = 2 ** width - 1;
  if (!(
    Number.isInteger(lo) &&
    Number.isInteger(hi) &&
    0 <= lo &&
    lo <= hi &&
    hi <= top &&
    width <= 32
  )) {
    throw new RangeError(`range [${lo}, ${hi}] is not inside the ${width}-bit space`);
  }
  const out: Prefix[] = [];
  let start = lo;
  while (start <= hi) {
    const size = Math.min(alignment(start), floorPowerOfTwo(hi - start + 1));
    out.push({ value: start, bits: width - log2(size) });
    start += size;
  }
  return out;
}

/** The range a prefix covers. */
export function prefixRange(prefix: Prefix, width: number): [number, number] {
  return [prefix.value, prefix.value + 2 ** (width - prefix.bits) - 1];
}

/**
 * Longest-prefix-match entries for a function given as pieces that cover the whole
 * `width`-bit space in order. `keyOf` says when two values are the same; the most
 * common value becomes the bits-0 entry, ties going to the one met first.
 */
export function functionToPrefixes<V>(
  pieces: readonly Piece<V>[],
  width: number,
  keyOf: (value: V) => string | number,
): PrefixEntry<V>[] {
  const first = pieces[0];
  if (first === undefined) throw new RangeError('a function needs at least one piece');
  const coverage = new Map<string | number, number>();
  for (const piece of pieces) {
    const key = keyOf(piece.value);
    coverage.set(key, (coverage.get(key) ?? 0) + (piece.hi - piece.lo + 1));
  }
  let best = keyOf(first.value);
  let bestSize = -1;
  for (const [key, total] of coverage) {
    if (total > bestSize) {
      bestSize = total;
      best = key;
    }
  }
  const fallback = pieces.find((p) => keyOf(p.value) === best)!.value;
  const out: PrefixEntry<V>[] = [{ value: 0, bits: 0, result: fallback }];
  for (const piece of pieces) {
    if (keyOf(piece.value) === best) continue;
    for (const { value, bits } of rangeToPrefixes(piece.lo, piece.hi, width))
      out.push({ value, bits, result: piece.value });
  }
  return out;
}

/**
 * A set's fingerprint, kept up to date by an edit without spelling the whole set again.
 *
 * The set's pieces (each spelled `lo-hi:class`, in address order) are cut into chunks
 * after every piece whose `lo` hashes to a cut (about one in CUT_EVERY): the cuts depend on
 * the pieces alone, so a set has one chunking however it was reached, and an edit of a
 * few pieces changes the chunks around it only. The fingerprint is the digest of the
 * chunks' digests. (A 10,000-rule set spelled whole is ~600 KB to join and hash per
 * change; a chunk is ~64 pieces.)
 */
import { fingerprint } from './fingerprint.js';

const CUT_BITS = 6; // a cut about every 64 pieces

export interface SetDigest {
  /** Per chunk, its first piece's `lo` (increasing), and its digest. */
  readonly starts: readonly number[];
  readonly digests: readonly string[];
  readonly fingerprint: string;
}

interface Lo {
  readonly lo: number;
}

function isCut(lo: number): boolean {
  return Math.imul(lo | 0, 0x9e3779b1) >>> (32 - CUT_BITS) === 0;
}

/** The chunks of pieces [a, b] (b a cut or the last piece), appended to `starts`/`digests`. */
function chunk(
  pieces: readonly Lo[],
  spelled: readonly string[],
  a: number,
  b: number,
  starts: number[],
  digests: string[],
): void {
  let start = a;
  for (let k = a; k <= b; k++) {
    if (k === b || isCut(pieces[k]!.lo)) {
      starts.push(pieces[start]!.lo);
      digests.push(fingerprint(spelled.slice(start, k + 1).join(';')));
      start = k + 1;
    }
  }
}

function digestOf(starts: number[], digests: string[]): SetDigest {
  return { starts, digests, fingerprint: fingerprint(`${digests.length}:${digests.join(',')}`) };
}

/** The digest of a whole set. */
export function digestAll(pieces: readonly Lo[], spelled: readonly string[]): SetDigest {
  const starts: number[] = [];
  const digests: string[] = [];
  if (pieces.length > 0) chunk(pieces, spelled, 0, pieces.length - 1, starts, digests);
  return digestOf(starts, digests);
}

/**
 * The digest of `pieces` (with `spelled`), which are the pieces `prev` was made from with
 * [i, i + removed) replaced by `added` pieces at i; every other piece is unchanged.
 */
export function digestEdit(
  prev: SetDigest,
  pieces: readonly Lo[],
  spelled: readonly string[],
  i: number,
  added: number,
): SetDigest {
  // From the start of the chunk holding piece i (just after a cut before it) to the
  // first cut at or after the first unchanged piece after the edit: chunks outside that
  // are the same pieces, chunked the same, in both sets.
  let a = i;
  while (a > 0 && !isCut(pieces[a - 1]!.lo)) a--;
  let b = Math.min(i + added, pieces.length - 1);
  while (b < pieces.length - 1 && !isCut(pieces[b]!.lo)) b++;
  const from = pieces[a]!.lo;
  const to = pieces[b]!.lo;
  // The old chunks starting within [from, to] are the ones replaced; with no unchanged
  // piece after the edit, every old chunk from `from` on.
  let s = 0;
  while (s < prev.starts.length && prev.starts[s]! < from) s++;
  let e = s;
  if (b < i + added) e = prev.starts.length;
  else while (e < prev.starts.length && prev.starts[e]! <= to) e++;
  const starts = prev.starts.slice(0, s);
  const digests = prev.digests.slice(0, s);
  chunk(pieces, spelled, a, b, starts, digests);
  for (let k = e; k < prev.starts.length; k++) {
    starts.push(prev.starts[k]!);
    digests.push(prev.digests[k]!);
  }
  return digestOf(starts, digests);
}

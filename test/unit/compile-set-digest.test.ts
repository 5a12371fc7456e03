/**
 * A set's fingerprint kept by edits (src/policy/compile/set-digest.ts) is the one the
 * whole set gives: two sets that are equal share it however each was reached, and an
 * edit never keeps a chunk digest of pieces it changed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { digestAll, digestEdit } from '../../src/policy/compile/set-digest.js';

interface P {
  lo: number;
  hi: number;
  c: string;
}

/** Pieces covering [0, max] from sorted distinct cut points, each with a class. */
function piecesOf(cuts: number[], classes: string[]): P[] {
  const los = [0, ...[...new Set(cuts)].filter((x) => x > 0).sort((a, b) => a - b)];
  return los.map((lo, k) => ({
    lo,
    hi: k + 1 < los.length ? los[k + 1]! - 1 : 2 ** 32 - 1,
    c: classes[k % classes.length]!,
  }));
}

const spell = (ps: readonly P[]) => ps.map((p) => `${p.lo}-${p.hi}:${p.c}`);

describe('set digest', () => {
  it('after any run of edits equals the digest of the whole set', () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat({ max: 4000 }), { maxLength: 600 }),
        fc.array(
          fc.tuple(
            fc.nat({ max: 4000 }),
            fc.nat({ max: 4000 }),
            fc.array(fc.nat({ max: 4000 }), { maxLength: 8 }),
            fc.constantFrom('a', 'b', 'c'),
          ),
          { minLength: 1, maxLength: 6 },
        ),
        (cuts, edits) => {
          let pieces = piecesOf(cuts, ['a', 'b']);
          let digest = digestAll(pieces, spell(pieces));
          for (const [x, y, inner, cls] of edits) {
            // Replace the pieces meeting [lo, hi] by new pieces over the same addresses.
            const lo = Math.min(x, y);
            const hi = Math.max(x, y);
            const i = pieces.findIndex((p) => p.hi >= lo);
            let j = pieces.findIndex((p) => p.hi >= hi) + 1;
            if (j === 0) j = pieces.length;
            const from = pieces[i]!.lo;
            const to = pieces[j - 1]!.hi;
            const points = [...new Set(inner.filter((v) => v > from && v <= to))].sort(
              (a, b) => a - b,
            );
            const starts = [from, ...points];
            const mid = starts.map((s, k) => ({
              lo: s,
              hi: k + 1 < starts.length ? starts[k + 1]! - 1 : to,
              c: `${cls}${k}`,
            }));
            pieces = [...pieces.slice(0, i), ...mid, ...pieces.slice(j)];
            digest = digestEdit(digest, pieces, spell(pieces), i, mid.length);
            expect(digest).toEqual(digestAll(pieces, spell(pieces)));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

/**
 * A program's decision as a function of the peer address: address pieces, each mapped to
 * a class (the decision over l4 as verdict pieces).
 *
 * Atoms whose address set is everything ("universal") are active for every peer. The
 * others are grouped by identical address sets, and a sweep over the address space finds
 * the elementary pieces where the set of active groups is constant. Many pieces share
 * one active set, so the decision is computed once per distinct set, and from a smaller
 * one:
 *
 *   - with no group active, the decision is the walk of the universal atoms over all of
 *     l4 (the baseline);
 *   - with groups G active, take g, the most specific group of G (fewest addresses): the
 *     decision equals that of G \ {g} (memoised; usually shared by many pieces — g is a
 *     /32 inside a CIDR other rules use) except at the l4 points g's atoms mention, so only
 *     those points are walked, over the moves of all of G in program order.
 *
 * Walking a handful of points is cheap even past thousands of rules (a rule whose l4
 * misses them is skipped by comparing bounds), so the cost follows the output, not
 * rules × address pieces.
 *
 * Identical l4 functions become one class (by their fingerprint).
 */
import { ADDRESS_MAX } from './addresses.js';
import { normalize, size, type IntervalSet } from './intervals.js';
import { fingerprintNumbers } from './fingerprint.js';
import { ALL_L4, L4_MAX } from './l4.js';
import type { Piece } from './prefixes.js';
import type { Program, RuleAction } from './program.js';
import type { VerdictCode } from './verdict.js';
import { L4Walk } from './walk.js';

export interface ClassFunction {
  /** Of the pieces: equal fingerprints, equal functions (computed on first use). */
  readonly fingerprint: string;
  /** Cover [0, L4_MAX] in order; neighbours differ. */
  readonly pieces: readonly Piece<VerdictCode>[];
}

class Decision implements ClassFunction {
  private fp: string | undefined;

  constructor(readonly pieces: readonly Piece<VerdictCode>[]) {}

  get fingerprint(): string {
    if (this.fp === undefined) {
      const numbers: number[] = [];
      for (const p of this.pieces) numbers.push(p.lo, p.hi, p.value);
      this.fp = fingerprintNumbers(numbers);
    }
    return this.fp;
  }
}

export interface SetFunction {
  /** Cover [0, ADDRESS_MAX] in order; neighbours have different classes. */
  readonly pieces: readonly Piece<ClassFunction>[];
  /** Each distinct class once. */
  readonly classes: readonly ClassFunction[];
}

type Move =
  | {
      readonly step: number;
      readonly kind: 'rule';
      readonly action: RuleAction;
      readonly ruleId: number;
      readonly l4: IntervalSet;
    }
  | {
      readonly step: number;
      readonly kind: 'end';
      readonly passes: boolean;
      readonly ruleId: number;
    };

interface Group {
  readonly addr: IntervalSet;
  /** In step order. */
  readonly moves: Move[];
  /** How many addresses the group covers. */
  size: number;
  /** Every l4 point one of its moves mentions. */
  mentioned: IntervalSet;
}

/** The decision for one set of active groups (see `Sweep.node`). */
interface Node {
  readonly cls: ClassFunction;
  readonly parent: Node | undefined;
  readonly extra: Group | undefined;
  /** The universal moves and the moves of every group of the node, in step order (built on demand). */
  moves: readonly Move[] | undefined;
}

/**
 * One object per distinct l4 function, shared by the sweeps of consecutive updates (the
 * compiler prunes it after each): a class that an update leaves unchanged is found by a
 * cheap hash and an exact comparison, and keeps its object — so its fingerprint (a sha1)
 * and its emitted entries (./emit.ts caches them by object) are not computed again.
 * Sharing changes no output: an object stands for exactly one function.
 */
export class ClassTable {
  private entries = new Map<number, ClassFunction[]>();
  private used = new Map<number, ClassFunction[]>();
  /** Functions created so far (every other one was found again). */
  created = 0;

  intern(pieces: Piece<VerdictCode>[]): ClassFunction {
    const hash = hashPieces(pieces);
    const bucket = this.used.get(hash);
    const found = bucket?.find((cls) => samePieces(cls.pieces, pieces));
    if (found !== undefined) return found;
    const old = this.entries.get(hash)?.find((cls) => samePieces(cls.pieces, pieces));
    let cls: ClassFunction;
    if (old !== undefined) cls = old;
    else {
      checkCover(pieces);
      cls = new Decision(pieces);
      this.created++;
    }
    if (bucket === undefined) this.used.set(hash, [cls]);
    else bucket.push(cls);
    return cls;
  }

  /** Forgets every class not interned since the last call. */
  prune(): void {
    this.entries = this.used;
    this.used = new Map();
  }
}

export function decideProgram(program: Program, table: ClassTable = new ClassTable()): SetFunction {
  return new Sweep(program, table).run();
}

class Sweep {
  private readonly universal: Move[] = [];
  private readonly groups: Group[] = [];
  /** By the sorted ids of the active groups. */
  private readonly nodes = new Map<string, Node>();

  constructor(
    program: Program,
    private readonly table: ClassTable,
  ) {
    const last = program.steps[program.steps.length - 1];
    if (last === undefined || last.kind !== 'end' || last.passes) {
      throw new Error('a policy program must end with a denying end (the profiles default)');
    }
    const groupByAddr = new Map<string, Group>();
    program.steps.forEach((step, index) => {
      if (step.kind === 'end') {
        this.universal.push({ step: index, kind: 'end', passes: step.passes, ruleId: step.ruleId });
        return;
      }
      for (const atom of step.atoms) {
        if (atom.addr.length === 0 || atom.l4.length === 0) continue;
        const move: Move = {
          step: index,
          kind: 'rule',
          action: step.action,
          ruleId: step.ruleId,
          l4: atom.l4,
        };
        const [first] = atom.addr;
        if (atom.addr.length === 1 && first![0] === 0 && first![1] === ADDRESS_MAX) {
          this.universal.push(move);
          continue;
        }
        let group = groupByAddr.get(atom.addrKey);
        if (group === undefined) {
          group = { addr: atom.addr, moves: [], size: size(atom.addr), mentioned: [] };
          groupByAddr.set(atom.addrKey, group);
          this.groups.push(group);
        }
        group.moves.push(move);
      }
    });
    for (const group of this.groups)
      group.mentioned = normalize(group.moves.flatMap((m) => (m.kind === 'rule' ? m.l4 : [])));
  }

  run(): SetFunction {
    const baseline = this.intern(this.walk(this.universal, [], ALL_L4));
    this.nodes.set('', {
      cls: baseline,
      parent: undefined,
      extra: undefined,
      moves: this.universal,
    });
    const pieces: Piece<ClassFunction>[] = [];
    for (const { lo, hi, active } of this.elementaryPieces()) {
      const cls = this.node(active).cls;
      const prev = pieces[pieces.length - 1];
      if (prev !== undefined && prev.value === cls)
        pieces[pieces.length - 1] = { lo: prev.lo, hi, value: cls };
      else pieces.push({ lo, hi, value: cls });
    }
    return { pieces, classes: [...new Set(pieces.map((p) => p.value))] };
  }

  /**
   * The decision where the groups `ids` (sorted) are active. It is the decision without
   * the most specific of them (the parent, memoised) everywhere except at the l4 points
   * that group mentions; there the walk of all the node's moves decides.
   */
  private node(ids: readonly number[]): Node {
    const key = ids.join(',');
    let node = this.nodes.get(key);
    if (node !== undefined) return node;
    let extraAt = 0;
    for (let i = 1; i < ids.length; i++) {
      if (this.groups[ids[i]!]!.size <= this.groups[ids[extraAt]!]!.size) extraAt = i;
    }
    const extra = this.groups[ids[extraAt]!]!;
    const parent = this.node(ids.filter((_, i) => i !== extraAt));
    const decided = this.walk(this.movesOf(parent), extra.moves, extra.mentioned);
    const cls = this.intern(overlay(parent.cls.pieces, extra.mentioned, decided));
    node = { cls, parent, extra, moves: undefined };
    this.nodes.set(key, node);
    return node;
  }

  private movesOf(node: Node): readonly Move[] {
    if (node.moves === undefined)
      node.moves = mergeByStep(this.movesOf(node.parent!), node.extra!.moves);
    return node.moves;
  }

  /** The walk, over `points`, of two step-ordered move lists merged (stably) into one. */
  private walk(a: readonly Move[], b: readonly Move[], points: IntervalSet): Piece<VerdictCode>[] {
    const walk = new L4Walk(points);
    let i = 0;
    let j = 0;
    while ((i < a.length || j < b.length) && !walk.done) {
      const move = j >= b.length || (i < a.length && a[i]!.step <= b[j]!.step) ? a[i++]! : b[j++]!;
      if (move.kind === 'end') walk.endTier(move.passes, move.ruleId);
      else walk.rule(move.action, move.ruleId, move.l4);
    }
    return walk.result();
  }

  /** One object per distinct function (see ClassTable). */
  private intern(pieces: Piece<VerdictCode>[]): ClassFunction {
    return this.table.intern(pieces);
  }

  /** The address space cut wherever the set of active groups changes. */
  private *elementaryPieces(): Generator<{ lo: number; hi: number; active: number[] }> {
    const events: [x: number, group: number, delta: 1 | -1][] = [];
    this.groups.forEach((group, id) => {
      for (const [lo, hi] of group.addr) {
        events.push([lo, id, 1]);
        if (hi < ADDRESS_MAX) events.push([hi + 1, id, -1]);
      }
    });
    events.sort((a, b) => a[0] - b[0]);
    const active = new Set<number>();
    let start = 0;
    let i = 0;
    while (i < events.length) {
      const x = events[i]![0];
      if (x > start) yield { lo: start, hi: x - 1, active: sortedIds(active) };
      while (i < events.length && events[i]![0] === x) {
        const [, id, delta] = events[i]!;
        if (delta === 1) active.add(id);
        else active.delete(id);
        i++;
      }
      start = x;
    }
    yield { lo: start, hi: ADDRESS_MAX, active: sortedIds(active) };
  }
}

function sortedIds(ids: Set<number>): number[] {
  return [...ids].sort((a, b) => a - b);
}

function mergeByStep(a: readonly Move[], b: readonly Move[]): Move[] {
  const out: Move[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    out.push(j >= b.length || (i < a.length && a[i]!.step <= b[j]!.step) ? a[i++]! : b[j++]!);
  }
  return out;
}

/**
 * `base` outside `region`, `inside` within it (`inside` covers `region` exactly), as one
 * list of pieces with equal neighbours merged. All three inputs are sorted, so this is a
 * linear merge.
 */
function overlay(
  base: readonly Piece<VerdictCode>[],
  region: IntervalSet,
  inside: readonly Piece<VerdictCode>[],
): Piece<VerdictCode>[] {
  const out: Piece<VerdictCode>[] = [];
  const emit = (lo: number, hi: number, value: VerdictCode): void => {
    const last = out[out.length - 1];
    if (last !== undefined && last.value === value && last.hi + 1 === lo)
      out[out.length - 1] = { lo: last.lo, hi, value };
    else out.push({ lo, hi, value });
  };
  let r = 0; // next region interval not yet passed
  let k = 0; // next inside piece
  for (const piece of base) {
    let lo = piece.lo;
    while (lo <= piece.hi) {
      while (r < region.length && region[r]![1] < lo) r++;
      const next = region[r];
      if (next === undefined || next[0] > piece.hi) {
        emit(lo, piece.hi, piece.value);
        break;
      }
      if (next[0] > lo) {
        emit(lo, next[0] - 1, piece.value);
        lo = next[0];
      }
      // [lo, min(next.hi, piece.hi)] is inside the region: take the inside pieces there.
      const end = Math.min(next[1], piece.hi);
      while (k < inside.length && inside[k]!.lo <= end) {
        const p = inside[k]!;
        emit(Math.max(p.lo, lo), Math.min(p.hi, end), p.value);
        if (p.hi <= end) k++;
        else break;
      }
      lo = end + 1;
    }
  }
  return out;
}

function hashPieces(pieces: readonly Piece<VerdictCode>[]): number {
  let h = 0x811c9dc5;
  for (const p of pieces) {
    h = Math.imul(h ^ (p.lo | 0), 0x01000193);
    h = Math.imul(h ^ (p.hi | 0), 0x01000193);
    h = Math.imul(h ^ ((p.value % 0x100000000) | 0), 0x01000193);
    h = Math.imul(h ^ ((p.value / 0x100000000) | 0), 0x01000193);
  }
  return h >>> 0;
}

function samePieces(a: readonly Piece<VerdictCode>[], b: readonly Piece<VerdictCode>[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.lo !== y.lo || x.hi !== y.hi || x.value !== y.value) return false;
  }
  return true;
}

/** A class must decide every l4 point: the program's last end guarantees it. */
function checkCover(pieces: readonly Piece<VerdictCode>[]): void {
  let next = 0;
  for (const p of pieces) {
    if (p.lo !== next) throw new Error(`internal: l4 points ${next}..${p.lo - 1} left undecided`);
    next = p.hi + 1;
  }
  if (next !== L4_MAX + 1) throw new Error(`internal: l4 points from ${next} left undecided`);
}

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
 *
 * Source ports: a rule restricted by source port matches a box (l4 points × source
 * ports). Where such rules reach, the walk cuts the l4 points into pieces over which
 * the same rules match, and walks each piece's moves over the source ports; a piece
 * whose decision still varies with the source port gets a source-port function (a
 * SportFunction, interned like classes) as its value instead of a verdict: stage 3.
 * Programs without such rules take the one-dimensional walk alone.
 */
import { ADDRESS_MAX } from './addresses.js';
import { intersect, normalize, size, subtract, type IntervalSet } from './intervals.js';
import { fingerprintNumbers } from './fingerprint.js';
import { ALL_L4, ALL_SPORTS, L4_MAX, SPORT_MAX } from './l4.js';
import type { Piece } from './prefixes.js';
import type { Program, RuleAction } from './program.js';
import type { VerdictCode } from './verdict.js';
import { L4Walk } from './walk.js';

export interface ClassFunction {
  /** Of the pieces: equal fingerprints, equal functions (computed on first use). */
  readonly fingerprint: string;
  /**
   * Cover [0, L4_MAX] in order; neighbours differ. A value >= 0 is a verdict code; a
   * negative value -t is decided by the source port: the SportFunction tagged t.
   */
  readonly pieces: readonly Piece<number>[];
  /** The source-port functions the pieces name, each once. */
  readonly sports: readonly SportFunction[];
}

/** A verdict as a function of the source port (stage 3). */
export interface SportFunction {
  /** Never reused for another function while the compiler lives. */
  readonly tag: number;
  readonly fingerprint: string;
  /** Cover [0, SPORT_MAX] in order; neighbours differ. */
  readonly pieces: readonly Piece<VerdictCode>[];
}

class Decision implements ClassFunction {
  private fp: string | undefined;

  constructor(
    readonly pieces: readonly Piece<number>[],
    readonly sports: readonly SportFunction[],
  ) {}

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
      /** Source ports; undefined: any. */
      readonly sport: IntervalSet | undefined;
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
 * One object per distinct l4 function, shared by the sweeps of consecutive updates: a
 * class that an update leaves unchanged is found by a cheap hash and an exact
 * comparison, and keeps its object — so its fingerprint (a sha1) and its emitted entries
 * (./emit.ts caches them by object) are not computed again, and the pieces an
 * incremental compile keeps from the last update name the same objects a new sweep
 * finds. Sharing changes no output: an object stands for exactly one function.
 *
 * Memory: functions no set uses any more are dropped by `collect`, which the compiler
 * calls once the table holds twice what was live at the last collection (amortised, so
 * an update that changes one rule does not pay for every class that exists).
 */
export class ClassTable {
  private entries = new Map<number, ClassFunction[]>();
  /** The source-port functions, by the same rules (tags are never reused). */
  private sportEntries = new Map<number, SportFunction[]>();
  private byTag = new Map<number, SportFunction>();
  private nextTag = 1;
  private held = 0;
  private liveAtCollect = 0;
  /** Functions created so far (every other one was found again). */
  created = 0;

  intern(pieces: Piece<number>[]): ClassFunction {
    const hash = hashPieces(pieces);
    const bucket = this.entries.get(hash);
    const found = bucket?.find((cls) => samePieces(cls.pieces, pieces));
    if (found !== undefined) return found;
    checkCover(pieces, L4_MAX, 'l4 points');
    const tags = [...new Set(pieces.filter((p) => p.value < 0).map((p) => -p.value))];
    const cls = new Decision(
      pieces,
      tags.map((t) => this.byTag.get(t)!),
    );
    this.created++;
    this.held++;
    if (bucket === undefined) this.entries.set(hash, [cls]);
    else bucket.push(cls);
    return cls;
  }

  /** The tag of the source-port function `pieces` (interned like a class). */
  internSport(pieces: Piece<VerdictCode>[]): number {
    const hash = hashPieces(pieces);
    const bucket = this.sportEntries.get(hash);
    const found = bucket?.find((f) => samePieces(f.pieces, pieces));
    if (found !== undefined) return found.tag;
    checkCover(pieces, SPORT_MAX, 'source ports');
    const numbers: number[] = [];
    for (const p of pieces) numbers.push(p.lo, p.hi, p.value);
    const fn: SportFunction = {
      tag: this.nextTag++,
      fingerprint: `s${fingerprintNumbers(numbers)}`,
      pieces,
    };
    this.byTag.set(fn.tag, fn);
    if (bucket === undefined) this.sportEntries.set(hash, [fn]);
    else bucket.push(fn);
    return fn.tag;
  }

  /** Whether the table has grown enough since the last collection to collect again. */
  get collectDue(): boolean {
    return this.held > Math.max(1024, 2 * this.liveAtCollect);
  }

  /** Keeps only `live` (the classes of the sets in use) and their source-port functions. */
  collect(live: Iterable<ClassFunction>): void {
    this.entries = new Map();
    this.sportEntries = new Map();
    this.byTag = new Map();
    this.held = 0;
    for (const cls of live) {
      const hash = hashPieces(cls.pieces);
      const bucket = this.entries.get(hash);
      if (bucket === undefined) this.entries.set(hash, [cls]);
      else if (bucket.includes(cls)) continue;
      else bucket.push(cls);
      this.held++;
      for (const fn of cls.sports) {
        if (this.byTag.has(fn.tag)) continue;
        this.byTag.set(fn.tag, fn);
        const h = hashPieces(fn.pieces);
        const b = this.sportEntries.get(h);
        if (b === undefined) this.sportEntries.set(h, [fn]);
        else b.push(fn);
      }
    }
    this.liveAtCollect = this.held;
  }
}

export function decideProgram(program: Program, table: ClassTable = new ClassTable()): SetFunction {
  return new Sweep(program, table).run();
}

/**
 * The program's decision over the addresses [lo, hi] only: pieces covering exactly that
 * range (the first and last cut at its ends), equal to the pieces decideProgram gives
 * there. Only the atoms reaching into the range take part, so the cost follows what the
 * range holds, not the program's size (the incremental compile, ./incremental.ts).
 */
export function decideWithin(
  program: Program,
  lo: number,
  hi: number,
  table: ClassTable,
): Piece<ClassFunction>[] {
  const all = new Sweep(program, table, [lo, hi]).run().pieces;
  const out: Piece<ClassFunction>[] = [];
  for (const p of all) {
    if (p.hi < lo || p.lo > hi) continue;
    out.push({ lo: Math.max(p.lo, lo), hi: Math.min(p.hi, hi), value: p.value });
  }
  return out;
}

class Sweep {
  private readonly universal: Move[] = [];
  private readonly groups: Group[] = [];
  /** By the sorted ids of the active groups. */
  private readonly nodes = new Map<string, Node>();
  /** Whether any rule of the program is restricted by source port. */
  private hasSport = false;

  /**
   * `within`: only the atoms reaching into [lo, hi] make groups, cut to it; outside it
   * the sweep then answers the baseline, which decideWithin throws away.
   */
  constructor(
    program: Program,
    private readonly table: ClassTable,
    within?: readonly [number, number],
  ) {
    const last = program.steps[program.steps.length - 1];
    if (last === undefined || last.kind !== 'end' || last.passes) {
      throw new Error('a policy program must end with a denying end (the profiles default)');
    }
    const groupByAddr = new Map<string, Group>();
    const steps = program.steps;
    const bounds = within === undefined ? undefined : program.bounds;
    for (let index = 0; index < steps.length; index++) {
      // Restricted: most steps lie wholly before or after the range, seen in `bounds`
      // without touching the step (a memory-bound walk over 10,000 objects otherwise).
      if (
        bounds !== undefined &&
        (bounds[2 * index]! > within![1] || bounds[2 * index + 1]! < within![0])
      )
        continue;
      const step = steps[index]!;
      if (step.kind === 'end') {
        this.universal.push({ step: index, kind: 'end', passes: step.passes, ruleId: step.ruleId });
        continue;
      }
      const atoms = step.atoms;
      for (let k = 0; k < atoms.length; k++) {
        const atom = atoms[k]!;
        const n = atom.addr.length;
        if (n === 0) continue;
        const first = atom.addr[0]!;
        const everywhere = n === 1 && first[0] === 0 && first[1] === ADDRESS_MAX;
        // Restricted: most atoms lie wholly before or after the range (two comparisons).
        if (
          within !== undefined &&
          !everywhere &&
          (first[0] > within[1] ||
            atom.addr[n - 1]![1] < within[0] ||
            !reaches(atom.addr, within[0], within[1]))
        )
          continue;
        if (atom.l4.length === 0) continue;
        if (atom.sport !== undefined && atom.sport.length === 0) continue;
        const move: Move = {
          step: index,
          kind: 'rule',
          action: step.action,
          ruleId: step.ruleId,
          l4: atom.l4,
          sport: atom.sport,
        };
        if (atom.sport !== undefined) this.hasSport = true;
        if (everywhere) {
          this.universal.push(move);
          continue;
        }
        const addr = within === undefined ? atom.addr : intersect(atom.addr, [within]);
        let group = groupByAddr.get(atom.addrKey);
        if (group === undefined) {
          group = { addr, moves: [], size: size(addr), mentioned: [] };
          groupByAddr.set(atom.addrKey, group);
          this.groups.push(group);
        }
        group.moves.push(move);
      }
    }
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
  private walk(a: readonly Move[], b: readonly Move[], points: IntervalSet): Piece<number>[] {
    if (this.hasSport) {
      const region = this.sportRegion(a, b, points);
      if (region.length > 0) return this.walkWithSports(mergeByStep(a, b), points, region);
    }
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

  /** The points of `points` some source-port-restricted move of `a` or `b` matches. */
  private sportRegion(a: readonly Move[], b: readonly Move[], points: IntervalSet): IntervalSet {
    const reach: (readonly [number, number])[] = [];
    for (const list of [a, b])
      for (const m of list) if (m.kind === 'rule' && m.sport !== undefined) reach.push(...m.l4);
    return reach.length === 0 ? [] : intersect(points, normalize(reach));
  }

  /**
   * The walk where source ports matter: outside `region` the one-dimensional walk (the
   * restricted moves do not reach there); inside it, the region cut into pieces over
   * which the same moves match, each decided by a walk over the source ports of the
   * moves that match it (and every tier end), memoised by that list of moves.
   */
  private walkWithSports(
    moves: readonly Move[],
    points: IntervalSet,
    region: IntervalSet,
  ): Piece<number>[] {
    const outside = new L4Walk(subtract(points, region));
    for (const move of moves) {
      if (outside.done) break;
      if (move.kind === 'end') outside.endTier(move.passes, move.ruleId);
      else outside.rule(move.action, move.ruleId, move.l4);
    }
    const events: [x: number, move: number, delta: 1 | -1][] = [];
    moves.forEach((m, index) => {
      if (m.kind !== 'rule') return;
      for (const [lo, hi] of intersect(m.l4, region))
        events.push([lo, index, 1], [hi + 1, index, -1]);
    });
    events.sort((x, y) => x[0] - y[0]);
    const memo = new Map<string, number>();
    const inside: Piece<number>[] = [];
    const active = new Set<number>();
    let e = 0;
    for (const [rlo, rhi] of region) {
      let lo = rlo;
      while (lo <= rhi) {
        while (e < events.length && events[e]![0] <= lo) {
          const [, index, delta] = events[e++]!;
          if (delta === 1) active.add(index);
          else active.delete(index);
        }
        const hi = Math.min(rhi, e < events.length ? events[e]![0] - 1 : rhi);
        const ids = [...active].sort((x, y) => x - y);
        const key = ids.join(',');
        let value = memo.get(key);
        if (value === undefined) {
          value = this.sportValue(moves, ids);
          memo.set(key, value);
        }
        inside.push({ lo, hi, value });
        lo = hi + 1;
      }
    }
    return mergePieces(outside.result(), inside);
  }

  /** The decision over the source ports of the moves `ids` (indices into `moves`) and every end. */
  private sportValue(moves: readonly Move[], ids: readonly number[]): number {
    const walk = new L4Walk(ALL_SPORTS);
    const on = new Set(ids);
    for (let index = 0; index < moves.length && !walk.done; index++) {
      const m = moves[index]!;
      if (m.kind === 'end') walk.endTier(m.passes, m.ruleId);
      else if (on.has(index)) walk.rule(m.action, m.ruleId, m.sport ?? ALL_SPORTS);
    }
    const pieces = walk.result();
    if (pieces.length === 1) return pieces[0]!.value;
    return -this.table.internSport(pieces);
  }

  /** One object per distinct function (see ClassTable). */
  private intern(pieces: Piece<number>[]): ClassFunction {
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

/** Whether the interval set has a point in [lo, hi] (a binary search, no allocation). */
function reaches(set: IntervalSet, lo: number, hi: number): boolean {
  let a = 0;
  let b = set.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (set[m]![1] < lo) a = m + 1;
    else b = m;
  }
  return a < set.length && set[a]![0] <= hi;
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
  base: readonly Piece<number>[],
  region: IntervalSet,
  inside: readonly Piece<number>[],
): Piece<number>[] {
  const out: Piece<number>[] = [];
  const emit = (lo: number, hi: number, value: number): void => {
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

/** Two sorted, disjoint piece lists as one, with equal touching neighbours merged. */
function mergePieces(a: readonly Piece<number>[], b: readonly Piece<number>[]): Piece<number>[] {
  const all = [...a, ...b].sort((x, y) => x.lo - y.lo);
  const out: Piece<number>[] = [];
  for (const p of all) {
    const last = out[out.length - 1];
    if (last !== undefined && last.value === p.value && last.hi + 1 === p.lo)
      out[out.length - 1] = { lo: last.lo, hi: p.hi, value: p.value };
    else out.push(p);
  }
  return out;
}

function hashPieces(pieces: readonly Piece<number>[]): number {
  let h = 0x811c9dc5;
  for (const p of pieces) {
    h = Math.imul(h ^ (p.lo | 0), 0x01000193);
    h = Math.imul(h ^ (p.hi | 0), 0x01000193);
    h = Math.imul(h ^ ((p.value % 0x100000000) | 0), 0x01000193);
    h = Math.imul(h ^ ((p.value / 0x100000000) | 0), 0x01000193);
  }
  return h >>> 0;
}

function samePieces(a: readonly Piece<number>[], b: readonly Piece<number>[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.lo !== y.lo || x.hi !== y.hi || x.value !== y.value) return false;
  }
  return true;
}

/** A function must decide every point: the program's last end guarantees it. */
function checkCover(pieces: readonly Piece<number>[], max: number, what: string): void {
  let next = 0;
  for (const p of pieces) {
    if (p.lo !== next) throw new Error(`internal: ${what} ${next}..${p.lo - 1} left undecided`);
    next = p.hi + 1;
  }
  if (next !== max + 1) throw new Error(`internal: ${what} from ${next} left undecided`);
}

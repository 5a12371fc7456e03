/**
 * The incremental compile: a program that differs from the one compiled for the same
 * (endpoint, direction) in the last update by a few rules is decided again only over the
 * addresses those rules' atoms reach, and its set's entries change only there.
 *
 * Why that is exact: a peer address outside every changed atom meets the same moves in
 * the same order in both programs (the changed steps have no atom there, and tier ends
 * may not change — such an edit takes the full path), so its class is the same. The
 * address range to redo is the hull of the changed atoms' addresses; the sweep is run on
 * the new program restricted to it (./sweep.ts decideWithin), spliced into the previous
 * pieces, and only the pieces whose extent changed are emitted again. The result is, to
 * the entry, what the full compile gives (test/unit/compile-incremental.test.ts holds it
 * to that over random edit sequences).
 */
import { ADDRESS_MAX } from './addresses.js';
import {
  emitClass,
  BudgetExceeded,
  type ClassContent,
  type EntryLimits,
  type SetContent,
} from './emit.js';
import { digestAll, digestEdit, type SetDigest } from './set-digest.js';
import type { IntervalSet } from './intervals.js';
import { rangeToPrefixes, type Piece } from './prefixes.js';
import type { Atom, Program, Step } from './program.js';
import { decideWithin, type ClassFunction, type ClassTable, type SetFunction } from './sweep.js';

type SetEntry = SetContent['entries'][number];

/** A compiled set with what the next incremental compile needs. */
export interface SweptSet {
  readonly program: Program;
  readonly pieces: readonly Piece<ClassFunction>[];
  /** Each piece as the set's fingerprint spells it (spliced along with the pieces). */
  readonly spelled: readonly string[];
  /** The chunked digest the set's fingerprint is (./set-digest.ts). */
  readonly digest: SetDigest;
  /**
   * Class fingerprint → addresses it covers. Handed on, not copied: the set revised from
   * this one takes the map over and marks it spent (`coverage.spent`); revising a spent
   * record again (two endpoints that shared it, edited apart) counts afresh.
   */
  readonly coverage: Coverage;
  /** The class of the bits-0 entry. */
  readonly fallback: string;
  readonly content: SetContent;
}

/** Class fingerprint → addresses covered, and whether a revision took it over. */
export interface Coverage {
  readonly counts: Map<string, number>;
  spent: boolean;
}

function countCoverage(pieces: readonly Piece<ClassFunction>[]): Coverage {
  const counts = new Map<string, number>();
  for (const p of pieces) {
    const key = p.value.fingerprint;
    counts.set(key, (counts.get(key) ?? 0) + (p.hi - p.lo + 1));
  }
  return { counts, spent: false };
}

/** What an incremental compile changed in the set's entries (keyed by addr/bits). */
export interface SetEdit {
  /** The set the content was derived from. */
  readonly from: SetContent;
  /** Entries new or with another class, longest prefix first. */
  readonly writes: readonly SetEntry[];
  /** Entries the new content no longer has, shortest prefix first. */
  readonly deletes: readonly SetEntry[];
  /** The new entries are the old ones with [start, end) replaced by `span`. */
  readonly start: number;
  readonly end: number;
  readonly span: readonly SetEntry[];
  /** Classes the set gained, and the fingerprints of those it lost. */
  readonly gained: readonly ClassContent[];
  readonly lost: readonly string[];
}

/** A piece as a set's fingerprint spells it (as ./emit.ts emitSet). */
function spell(p: Piece<ClassFunction>): string {
  return `${p.lo}-${p.hi}:${p.value.fingerprint}`;
}

/** The record of a set emitted by the full path. */
export function sweptSet(program: Program, fn: SetFunction, content: SetContent): SweptSet {
  const spelled = fn.pieces.map(spell);
  return {
    program,
    pieces: fn.pieces,
    spelled,
    digest: digestAll(fn.pieces, spelled),
    coverage: countCoverage(fn.pieces),
    fallback: content.entries[0]!.classFingerprint,
    content,
  };
}

/**
 * The address range the edit from `before` to `after` reaches: 'same' when the steps
 * decide alike, 'all' when the edit needs the full compile (a tier end changed, or a
 * changed rule has an atom over every address).
 */
export function editedRange(
  before: Program,
  after: Program,
): 'same' | 'all' | readonly [number, number] {
  const a = before.steps;
  const b = after.steps;
  let head = 0;
  const max = Math.min(a.length, b.length);
  while (head < max && sameStep(a[head]!, b[head]!)) head++;
  let tail = 0;
  while (tail < max - head && sameStep(a[a.length - 1 - tail]!, b[b.length - 1 - tail]!)) tail++;
  let lo = Infinity;
  let hi = -Infinity;
  for (const steps of [a.slice(head, a.length - tail), b.slice(head, b.length - tail)]) {
    for (const step of steps) {
      if (step.kind === 'end') return 'all';
      for (const atom of step.atoms) {
        const first = atom.addr[0];
        const last = atom.addr[atom.addr.length - 1];
        if (first === undefined || last === undefined) continue;
        if (first[0] === 0 && last[1] === ADDRESS_MAX && atom.addr.length === 1) return 'all';
        lo = Math.min(lo, first[0]);
        hi = Math.max(hi, last[1]);
      }
    }
  }
  return lo > hi ? 'same' : [lo, hi];
}

/**
 * The set of `program` derived from `prev` (the set of a program differing from it over
 * `range` only). Undefined when the edit moved the bits-0 entry's class: the caller then
 * compiles in full (every entry would change anyway).
 */
export function reviseSet(
  prev: SweptSet,
  program: Program,
  range: readonly [number, number],
  table: ClassTable,
  limits: EntryLimits,
): { swept: SweptSet; edit: SetEdit } | undefined {
  const [rlo, rhi] = range;
  const old = prev.pieces;
  // Old pieces [i, j) meet the range.
  let i = firstEndingAtOrAfter(old, rlo);
  let j = firstEndingAtOrAfter(old, rhi) + 1;
  const mid: Piece<ClassFunction>[] = [];
  const push = (p: Piece<ClassFunction>): void => {
    const last = mid[mid.length - 1];
    if (last !== undefined && last.value.fingerprint === p.value.fingerprint)
      mid[mid.length - 1] = { lo: last.lo, hi: p.hi, value: last.value };
    else mid.push(p);
  };
  const first = old[i]!;
  const lastOld = old[j - 1]!;
  if (first.lo < rlo) push({ lo: first.lo, hi: rlo - 1, value: first.value });
  for (const p of decideWithin(program, rlo, rhi, table)) push(p);
  if (lastOld.hi > rhi) push({ lo: rhi + 1, hi: lastOld.hi, value: lastOld.value });
  // Equal neighbours join the run (neighbours differ, so at most one on each side).
  if (i > 0 && old[i - 1]!.value.fingerprint === mid[0]!.value.fingerprint) {
    i--;
    mid[0] = { lo: old[i]!.lo, hi: mid[0]!.hi, value: mid[0]!.value };
  }
  if (j < old.length && old[j]!.value.fingerprint === mid[mid.length - 1]!.value.fingerprint) {
    const end = mid.length - 1;
    mid[end] = { lo: mid[end]!.lo, hi: old[j]!.hi, value: mid[end]!.value };
    j++;
  }
  const pieces = old.slice(0, i).concat(mid, old.slice(j));
  const spelled = prev.spelled.slice(0, i).concat(mid.map(spell), prev.spelled.slice(j));

  const taken = prev.coverage.spent ? countCoverage(prev.pieces) : prev.coverage;
  taken.spent = true;
  const coverage = taken.counts;
  // The classes new to the set (asked before the counts change).
  const gainedFps = new Set<string>();
  for (const p of mid) if (!coverage.has(p.value.fingerprint)) gainedFps.add(p.value.fingerprint);
  for (let k = i; k < j; k++) {
    const p = old[k]!;
    const key = p.value.fingerprint;
    const left = coverage.get(key)! - (p.hi - p.lo + 1);
    if (left === 0) coverage.delete(key);
    else coverage.set(key, left);
  }
  for (const p of mid) {
    const key = p.value.fingerprint;
    coverage.set(key, (coverage.get(key) ?? 0) + (p.hi - p.lo + 1));
  }
  // More than half the space is the unique most common class; else count.
  const held = coverage.get(prev.fallback) ?? 0;
  if (held <= 2 ** 31 && fallbackOf(coverage, pieces) !== prev.fallback) return undefined;
  const fallback = prev.fallback;

  // Entries: [bits 0, then each non-fallback piece's prefixes in address order].
  const oldEntries = prev.content.entries;
  const span: readonly [number, number] = [old[i]!.lo, old[j - 1]!.hi];
  const ei = firstEntryAtOrAfter(oldEntries, span[0]);
  const ej = firstEntryAtOrAfter(oldEntries, span[1] + 1);
  const midEntries: SetEntry[] = [];
  for (const p of mid) {
    const classFingerprint = p.value.fingerprint;
    if (classFingerprint === fallback) continue;
    for (const { value, bits } of rangeToPrefixes(p.lo, p.hi, 32))
      midEntries.push({ addr: value, bits, classFingerprint });
  }
  const entries = oldEntries.slice(0, ei).concat(midEntries, oldEntries.slice(ej));
  if (entries.length > limits.maxEntriesPerSet) {
    throw new BudgetExceeded('set', entries.length, limits.maxEntriesPerSet);
  }
  const before = new Map<string, SetEntry>();
  for (let k = ei; k < ej; k++) before.set(entryKey(oldEntries[k]!), oldEntries[k]!);
  const writes: SetEntry[] = [];
  for (const e of midEntries) {
    const key = entryKey(e);
    const was = before.get(key);
    if (was === undefined || was.classFingerprint !== e.classFingerprint) writes.push(e);
    before.delete(key);
  }
  const deletes = [...before.values()];
  writes.sort((x, y) => y.bits - x.bits);
  deletes.sort((x, y) => x.bits - y.bits);

  // The classes: the previous ones still covering something, then the new ones.
  const lost = new Set<string>();
  for (let k = i; k < j; k++) {
    const fp = old[k]!.value.fingerprint;
    if (!coverage.has(fp)) lost.add(fp);
  }
  const gained: ClassContent[] = [];
  for (const p of mid) {
    const fp = p.value.fingerprint;
    if (!gainedFps.delete(fp)) continue;
    gained.push(emitClass(p.value, limits));
  }
  const classes =
    lost.size === 0 && gained.length === 0
      ? prev.content.classes
      : prev.content.classes.filter((c) => !lost.has(c.fingerprint)).concat(gained);
  const digest = digestEdit(prev.digest, pieces, spelled, i, mid.length);
  const content: SetContent = { fingerprint: digest.fingerprint, entries, classes };
  return {
    swept: {
      program,
      pieces,
      spelled,
      digest,
      coverage: { counts: coverage, spent: false },
      fallback,
      content,
    },
    edit: {
      from: prev.content,
      writes,
      deletes,
      start: ei,
      end: ej,
      span: midEntries,
      gained,
      lost: [...lost],
    },
  };
}

/**
 * The bits-0 entry's class: the most coverage, ties to the class met first (as
 * ./prefixes.ts functionToPrefixes decides it).
 */
function fallbackOf(
  coverage: ReadonlyMap<string, number>,
  pieces: readonly Piece<ClassFunction>[],
): string {
  let best = -1;
  const tied = new Set<string>();
  for (const [key, n] of coverage) {
    if (n > best) {
      best = n;
      tied.clear();
      tied.add(key);
    } else if (n === best) tied.add(key);
  }
  if (tied.size === 1) return [...tied][0]!;
  for (const p of pieces) if (tied.has(p.value.fingerprint)) return p.value.fingerprint;
  throw new Error('internal: no class covers the address space');
}

function entryKey(e: SetEntry): string {
  return `${e.addr}/${e.bits}`;
}

/** The first piece with hi >= x (pieces cover the space in order). */
function firstEndingAtOrAfter(pieces: readonly Piece<unknown>[], x: number): number {
  let a = 0;
  let b = pieces.length - 1;
  while (a < b) {
    const m = (a + b) >> 1;
    if (pieces[m]!.hi < x) a = m + 1;
    else b = m;
  }
  return a;
}

/** The first entry after the bits-0 one with addr >= x (those are in address order). */
function firstEntryAtOrAfter(entries: readonly SetEntry[], x: number): number {
  let a = 1;
  let b = entries.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (entries[m]!.addr < x) a = m + 1;
    else b = m;
  }
  return a;
}

function sameStep(x: Step, y: Step): boolean {
  if (x === y) return true;
  if (x.kind === 'end') return y.kind === 'end' && x.ruleId === y.ruleId && x.passes === y.passes;
  if (y.kind === 'end') return false;
  if (x.action !== y.action || x.ruleId !== y.ruleId) return false;
  if (x.atoms === y.atoms) return true;
  if (x.atoms.length !== y.atoms.length) return false;
  for (let k = 0; k < x.atoms.length; k++) if (!sameAtom(x.atoms[k]!, y.atoms[k]!)) return false;
  return true;
}

function sameAtom(x: Atom, y: Atom): boolean {
  return (
    x.addrKey === y.addrKey &&
    sameIntervals(x.l4, y.l4) &&
    (x.sport === y.sport ||
      (x.sport !== undefined && y.sport !== undefined && sameIntervals(x.sport, y.sport)))
  );
}

function sameIntervals(a: IntervalSet, b: IntervalSet): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let k = 0; k < a.length; k++)
    if (a[k]![0] !== b[k]![0] || a[k]![1] !== b[k]![1]) return false;
  return true;
}

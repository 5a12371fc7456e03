/**
 * A set function as map contents: address prefixes → class, and per class l4 prefixes →
 * verdict, each with a bits-0 entry for its most common value. Ids are not chosen here
 * (contents are named by fingerprints; ./ids.ts numbers them), so the same content
 * compiled for different endpoints is recognised as one set.
 */
import { ADDRESS_BITS } from './addresses.js';
import { digestAll } from './set-digest.js';
import { L4_BITS, SPORT_BITS } from './l4.js';
import { functionToPrefixes } from './prefixes.js';
import type { ClassFunction, SetFunction, SportFunction } from './sweep.js';
import { ACTION_BY_SPORT, decodeVerdict, type L4Action, type MapAction } from './verdict.js';

export interface ClassContent {
  readonly fingerprint: string;
  /**
   * Action ACTION_BY_SPORT: the source port decides, by the source-port class
   * `sportFingerprint` (its id goes in the rule id field).
   */
  readonly entries: readonly {
    l4: number;
    bits: number;
    action: L4Action;
    flags: number;
    ruleId: number;
    sportFingerprint?: string;
  }[];
  /** The source-port classes the entries name, each once. */
  readonly sports: readonly SportContent[];
}

/** A source-port class: source-port prefixes (0..16 bits) → verdict. */
export interface SportContent {
  readonly fingerprint: string;
  readonly entries: readonly {
    sport: number;
    bits: number;
    action: MapAction;
    flags: number;
    ruleId: number;
  }[];
}

export interface SetContent {
  readonly fingerprint: string;
  readonly entries: readonly { addr: number; bits: number; classFingerprint: string }[];
  readonly classes: readonly ClassContent[];
}

export interface EntryLimits {
  readonly maxEntriesPerSet: number;
  readonly maxEntriesPerClass: number;
}

/** A set or class needs more entries than its budget; the caller names the endpoint. */
export class BudgetExceeded extends Error {
  override readonly name = 'BudgetExceeded';
  constructor(
    readonly what: 'set' | 'class' | 'source-port class',
    readonly entries: number,
    readonly limit: number,
  ) {
    super(`a policy ${what} needs ${entries} entries, over its budget of ${limit}`);
  }
}

export function emitSet(fn: SetFunction, limits: EntryLimits): SetContent {
  const classes = fn.classes.map((cls) => emitClass(cls, limits));
  const fpOf = new Map(fn.classes.map((cls, i) => [cls, classes[i]!.fingerprint] as const));
  const prefixes = functionToPrefixes(fn.pieces, ADDRESS_BITS, (cls) => fpOf.get(cls)!);
  if (prefixes.length > limits.maxEntriesPerSet) {
    throw new BudgetExceeded('set', prefixes.length, limits.maxEntriesPerSet);
  }
  const entries = prefixes.map((p) => ({
    addr: p.value,
    bits: p.bits,
    classFingerprint: fpOf.get(p.result)!,
  }));
  const spelled = fn.pieces.map((p) => `${p.lo}-${p.hi}:${fpOf.get(p.value)!}`);
  return { fingerprint: digestAll(fn.pieces, spelled).fingerprint, entries, classes };
}

/**
 * A class's entries, by class object: the sweep's ClassTable keeps one object per
 * function across updates, so a class an update leaves unchanged is emitted once. The
 * content does not depend on the limits; the budget is checked on every use.
 */
const emittedClasses = new WeakMap<ClassFunction, ClassContent>();

export function emitClass(cls: ClassFunction, limits: EntryLimits): ClassContent {
  let content = emittedClasses.get(cls);
  if (content === undefined) {
    const prefixes = functionToPrefixes(cls.pieces, L4_BITS, (code) => code);
    const sports = cls.sports.map(emitSport);
    const byTag = new Map(cls.sports.map((f, i) => [f.tag, sports[i]!.fingerprint] as const));
    content = {
      fingerprint: cls.fingerprint,
      entries: prefixes.map((p) => {
        if (p.result < 0) {
          const sportFingerprint = byTag.get(-p.result)!;
          return {
            l4: p.value,
            bits: p.bits,
            action: ACTION_BY_SPORT,
            flags: 0,
            ruleId: 0,
            sportFingerprint,
          };
        }
        const { action, flags, ruleId } = decodeVerdict(p.result);
        return { l4: p.value, bits: p.bits, action, flags, ruleId };
      }),
      sports,
    };
    emittedClasses.set(cls, content);
  }
  if (content.entries.length > limits.maxEntriesPerClass) {
    throw new BudgetExceeded('class', content.entries.length, limits.maxEntriesPerClass);
  }
  for (const sport of content.sports) {
    if (sport.entries.length > limits.maxEntriesPerClass) {
      throw new BudgetExceeded(
        'source-port class',
        sport.entries.length,
        limits.maxEntriesPerClass,
      );
    }
  }
  return content;
}

const emittedSports = new WeakMap<SportFunction, SportContent>();

function emitSport(fn: SportFunction): SportContent {
  let content = emittedSports.get(fn);
  if (content === undefined) {
    const prefixes = functionToPrefixes(fn.pieces, SPORT_BITS, (code) => code);
    content = {
      fingerprint: fn.fingerprint,
      entries: prefixes.map((p) => {
        const { action, flags, ruleId } = decodeVerdict(p.result);
        return { sport: p.value, bits: p.bits, action, flags, ruleId };
      }),
    };
    emittedSports.set(fn, content);
  }
  return content;
}

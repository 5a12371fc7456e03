/**
 * One rule list (a policy's or a profile's rules in one direction) resolved as far as it
 * can be without knowing the endpoint E: peer addresses, l4 points, rule ids. What is
 * left to E — its local-side fields, and for ingress the named ports on E itself — is
 * filled in by `segment(E)`, which yields the rules' steps of E's program.
 *
 * Named ports are resolved on their own side: destination ports on the destination,
 * source ports (Calico: the source endpoint's container ports) on the source. On E's own
 * side (ingress destination, egress source) they are a constant per E; on the peer's
 * side the rule is split by peer address — each peer endpoint holding one of the names
 * gets its own atoms, every other address the atoms with the names matching nothing.
 */
import type { Direction, Endpoint, EntityMatch, NamedPort, Rule, RuleRef } from '../model.js';
import { normalize, spell, subtract, contains, type IntervalSet } from './intervals.js';
import {
  portRestriction,
  present,
  restrictionNames,
  restrictL4,
  ruleBaseL4,
  sportNames,
  sportParts,
  sportRestriction,
  type PortRestriction,
  type SportRestriction,
} from './l4.js';
import { fingerprint } from './fingerprint.js';
import type { Atom, RuleAction, RuleStep } from './program.js';
import type { RuleIds } from './rule-ids.js';
import type { RuleOwner, WorldIndex } from './world-index.js';

/** A list's contribution to one endpoint's program. */
export interface Segment {
  readonly steps: readonly RuleStep[];
  /** Each step's address hull, as Program.bounds. */
  readonly bounds: Float64Array;
  readonly fingerprint: string;
}

export interface RulesPlanOptions {
  readonly direction: Direction;
  readonly owner: RuleOwner;
  readonly refOf: (index: number) => RuleRef;
  /** Profiles: a Pass ends profile evaluation as a deny by this rule id. */
  readonly passDeniesBy?: number;
}

interface PlannedRule {
  readonly action: RuleAction;
  readonly ruleId: number;
  /** The local side, when it constrains anything. */
  readonly local: EntityMatch | undefined;
  /** The atoms and their fingerprint when they do not depend on E. */
  readonly fixed: { readonly atoms: readonly Atom[]; readonly key: string } | undefined;
  readonly ports: RulePorts;
}

/** What a rule's atoms are made of, besides the named ports of E. */
interface RulePorts {
  readonly direction: Direction;
  readonly peer: IntervalSet;
  readonly base: IntervalSet;
  readonly restriction: PortRestriction;
  readonly sports: SportRestriction;
  /** The endpoints holding a name resolved on the peer's side; undefined when none is. */
  readonly holders: readonly { ip: number; ports: readonly NamedPort[] }[] | undefined;
}

export class RulesPlan {
  private readonly rules: readonly PlannedRule[];
  /** The rule list as given (a later plan of the same list, edited, reuses by position). */
  private readonly source: readonly Rule[];
  /** Whether any rule needs E (local side or ingress named ports). */
  readonly dependsOnEndpoint: boolean;
  private readonly segments = new Map<string, Segment>();
  /** Per segment key, each rule's step and spelling (undefined: no step for E). */
  private readonly byRule = new Map<
    string,
    { steps: (RuleStep | undefined)[]; parts: string[]; digests: string[]; hulls: Float64Array }
  >();
  private readonly before: RulesPlan | undefined;

  constructor(
    rules: readonly Rule[],
    opts: RulesPlanOptions,
    index: WorldIndex,
    ruleIds: RuleIds,
    cache: RuleCache,
    /**
     * The plan of this list before an edit, resolved through the same index with the same
     * options: a rule equal to the one it had at the same position is taken from it (an
     * edit of one rule among 10,000 resolves one rule, without even a cache lookup for
     * the others).
     */
    before?: RulesPlan,
  ) {
    this.source = rules;
    this.before = before;
    const was = before?.source;
    const planned = new Array<PlannedRule>(rules.length);
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      // By identity first: the versions of a policy share their unchanged rules
      // (../reuse.ts); else by value.
      if (
        was !== undefined &&
        i < was.length &&
        (was[i] === rule || ruleJson(was[i]!) === ruleJson(rule))
      )
        planned[i] = before!.rules[i]!;
      else planned[i] = cache.plan(rule, i, opts, index, ruleIds);
    }
    this.rules = planned;
    this.dependsOnEndpoint = this.rules.some((r) => r.local !== undefined || r.fixed === undefined);
  }

  /**
   * The steps for endpoint E. `variant` names everything about E the plan may depend on
   * (equal variants, equal segments); it is ignored when the plan depends on nothing.
   */
  segment(endpoint: Endpoint, variant: string, index: WorldIndex): Segment {
    const key = this.dependsOnEndpoint ? variant : '';
    let segment = this.segments.get(key);
    if (segment === undefined) {
      segment = this.build(endpoint, index, key);
      this.segments.set(key, segment);
    }
    return segment;
  }

  /**
   * The segment for E: each rule's step, taken from the plan before the edit where the
   * rule is the same planned rule and that plan built a segment for the same key.
   */
  private build(endpoint: Endpoint, index: WorldIndex, key: string): Segment {
    const was = this.before?.byRule.get(key);
    const wasRules = this.before?.rules;
    const n = this.rules.length;
    const stepAt: (RuleStep | undefined)[] = new Array<RuleStep | undefined>(n);
    const partAt: string[] = new Array<string>(n);
    const digests: string[] = new Array<string>(Math.ceil(n / CHUNK));
    const hulls = new Float64Array(2 * n);
    const steps: RuleStep[] = [];
    const bounds: number[] = [];
    for (let c = 0; c * CHUNK < n; c++) {
      const end = Math.min(n, (c + 1) * CHUNK);
      // A chunk of the same planned rules as before (at the same places) keeps its digest.
      let sameChunk = was !== undefined && was.digests[c] !== undefined;
      for (let i = c * CHUNK; i < end; i++) {
        const rule = this.rules[i]!;
        let step: RuleStep | undefined;
        let part = '';
        if (was !== undefined && wasRules![i] === rule) {
          step = was.steps[i];
          part = was.parts[i]!;
          hulls[2 * i] = was.hulls[2 * i]!;
          hulls[2 * i + 1] = was.hulls[2 * i + 1]!;
        } else {
          sameChunk = false;
          if (rule.local === undefined || index.localSideMatches(rule.local, endpoint)) {
            const fixed = rule.fixed ?? keyed(ruleAtoms(rule.ports, endpoint.ports));
            if (fixed.atoms.length > 0) {
              step = { kind: 'rule', action: rule.action, ruleId: rule.ruleId, atoms: fixed.atoms };
              part = `${rule.ruleId}${rule.action[0]}${fixed.key}`;
            }
          }
          if (step !== undefined) hull(step, hulls, i);
        }
        stepAt[i] = step;
        partAt[i] = part;
        if (step !== undefined) {
          steps.push(step);
          bounds.push(hulls[2 * i]!, hulls[2 * i + 1]!);
        }
      }
      if (sameChunk && (end - c * CHUNK === CHUNK || wasRules!.length === n))
        digests[c] = was!.digests[c]!;
      else digests[c] = fingerprint(partAt.slice(c * CHUNK, end).join(';'));
    }
    this.byRule.set(key, { steps: stepAt, parts: partAt, digests, hulls });
    return {
      steps,
      bounds: Float64Array.from(bounds),
      fingerprint: fingerprint(`${n}:${digests.join(',')}`),
    };
  }
}

/** The hull of a step's atoms' addresses, into `out` at 2i, 2i+1. */
function hull(step: RuleStep, out: Float64Array, i: number): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (const atom of step.atoms) {
    const n = atom.addr.length;
    if (n === 0) continue;
    lo = Math.min(lo, atom.addr[0]![0]);
    hi = Math.max(hi, atom.addr[n - 1]![1]);
  }
  out[2 * i] = lo;
  out[2 * i + 1] = hi;
}

/**
 * Rules per chunk of a list's digest: an edit of one rule hashes its chunk again and the
 * chunks' digests, not the whole list (a 10,000-rule list spelled whole is ~1 MB).
 */
const CHUNK = 256;

/**
 * Resolved rules, kept across updates while in use. A rule whose peer side has no
 * selector fields and no peer named ports resolves the same against any entities, so it
 * outlives entity changes (pod churn re-resolves only the rules that select peers).
 */
export class RuleCache {
  private entries = new Map<string, { planned: PlannedRule; entities: string | undefined }>();
  private used = new Map<string, { planned: PlannedRule; entities: string | undefined }>();
  /** Rules resolved so far (every other request was answered from the cache). */
  planned = 0;

  plan(
    rule: Rule,
    index: number,
    opts: RulesPlanOptions,
    world: WorldIndex,
    ruleIds: RuleIds,
  ): PlannedRule {
    const key = ruleKey(
      rule,
      `${opts.owner ?? ''}|${opts.direction}|${opts.refOf(index)}|${opts.passDeniesBy ?? ''}|`,
    );
    let entry = this.used.get(key) ?? this.entries.get(key);
    if (entry === undefined || (entry.entities !== undefined && entry.entities !== world.key)) {
      const planned = planRule(rule, index, opts, world, ruleIds);
      this.planned++;
      entry = {
        planned,
        entities: dependsOnEntities(rule, opts.direction) ? world.key : undefined,
      };
    }
    this.used.set(key, entry);
    return entry.planned;
  }

  /** Forgets every rule not planned since the last call. */
  prune(): void {
    this.entries = this.used;
    this.used = new Map();
  }
}

const ruleKeys = new WeakMap<Rule, { json: string; prefix: string; key: string }>();

/** The JSON of a rule, computed once per object. */
export function ruleJson(rule: Rule): string {
  let cached = ruleKeys.get(rule);
  if (cached === undefined) {
    const json = JSON.stringify(rule);
    cached = { json, prefix: '', key: json };
    ruleKeys.set(rule, cached);
  }
  return cached.json;
}

/** Per chunk of a rule list, by its first rule: the chunk's rules and their digest. */
const chunkDigests = new WeakMap<Rule, { rules: readonly Rule[]; digest: string }>();
const listKeys = new WeakMap<readonly Rule[], string>();

/**
 * A rule list's content as a short string, computed once per list: the digest of each
 * chunk of CHUNK rules' JSON. A chunk of the very rule objects a list seen before had
 * (a new version of a policy shares its unchanged rules, ../reuse.ts) keeps its digest,
 * so a new 10,000-rule list that differs in one rule serialises and hashes one chunk.
 */
export function rulesKey(rules: readonly Rule[]): string {
  let key = listKeys.get(rules);
  if (key !== undefined) return key;
  const digests: string[] = [];
  for (let start = 0; start < rules.length; start += CHUNK) {
    const end = Math.min(rules.length, start + CHUNK);
    const first = rules[start]!;
    const known = chunkDigests.get(first);
    let same = known !== undefined && known.rules.length === end - start;
    for (let i = start; same && i < end; i++) same = known!.rules[i - start] === rules[i];
    if (same) {
      digests.push(known!.digest);
      continue;
    }
    const chunk = rules.slice(start, end);
    const digest = fingerprint(chunk.map(ruleJson).join(','));
    chunkDigests.set(first, { rules: chunk, digest });
    digests.push(digest);
  }
  key = `${rules.length}:${digests.join(',')}`;
  listKeys.set(rules, key);
  return key;
}

/**
 * `prefix` + the JSON of the rule. The JSON is computed once per object, and the last
 * key built per object is kept: asking again with an equal prefix returns the same
 * string, whose hash V8 has already computed — a 10,000-rule list looked up again costs
 * no concatenation or hashing of long keys (it was the top frame of a re-plan).
 */
function ruleKey(rule: Rule, prefix: string): string {
  let cached = ruleKeys.get(rule);
  if (cached === undefined) {
    const json = JSON.stringify(rule);
    cached = { json, prefix, key: prefix + json };
    ruleKeys.set(rule, cached);
  } else if (cached.prefix !== prefix) {
    cached.prefix = prefix;
    cached.key = prefix + cached.json;
  }
  return cached.key;
}

function dependsOnEntities(rule: Rule, direction: Direction): boolean {
  const peerSide = direction === 'ingress' ? rule.source : rule.destination;
  return (
    peerSide.selector !== undefined ||
    peerSide.notSelector !== undefined ||
    peerSide.namespaceSelector !== undefined ||
    peerNames(rule, direction).length > 0
  );
}

/** The names of a rule resolved on E's side (ingress: destination; egress: source). */
function localNames(rule: Rule, direction: Direction): string[] {
  return direction === 'ingress'
    ? restrictionNames(portRestriction(rule.destination))
    : sportNames(sportRestriction(rule.source));
}

/** The names of a rule resolved on the peer's side (ingress: source; egress: destination). */
function peerNames(rule: Rule, direction: Direction): string[] {
  return direction === 'ingress'
    ? sportNames(sportRestriction(rule.source))
    : restrictionNames(portRestriction(rule.destination));
}

function planRule(
  rule: Rule,
  index: number,
  opts: RulesPlanOptions,
  world: WorldIndex,
  ruleIds: RuleIds,
): PlannedRule {
  const ref = opts.refOf(index);
  const [peerSide, localSide] =
    opts.direction === 'ingress'
      ? [rule.source, rule.destination]
      : [rule.destination, rule.source];
  let action = rule.action;
  let ruleId = ruleIds.idOf(ref);
  if (action === 'Pass' && opts.passDeniesBy !== undefined) {
    action = 'Deny';
    ruleId = opts.passDeniesBy;
  }
  const names = peerNames(rule, opts.direction);
  const ports: RulePorts = {
    direction: opts.direction,
    peer: world.peerAddresses(peerSide, opts.owner),
    base: ruleBaseL4(rule),
    restriction: portRestriction(rule.destination),
    sports: sportRestriction(rule.source),
    holders: names.length === 0 ? undefined : world.portHolders(names),
  };
  const fixed =
    localNames(rule, opts.direction).length === 0 ? keyed(ruleAtoms(ports, [])) : undefined;
  return {
    action,
    ruleId,
    local: constrains(localSide) ? localSide : undefined,
    fixed,
    ports,
  };
}

/**
 * A rule's atoms for an endpoint E with named ports `local`: the peer addresses, and per
 * peer endpoint holding a name resolved on the peer's side, the (l4, source ports) the
 * rule matches there; equal results share one atom (see the module comment).
 */
function ruleAtoms(r: RulePorts, local: readonly NamedPort[]): Atom[] {
  const parts = (peerPorts: readonly NamedPort[]) => {
    const [dstPorts, srcPorts] =
      r.direction === 'ingress' ? [local, peerPorts] : [peerPorts, local];
    return sportParts(restrictL4(r.base, r.restriction, dstPorts), r.sports, srcPorts);
  };
  if (r.holders === undefined) return atomsOf(r.peer, parts([]));
  const holderAddresses = normalize(r.holders.map((h) => [h.ip, h.ip] as const));
  const atoms = atomsOf(subtract(r.peer, holderAddresses), parts([]));
  const byParts = new Map<string, { parts: ReturnType<typeof parts>; ips: [number, number][] }>();
  for (const holder of r.holders) {
    if (!contains(r.peer, holder.ip)) continue;
    const p = parts(holder.ports);
    if (p.length === 0) continue;
    const key = p
      .map((x) => `${spell(x.l4)}/${x.sport === undefined ? '*' : spell(x.sport)}`)
      .join('|');
    const entry = byParts.get(key) ?? { parts: p, ips: [] };
    entry.ips.push([holder.ip, holder.ip]);
    byParts.set(key, entry);
  }
  for (const { parts: p, ips } of byParts.values()) atoms.push(...atomsOf(normalize(ips), p));
  return atoms;
}

function atomsOf(
  addr: IntervalSet,
  parts: readonly { l4: IntervalSet; sport: IntervalSet | undefined }[],
): Atom[] {
  const atoms: Atom[] = [];
  for (const { l4, sport } of parts) {
    for (const atom of atomOrNone(addr, l4))
      atoms.push(sport === undefined ? atom : { ...atom, sport });
  }
  return atoms;
}

function atomOrNone(addr: IntervalSet, l4: IntervalSet): Atom[] {
  return addr.length === 0 || l4.length === 0 ? [] : [{ addr, addrKey: spell(addr), l4 }];
}

function keyed(atoms: readonly Atom[]): { atoms: readonly Atom[]; key: string } {
  return {
    atoms,
    key: atoms
      .map((a) => `${a.addrKey}>${spell(a.l4)}${a.sport === undefined ? '' : `<${spell(a.sport)}`}`)
      .join('|'),
  };
}

function constrains(side: EntityMatch): boolean {
  return (
    present(side.nets) ||
    present(side.notNets) ||
    side.selector !== undefined ||
    side.notSelector !== undefined ||
    side.namespaceSelector !== undefined
  );
}

/**
 * World → the program one (endpoint, direction) is judged by: which policies apply, the
 * order of tiers and policies, the tier defaults, the profiles (docs/policy-semantics.md,
 * "Which policies apply" and "Deciding a packet").
 *
 * Rule lists are resolved once per content (a RulesPlan) and reused across endpoints and
 * across updates, for as long as the world's entities are unchanged (rules that do not
 * select peers survive entity changes too, in the RuleCache); the program's
 * fingerprint is known before its steps are laid out, so an unchanged program costs
 * neither layout nor compilation.
 */
import {
  DEFAULT_TIER,
  DEFAULT_TIER_ORDER,
  policyKey,
  type Direction,
  type Endpoint,
  type Failsafe,
  type Policy,
  type Profile,
  type Tier,
  type World,
} from '../model.js';
import { parseSelector } from '../selector.js';
import { fingerprint } from './fingerprint.js';
import { ALL_ADDRESSES, cidrsToSet } from './addresses.js';
import { spell } from './intervals.js';
import { l4Of } from './l4.js';
import type { Program, RuleStep, Step } from './program.js';
import type { RuleIds } from './rule-ids.js';
import { RuleCache, RulesPlan, rulesKey, type Segment } from './rules-plan.js';
import { endpointLabels, type WorldIndex } from './world-index.js';

/** A program named by its fingerprint, laid out on demand. */
export interface PendingProgram {
  readonly fingerprint: string;
  layout(): Program;
}

/** Rule lists resolved through one WorldIndex, kept while they are in use. */
export class PlanCache {
  private plans = new Map<string, RulesPlan>();
  private used = new Map<string, RulesPlan>();
  /** By policy (or profile) and direction, whatever the content: the plan an edit starts from. */
  private latest = new Map<string, RulesPlan>();
  private latestUsed = new Map<string, RulesPlan>();

  constructor(
    readonly index: WorldIndex,
    private readonly ruleIds: RuleIds,
    private readonly rules: RuleCache,
  ) {}

  policyPlan(policy: Policy, direction: Direction): RulesPlan {
    const prefix = `policy/${policy.tier}/${policyKey(policy)}/${direction}`;
    return this.plan(`policy|${direction}|${contentKey(policy)}`, prefix, (before) => {
      const rules = direction === 'ingress' ? policy.ingress : policy.egress;
      return new RulesPlan(
        rules,
        { direction, owner: policy.namespace, refOf: (i) => `${prefix}/${i}` },
        this.index,
        this.ruleIds,
        this.rules,
        before,
      );
    });
  }

  profilePlan(profile: Profile, direction: Direction): RulesPlan {
    const name = `profile/${profile.name}/${direction}`;
    return this.plan(`profile|${direction}|${contentKey(profile)}`, name, (before) => {
      const rules = direction === 'ingress' ? profile.ingress : profile.egress;
      return new RulesPlan(
        rules,
        {
          direction,
          owner: undefined,
          refOf: (i) => `profile/${profile.name}/${direction}/${i}`,
          passDeniesBy: this.ruleIds.idOf(profilesDefaultRef(direction)),
        },
        this.index,
        this.ruleIds,
        this.rules,
        before,
      );
    });
  }

  /** Forgets every plan and rule not asked for since the last call. */
  prune(): void {
    this.plans = this.used;
    this.used = new Map();
    this.latest = this.latestUsed;
    this.latestUsed = new Map();
    this.rules.prune();
  }

  /** `owner` names the list whatever its content (the policy or profile and direction). */
  private plan(key: string, owner: string, make: (before?: RulesPlan) => RulesPlan): RulesPlan {
    let plan = this.used.get(key) ?? this.plans.get(key);
    if (plan === undefined) plan = make(this.latestUsed.get(owner) ?? this.latest.get(owner));
    this.used.set(key, plan);
    this.latestUsed.set(owner, plan);
    return plan;
  }
}

export function profilesDefaultRef(direction: Direction): string {
  return `profiles/default/${direction}`;
}

const contentKeys = new WeakMap<object, string>();

/**
 * The content of a policy or profile as a string, computed once per object: its fields
 * and its rule lists' chunked digests (./rules-plan.ts rulesKey), so a new version that
 * shares its unchanged rules with the last (../reuse.ts) serialises only the changed.
 */
function contentKey(value: Policy | Profile): string {
  let key = contentKeys.get(value);
  if (key === undefined) {
    const { ingress, egress, ...rest } = value;
    key = `${JSON.stringify(rest)}|${rulesKey(ingress)}|${rulesKey(egress)}`;
    contentKeys.set(value, key);
  }
  return key;
}

export class ProgramBuilder {
  constructor(
    private readonly world: World,
    private readonly plans: PlanCache,
    private readonly ruleIds: RuleIds,
  ) {}

  /**
   * The program of (endpoint, direction). `failsafe` (host endpoints only): its ports
   * for the direction are allow rules ahead of every policy (src/policy/failsafe.ts).
   */
  build(endpoint: Endpoint, direction: Direction, failsafe?: Failsafe): PendingProgram {
    const index = this.plans.index;
    const host = endpoint.kind === 'host';
    const labels = endpointLabels(endpoint);
    const nsLabels = host ? {} : index.namespaceLabels(endpoint.namespace);
    const variant = JSON.stringify([endpoint.ip, labels, nsLabels, endpoint.ports, host]);
    const type = direction === 'ingress' ? 'Ingress' : 'Egress';
    const applicable = this.world.policies.filter(
      (p) =>
        p.types.includes(type) &&
        (host
          ? p.namespace === undefined && p.namespaceSelector === undefined
          : p.namespace === undefined || p.namespace === endpoint.namespace) &&
        parseSelector(p.selector).matches(labels) &&
        (host ||
          p.namespace !== undefined ||
          p.namespaceSelector === undefined ||
          parseSelector(p.namespaceSelector).matches(nsLabels)),
    );
    const tiers = [...new Set(applicable.map((p) => p.tier))]
      .map((name) => this.tier(name))
      .sort(compareTiers);

    const parts: (Segment | { end: boolean; ruleId: number })[] = [];
    if (failsafe !== undefined) parts.push(this.failsafeSegment(failsafe, direction));
    for (const tier of tiers) {
      const policies = applicable.filter((p) => p.tier === tier.name).sort(comparePolicies);
      for (const policy of policies)
        parts.push(this.plans.policyPlan(policy, direction).segment(endpoint, variant, index));
      parts.push({
        end: tier.defaultAction === 'Pass',
        ruleId: this.ruleIds.idOf(`tier/${tier.name}/default/${direction}`),
      });
    }
    for (const name of endpoint.profiles) {
      const profile = this.world.profiles.find((p) => p.name === name);
      if (profile === undefined) continue; // an unknown profile has no rules
      parts.push(this.plans.profilePlan(profile, direction).segment(endpoint, variant, index));
    }
    parts.push({ end: false, ruleId: this.ruleIds.idOf(profilesDefaultRef(direction)) });

    const spelled = parts.map((p) =>
      'steps' in p ? p.fingerprint : `end:${p.end ? 'pass' : 'deny'}:${p.ruleId}`,
    );
    const fp = fingerprint(spelled.join('\n'));
    return {
      fingerprint: fp,
      layout: () => {
        const steps: Step[] = [];
        let count = 0;
        for (const part of parts) count += 'steps' in part ? part.steps.length : 1;
        const bounds = new Float64Array(2 * count);
        for (const part of parts) {
          if ('steps' in part) {
            bounds.set(part.bounds, 2 * steps.length);
            for (const step of part.steps) steps.push(step);
          } else {
            bounds[2 * steps.length] = -Infinity;
            bounds[2 * steps.length + 1] = Infinity;
            steps.push({ kind: 'end', passes: part.end, ruleId: part.ruleId });
          }
        }
        return { steps, bounds, fingerprint: fp };
      },
    };
  }

  /**
   * Failsafe ports as allow rules `failsafe/<in|out>/<index>` (the refs the reference
   * evaluator gives): protocol and destination port, and the peer in `net` if given.
   */
  private failsafeSegment(failsafe: Failsafe, direction: Direction): Segment {
    const list = direction === 'ingress' ? failsafe.inbound : failsafe.outbound;
    const d = direction === 'ingress' ? 'in' : 'out';
    const steps: RuleStep[] = [];
    const bounds = new Float64Array(2 * list.length);
    for (const [i, f] of list.entries()) {
      const addr = f.net === undefined ? ALL_ADDRESSES : cidrsToSet([f.net]);
      const l4 = l4Of(f.protocol, f.port);
      steps.push({
        kind: 'rule',
        action: 'Allow',
        ruleId: this.ruleIds.idOf(`failsafe/${d}/${i}`),
        atoms: [{ addr, addrKey: spell(addr), l4: [[l4, l4]] }],
      });
      bounds[2 * i] = addr[0]![0];
      bounds[2 * i + 1] = addr[addr.length - 1]![1];
    }
    return {
      steps,
      bounds,
      fingerprint: fingerprint(`failsafe/${d}:${JSON.stringify(list)}`),
    };
  }

  /** A tier by name: `default` exists implicitly; an unknown tier has no order and denies. */
  private tier(name: string): Tier {
    const tier = this.world.tiers.find((t) => t.name === name);
    if (tier !== undefined) return tier;
    if (name === DEFAULT_TIER) return { name, order: DEFAULT_TIER_ORDER, defaultAction: 'Deny' };
    return { name, defaultAction: 'Deny' };
  }
}

/** Lower order first; an absent order after every present one. */
function compareOrders(a: number | undefined, b: number | undefined): number {
  if (a === b) return 0;
  if (a === undefined) return 1;
  if (b === undefined) return -1;
  return a - b;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareTiers(a: Tier, b: Tier): number {
  return compareOrders(a.order, b.order) || compareNames(a.name, b.name);
}

function comparePolicies(a: Policy, b: Policy): number {
  return (
    compareOrders(a.order, b.order) ||
    compareNames(a.name, b.name) ||
    compareNames(policyKey(a), policyKey(b))
  );
}

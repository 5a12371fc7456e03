/**
 * What the agent knows of the store: the resources of every kind a verdict or a route
 * depends on, kept current from one watch, and the pure conversion of that knowledge
 * into the policy World and this node's endpoints.
 */
import type { KindName, ResourceOf, StoredResource, WatchEvent } from '../datastore/index.js';
import type { Endpoint, Labels, NamedPort, Rule, World } from '../policy/model.js';
import { PROTOCOLS } from '../policy/model.js';
import { parseResource, worldFrom, type Resource } from '../policy/resources.js';
import { reuseRuleLists, sameValue } from '../policy/reuse.js';
import { endpointLabels } from '../policy/service-accounts.js';

/**
 * The kinds the agent watches: every policy input, plus Nodes and IPPools for routes,
 * BGPConfiguration, BGPPeer and BGPFilter for BIRD's configuration (routing: bgp), and
 * FelixConfiguration and AgentConfiguration for its own settings (./felix-config.ts).
 */
export const POLICY_KINDS = [
  'NetworkPolicy',
  'GlobalNetworkPolicy',
  'K8sNetworkPolicy',
  'Tier',
  'Profile',
  'NetworkSet',
  'GlobalNetworkSet',
  'Namespace',
] as const satisfies readonly KindName[];

export const WATCHED_KINDS: readonly KindName[] = [
  ...POLICY_KINDS,
  'WorkloadEndpoint',
  'HostEndpoint',
  'Node',
  'IPPool',
  'BGPConfiguration',
  'BGPPeer',
  'BGPFilter',
  'FelixConfiguration',
  'AgentConfiguration',
];

function parseRevision(text: string): bigint | undefined {
  return /^\d+$/.test(text) ? BigInt(text) : undefined;
}

function refKey(name: string, namespace: string | undefined): string {
  return namespace === undefined ? name : `${namespace}/${name}`;
}

/** Resources by kind, then by `namespace/name` (or `name`). */
export class ClusterModel {
  private readonly byKind = new Map<KindName, Map<string, StoredResource>>();
  /** Bumped on every change: a reconcile can tell whether it saw the latest. */
  generation = 0;
  /** The store revision of the last event applied. */
  revision = '0';
  /**
   * Per kind, the highest revision of an event of it applied (listed or watched): what a
   * wait for that kind compares on the Kubernetes datastore (./revision-waits.ts).
   */
  readonly kindRevisions = new Map<KindName, bigint>();

  constructor() {
    for (const k of WATCHED_KINDS) this.byKind.set(k, new Map());
  }

  /** Applies one watch event; returns whether anything changed. */
  apply(event: WatchEvent): boolean {
    if (event.type === 'synced') {
      this.revision = event.revision;
      return false;
    }
    const m = this.byKind.get(event.kind);
    if (m === undefined) return false;
    this.revision = event.revision;
    const rev = parseRevision(event.revision);
    if (rev !== undefined && rev > (this.kindRevisions.get(event.kind) ?? 0n))
      this.kindRevisions.set(event.kind, rev);
    if (event.type === 'put') {
      m.set(
        refKey(event.resource.metadata.name, event.resource.metadata.namespace),
        event.resource,
      );
    } else if (!m.delete(refKey(event.name, event.namespace))) {
      return false;
    }
    this.generation++;
    return true;
  }

  list<K extends KindName>(kind: K): ResourceOf<K>[] {
    return [...(this.byKind.get(kind)?.values() ?? [])] as ResourceOf<K>[];
  }

  get<K extends KindName>(kind: K, name: string, namespace?: string): ResourceOf<K> | undefined {
    return this.byKind.get(kind)?.get(refKey(name, namespace)) as ResourceOf<K> | undefined;
  }
}

// --- WorkloadEndpoint → policy Endpoint ------------------------------------------------

export type WorkloadEndpoint = ResourceOf<'WorkloadEndpoint'>;

/** The endpoint's IPv4 address: the first /32 of ipNetworks; undefined when it has none. */
export function endpointIp(wep: WorkloadEndpoint): string | undefined {
  for (const net of wep.spec.ipNetworks ?? []) {
    const [addr, prefix] = net.split('/');
    if (
      addr !== undefined &&
      (prefix === undefined || prefix === '32') &&
      /^\d+\.\d+\.\d+\.\d+$/.test(addr)
    )
      return addr;
  }
  return undefined;
}

/**
 * The policy model's view of a WorkloadEndpoint: key `namespace/name`, its first /32,
 * the labels selectors see (metadata labels, the service-account label, what its profiles'
 * labelsToApply give: `labelsToApply` looks a profile's up), profiles (default: the namespace's `kns.` profile, as the CNI writes
 * it), named ports with protocol numbers. undefined when it has no IPv4 address (nothing
 * to match on).
 */
export function wepToEndpoint(
  wep: WorkloadEndpoint,
  labelsToApply: (profile: string) => Labels | undefined = () => undefined,
): Endpoint | undefined {
  const ip = endpointIp(wep);
  if (ip === undefined) return undefined;
  const namespace = wep.metadata.namespace ?? 'default';
  // An unnamed port (a host-port mapping) is no named port: Calico leaves it out too.
  const ports: NamedPort[] = (wep.spec.ports ?? [])
    .filter((p) => p.name !== undefined && p.name !== '')
    .map((p) => ({
      name: p.name,
      protocol: PROTOCOLS[(p.protocol ?? 'TCP') as 'TCP' | 'UDP' | 'SCTP'],
      port: p.port,
    }));
  const profiles =
    wep.spec.profiles && wep.spec.profiles.length > 0
      ? [...wep.spec.profiles]
      : [`kns.${namespace}`];
  const labels = endpointLabels(
    {
      labels: wep.metadata.labels ?? {},
      ...(wep.spec.serviceAccountName === undefined
        ? {}
        : { serviceAccountName: wep.spec.serviceAccountName }),
      profiles,
    },
    labelsToApply,
  );
  return {
    key: `${namespace}/${wep.metadata.name}`,
    namespace,
    name: wep.metadata.name,
    ip,
    labels,
    profiles,
    ports,
  };
}

export interface ModelProblem {
  readonly object: string;
  readonly message: string;
}

export interface BuiltWorld {
  readonly world: World;
  /** Endpoints of every node, by key. */
  readonly endpoints: ReadonlyMap<string, { endpoint: Endpoint; wep: WorkloadEndpoint }>;
  /** Resources that did not convert and were left out (logged; the store validates on write). */
  readonly problems: readonly ModelProblem[];
}

function describe(r: StoredResource): string {
  return `${r.kind} ${refKey(r.metadata.name, r.metadata.namespace)}`;
}

/**
 * The World from the stored resources. Stored specs are converted exactly as user input
 * is (parseResource). A resource that does not convert, or a second endpoint with an
 * address already taken, is left out and reported: the store validated it on write, so
 * this is version skew or a hand edit, and the rest of the cluster must keep working.
 */
export function buildWorld(model: ClusterModel): BuiltWorld {
  const problems: ModelProblem[] = [];
  const resources: Resource[] = [];
  const before = latest.get(model);
  const now = new Map<string, Converted>();
  for (const kind of POLICY_KINDS) {
    for (const stored of model.list(kind).sort(byKey)) {
      const id = `${kind} ${refKey(stored.metadata.name, stored.metadata.namespace)}`;
      const cached = converted.get(stored);
      if (cached !== undefined) {
        if ('problem' in cached) problems.push(cached.problem);
        else {
          resources.push(cached.resource);
          now.set(id, { stored, resource: cached.resource });
        }
        continue;
      }
      try {
        const prev = before?.get(id);
        const resource =
          editedRules(kind, prev, stored) ?? withRulesOf(prev?.resource, convert(stored));
        converted.set(stored, { resource });
        resources.push(resource);
        now.set(id, { stored, resource });
      } catch (e) {
        const problem = { object: describe(stored), message: (e as Error).message };
        converted.set(stored, { problem });
        problems.push(problem);
      }
    }
  }
  latest.set(model, now);
  const profileLabels = new Map<string, Labels>();
  for (const r of resources)
    if (r.kind === 'Profile' && r.profile.labelsToApply !== undefined)
      profileLabels.set(r.profile.name, r.profile.labelsToApply);
  const endpoints = new Map<string, { endpoint: Endpoint; wep: WorkloadEndpoint }>();
  const byIp = new Map<string, string>();
  for (const wep of model.list('WorkloadEndpoint').sort(byKey)) {
    const endpoint = wepToEndpoint(wep, (profile) => profileLabels.get(profile));
    if (endpoint === undefined) continue;
    const other = byIp.get(endpoint.ip);
    if (other !== undefined) {
      problems.push({
        object: describe(wep),
        message: `address ${endpoint.ip} is also WorkloadEndpoint ${other}'s; left out`,
      });
      continue;
    }
    byIp.set(endpoint.ip, endpoint.key);
    endpoints.set(endpoint.key, { endpoint, wep });
  }
  const world = worldFrom(
    resources,
    [...endpoints.values()].map((e) => e.endpoint),
  );
  return { world, endpoints, problems };
}

/**
 * Conversions by stored object: the watch hands out a new object for every change, so a
 * resource is converted once per version, not once per reconcile.
 */
const converted = new WeakMap<StoredResource, { resource: Resource } | { problem: ModelProblem }>();

function convert(stored: StoredResource, spec: unknown = stored.spec): Resource {
  return parseResource({
    apiVersion: stored.apiVersion,
    kind: stored.kind,
    metadata: {
      name: stored.metadata.name,
      ...(stored.metadata.namespace === undefined ? {} : { namespace: stored.metadata.namespace }),
      ...(stored.metadata.labels === undefined ? {} : { labels: stored.metadata.labels }),
    },
    spec,
  });
}

interface Converted {
  readonly stored: StoredResource;
  readonly resource: Resource;
}

/**
 * Per model, each policy resource of the last build as stored and as converted: a new
 * version's unchanged rules are that conversion's objects (../policy/reuse.ts), so the
 * compiler, which compares rules by identity first, sees a one-rule edit as one rule.
 */
const latest = new WeakMap<ClusterModel, Map<string, Converted>>();

/**
 * A Calico policy or profile whose new version differs from the last converted one only
 * in a run of rules per list, converted by converting only those rules: the stored rules
 * equal (by value) to the last version's at the same place from the front or the back
 * keep their converted objects. Converting a whole 10,000-rule policy takes hundreds of
 * milliseconds; a one-rule edit should not. Every other field must be equal, so it
 * converts as before; rules convert one to one and on their own (../policy/rules.ts), so
 * the changed ones are checked by converting the spec with only them in its lists.
 * Undefined: convert the whole version (which also names any error at its real place).
 */
function editedRules(
  kind: KindName,
  prev: Converted | undefined,
  stored: StoredResource,
): Resource | undefined {
  if (
    prev === undefined ||
    (kind !== 'NetworkPolicy' && kind !== 'GlobalNetworkPolicy' && kind !== 'Profile')
  )
    return undefined;
  const was = prev.stored;
  if (was.apiVersion !== stored.apiVersion || was.kind !== stored.kind) return undefined;
  if (!sameValue(was.metadata.labels, stored.metadata.labels)) return undefined;
  const a = was.spec as Record<string, unknown> | undefined;
  const b = stored.spec as Record<string, unknown> | undefined;
  if (typeof a !== 'object' || a === null || typeof b !== 'object' || b === null) return undefined;
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)]))
    if (k !== 'ingress' && k !== 'egress' && !sameValue(a[k], b[k])) return undefined;
  const lists =
    'policy' in prev.resource
      ? prev.resource.policy
      : prev.resource.kind === 'Profile'
        ? prev.resource.profile
        : undefined;
  if (lists === undefined) return undefined;
  const thin: Record<string, unknown> = { ...b };
  const cuts: Record<'ingress' | 'egress', { head: number; tail: number }> = {
    ingress: { head: 0, tail: 0 },
    egress: { head: 0, tail: 0 },
  };
  for (const d of ['ingress', 'egress'] as const) {
    const ra = a[d] ?? [];
    const rb = b[d] ?? [];
    if (!Array.isArray(ra) || !Array.isArray(rb) || ra.length !== lists[d].length) return undefined;
    // A list that becomes empty or stops being empty may change the default types.
    if ((ra.length === 0) !== (rb.length === 0)) return undefined;
    const max = Math.min(ra.length, rb.length);
    let head = 0;
    while (head < max && sameValue(ra[head], rb[head])) head++;
    let tail = 0;
    while (tail < max - head && sameValue(ra[ra.length - 1 - tail], rb[rb.length - 1 - tail]))
      tail++;
    cuts[d] = { head, tail };
    if (d in b) thin[d] = rb.slice(head, rb.length - tail);
  }
  let edited: Resource;
  try {
    edited = convert(stored, thin);
  } catch {
    return undefined;
  }
  const changed =
    'policy' in edited ? edited.policy : edited.kind === 'Profile' ? edited.profile : undefined;
  if (changed === undefined) return undefined;
  const splice = (d: 'ingress' | 'egress'): readonly Rule[] => {
    const { head, tail } = cuts[d];
    const old = lists[d];
    if (changed[d].length === 0 && head + tail === old.length) return old;
    return [...old.slice(0, head), ...changed[d], ...old.slice(old.length - tail)];
  };
  const ingress = splice('ingress');
  const egress = splice('egress');
  // The stored version keeps the last version's raw rules where they are equal, so the
  // model holds one copy of an unchanged rule: the decoded duplicates die young (a
  // 10,000-rule version kept alive would be copied by every scavenge during the reconcile).
  for (const d of ['ingress', 'egress'] as const) {
    const ra = a[d] as unknown[] | undefined;
    const rb = b[d] as unknown[] | undefined;
    if (ra === undefined || rb === undefined) continue;
    const { head, tail } = cuts[d];
    for (let k = 0; k < head; k++) rb[k] = ra[k];
    for (let k = 1; k <= tail; k++) rb[rb.length - k] = ra[ra.length - k];
  }
  if (ingress === lists.ingress && egress === lists.egress) return prev.resource;
  if ('policy' in prev.resource)
    return { ...prev.resource, policy: { ...prev.resource.policy, ingress, egress } };
  if (prev.resource.kind === 'Profile')
    return { ...prev.resource, profile: { ...prev.resource.profile, ingress, egress } };
  return undefined;
}

function withRulesOf(prev: Resource | undefined, next: Resource): Resource {
  if (prev === undefined) return next;
  if ('policy' in next && 'policy' in prev) {
    const policy = reuseRuleLists(prev.policy, next.policy);
    return policy === next.policy ? next : { ...next, policy };
  }
  if (next.kind === 'Profile' && prev.kind === 'Profile') {
    const profile = reuseRuleLists(prev.profile, next.profile);
    return profile === next.profile ? next : { ...next, profile };
  }
  return next;
}

function byKey(a: StoredResource, b: StoredResource): number {
  const ka = refKey(a.metadata.name, a.metadata.namespace);
  const kb = refKey(b.metadata.name, b.metadata.namespace);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

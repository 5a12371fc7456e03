/**
 * Policy resources at the edge: validate user objects (zod, strict specs) and convert
 * them into the model types of src/policy/model.ts.
 *
 * Kinds: projectcalico.org/v3 NetworkPolicy, GlobalNetworkPolicy, Tier, Profile,
 * NetworkSet, GlobalNetworkSet (also read under crd.projectcalico.org/v1 and tortie's
 * former tortie.io/v1); networking.k8s.io/v1 NetworkPolicy; v1 Namespace.
 */
import { z } from 'zod';
import { allRefusals, errorMap, type Refusal } from '../util/zod-issues.js';
import {
  DEFAULT_TIER,
  DEFAULT_TIER_ORDER,
  policyKey,
  type Endpoint,
  type Labels,
  type Namespace,
  type NetworkSet,
  type Policy,
  type Profile,
  type Rule,
  type Tier,
  type World,
} from './model.js';
import {
  cidr,
  dnsLabel,
  dnsSubdomain,
  fail,
  labels,
  order,
  selector,
  uniqueList,
} from './fields.js';
import { rules } from './rules.js';
import { andSelectors, serviceAccountLabelSelector } from './service-accounts.js';
import {
  K8S_POLICY_ORDER,
  K8S_POLICY_PREFIX,
  K8S_POLICY_TIER,
  k8sNetworkPolicySpec,
} from './k8s.js';

/** Calico's per-namespace profiles are named `kns.<namespace>`. */
export const NAMESPACE_PROFILE_PREFIX = 'kns.';

/** The label Kubernetes puts on every namespace: its own name. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';

// --- errors ---------------------------------------------------------------------------

/**
 * A refused resource: `path` names the field (`spec.ingress[0].action`), `reason` says
 * why; `problems` lists every problem of the object (the first is `path`/`reason`).
 */
export class ResourceError extends Error {
  override readonly name = 'ResourceError';
  readonly problems: readonly Refusal[];
  constructor(
    readonly path: string,
    readonly reason: string,
    problems?: readonly Refusal[],
  ) {
    const all = problems ?? [{ path, reason }];
    super(all.map((p) => `${p.path === '' ? 'resource' : p.path}: ${p.reason}`).join('; '));
    this.problems = all;
  }
}

function toResourceError(error: z.ZodError, schema: z.ZodTypeAny): ResourceError {
  const problems = allRefusals(error, schema);
  return new ResourceError(problems[0]!.path, problems[0]!.reason, problems);
}

// --- API versions ---------------------------------------------------------------------

/** The apiVersion tortie writes Calico's kinds under. */
export const CALICO = 'projectcalico.org/v3';

/**
 * The spellings a Calico kind is read under: Calico's own, its CRD group on Kubernetes,
 * and tortie.io/v1 (what tortie wrote before, so nothing stored is lost).
 */
export const CALICO_API_VERSIONS: readonly string[] = [
  CALICO,
  'crd.projectcalico.org/v1',
  'tortie.io/v1',
];

// --- the converted resources ----------------------------------------------------------

export interface ResourceMetadata {
  readonly name: string;
  /** Namespaced kinds only. */
  readonly namespace?: string;
  readonly labels: Labels;
}

interface Base<A extends string, K extends string> {
  readonly apiVersion: A;
  readonly kind: K;
  readonly metadata: ResourceMetadata;
}

export type Resource =
  | (Base<typeof CALICO, 'NetworkPolicy'> & { readonly policy: Policy })
  | (Base<typeof CALICO, 'GlobalNetworkPolicy'> & {
      readonly policy: Policy;
      /** doNotTrack or preDNAT: applies to host endpoints only, never to pods. */
      readonly hostEndpointsOnly?: 'doNotTrack' | 'preDNAT';
    })
  | (Base<'networking.k8s.io/v1', 'NetworkPolicy'> & { readonly policy: Policy })
  | (Base<typeof CALICO, 'Tier'> & { readonly tier: Tier })
  | (Base<typeof CALICO, 'Profile'> & { readonly profile: Profile })
  | (Base<typeof CALICO, 'NetworkSet'> & { readonly networkSet: NetworkSet })
  | (Base<typeof CALICO, 'GlobalNetworkSet'> & { readonly networkSet: NetworkSet })
  | (Base<'v1', 'Namespace'> & { readonly namespace: Namespace });

// --- metadata -------------------------------------------------------------------------

/** Namespaced: `namespace` defaults to "default", as kubectl and calicoctl do. Other fields are ignored. */
function namespacedMetadata(name: z.ZodType<string, z.ZodTypeDef, unknown>) {
  return z
    .object({ name, namespace: dnsLabel.default('default'), labels: labels.optional() })
    .transform((m): ResourceMetadata => ({
      name: m.name,
      namespace: m.namespace,
      labels: m.labels ?? {},
    }));
}

function clusterMetadata(kind: string, name: z.ZodType<string, z.ZodTypeDef, unknown>) {
  return z
    .object({
      name,
      namespace: z.unknown().superRefine((v, ctx) => {
        if (v !== undefined) fail(ctx, `${kind} is cluster-scoped and takes no namespace`);
      }),
      labels: labels.optional(),
    })
    .transform((m): ResourceMetadata => ({ name: m.name, labels: m.labels ?? {} }));
}

function notPrefixed(prefix: string, why: string) {
  return dnsSubdomain.superRefine((name, ctx) => {
    if (name.startsWith(prefix))
      fail(ctx, `names starting with ${JSON.stringify(prefix)} are reserved for ${why}`);
  });
}

// --- specs ----------------------------------------------------------------------------

const policyTypes = uniqueList(z.enum(['Ingress', 'Egress']));

const policySpecFields = {
  tier: dnsLabel.optional(),
  order: order.optional(),
  selector: selector.optional(),
  types: policyTypes.optional(),
  ingress: rules.optional(),
  egress: rules.optional(),
  // Endpoints whose service account's labels match (./service-accounts.ts); "" is none.
  serviceAccountSelector: z.preprocess((v) => (v === '' ? undefined : v), selector.optional()),
  // Calico's hint for its own dataplane (AssumeNeededOnEveryNode): no meaning for tortie.
  performanceHints: z.array(z.enum(['AssumeNeededOnEveryNode'])).optional(),
};

const networkPolicySpec = z.object(policySpecFields).strict();
/**
 * Calico's rules for untracked and pre-DNAT policies (its validator and
 * test/validation/globalnetworkpolicy_test.go): not both; pre-DNAT is ingress only; both
 * need applyOnForward. Such policies apply to host endpoints only: stored, never enforced
 * on pods (worldFrom leaves them out).
 */
function hostStageProblems(
  spec: {
    doNotTrack?: boolean;
    preDNAT?: boolean;
    applyOnForward?: boolean;
    types?: readonly string[];
    egress?: readonly unknown[];
  },
  ctx: z.RefinementCtx,
): void {
  if (spec.doNotTrack === true && spec.preDNAT === true)
    fail(ctx, 'preDNAT and doNotTrack cannot both be true', ['preDNAT']);
  if (spec.preDNAT === true) {
    if ((spec.egress ?? []).length > 0)
      fail(ctx, 'preDNAT policy cannot have any egress rules', ['egress']);
    if ((spec.types ?? []).includes('Egress'))
      fail(ctx, "preDNAT policy cannot have 'Egress' type", ['types']);
  }
  if ((spec.doNotTrack === true || spec.preDNAT === true) && spec.applyOnForward !== true)
    fail(ctx, 'applyOnForward must be true if either preDNAT or doNotTrack is true', [
      'applyOnForward',
    ]);
}

const hostStageFields = {
  doNotTrack: z.boolean().optional(),
  preDNAT: z.boolean().optional(),
  // Host endpoints' forwarded traffic; stored (host endpoint policy is Calico's meaning).
  applyOnForward: z.boolean().optional(),
};

const globalNetworkPolicySpec = z
  .object({ ...policySpecFields, namespaceSelector: selector.optional(), ...hostStageFields })
  .strict()
  .superRefine(hostStageProblems);

/** Staged policies (Calico's preview of a policy change): validated as the policy, never enforced. */
const STAGED_ACTIONS = ['Set', 'Delete', 'Learn', 'Ignore'] as const;
export const stagedNetworkPolicySpec = z
  .object({ ...networkPolicySpec.shape, stagedAction: z.enum(STAGED_ACTIONS).optional() })
  .strict();
export const stagedGlobalNetworkPolicySpec = z
  .object({
    ...policySpecFields,
    namespaceSelector: selector.optional(),
    ...hostStageFields,
    stagedAction: z.enum(STAGED_ACTIONS).optional(),
  })
  .strict()
  .superRefine(hostStageProblems);

type PolicySpec = z.infer<typeof networkPolicySpec> & {
  namespaceSelector?: string;
  doNotTrack?: boolean;
  preDNAT?: boolean;
};

/**
 * `types` when absent, as Calico: Ingress when there are no egress rules; Egress alone
 * when there are egress rules but no ingress rules; both when there are both.
 */
function defaultTypes(
  ingress: readonly Rule[],
  egress: readonly Rule[],
): readonly ('Ingress' | 'Egress')[] {
  if (egress.length === 0) return ['Ingress'];
  return ingress.length === 0 ? ['Egress'] : ['Ingress', 'Egress'];
}

function toPolicy(metadata: ResourceMetadata, spec: PolicySpec): Policy {
  const ingress = spec.ingress ?? [];
  const egress = spec.egress ?? [];
  return {
    name: metadata.name,
    ...(metadata.namespace === undefined ? {} : { namespace: metadata.namespace }),
    tier: spec.tier ?? DEFAULT_TIER,
    ...(spec.order === undefined ? {} : { order: spec.order }),
    // As Calico: `(selector) && <serviceAccountSelector over pcsa. labels>`.
    selector:
      spec.serviceAccountSelector === undefined
        ? (spec.selector ?? 'all()')
        : andSelectors(
            spec.selector ?? 'all()',
            serviceAccountLabelSelector(spec.serviceAccountSelector),
          )!,
    ...(spec.namespaceSelector === undefined ? {} : { namespaceSelector: spec.namespaceSelector }),
    types:
      spec.types !== undefined && spec.types.length > 0
        ? spec.types
        : defaultTypes(ingress, egress),
    ingress,
    egress,
  };
}

const tierSpec = z
  .object({ order: order.optional(), defaultAction: z.enum(['Deny', 'Pass']).optional() })
  .strict();

const profileSpec = z
  .object({
    ingress: rules.optional(),
    egress: rules.optional(),
    // Inherited by the endpoints that list the profile (./service-accounts.ts).
    labelsToApply: labels.optional(),
  })
  .strict();

const networkSetSpec = z.object({ nets: z.array(cidr).optional() }).strict();

/** The spec schema of each Calico policy kind, by kind (the case of field names is read against it). */
export const CALICO_POLICY_SPECS: Readonly<Record<string, z.ZodTypeAny>> = {
  NetworkPolicy: networkPolicySpec,
  GlobalNetworkPolicy: globalNetworkPolicySpec,
  Tier: tierSpec,
  Profile: profileSpec,
  NetworkSet: networkSetSpec,
  GlobalNetworkSet: networkSetSpec,
};

// --- kinds ----------------------------------------------------------------------------

const TORTIE = CALICO;

/** A Calico kind's envelope; `status` (written by Calico's controllers) is accepted and dropped. */
function tortieEnvelope<M extends z.ZodTypeAny, S extends z.ZodTypeAny>(
  kind: string,
  metadata: M,
  spec: S,
) {
  return z
    .object({
      apiVersion: z.string(),
      kind: z.literal(kind),
      metadata,
      spec: spec.default({}),
      status: z.unknown().optional(),
    })
    .strict();
}

const kinds: Record<string, z.ZodType<Resource, z.ZodTypeDef, unknown>> = {
  [`${TORTIE}/NetworkPolicy`]: tortieEnvelope(
    'NetworkPolicy',
    namespacedMetadata(notPrefixed(K8S_POLICY_PREFIX, 'converted Kubernetes NetworkPolicies')),
    networkPolicySpec,
  ).transform((r): Resource => ({
    apiVersion: TORTIE,
    kind: 'NetworkPolicy',
    metadata: r.metadata,
    policy: toPolicy(r.metadata, r.spec),
  })),

  [`${TORTIE}/GlobalNetworkPolicy`]: tortieEnvelope(
    'GlobalNetworkPolicy',
    clusterMetadata('GlobalNetworkPolicy', dnsSubdomain),
    globalNetworkPolicySpec,
  ).transform((r): Resource => ({
    apiVersion: TORTIE,
    kind: 'GlobalNetworkPolicy',
    metadata: r.metadata,
    policy: {
      ...toPolicy(r.metadata, r.spec),
      ...(r.spec.applyOnForward === true ? { applyOnForward: true as const } : {}),
      ...(r.spec.doNotTrack === true ? { stage: 'doNotTrack' as const } : {}),
      ...(r.spec.preDNAT === true ? { stage: 'preDNAT' as const } : {}),
    },
    ...(r.spec.doNotTrack === true ? { hostEndpointsOnly: 'doNotTrack' as const } : {}),
    ...(r.spec.preDNAT === true ? { hostEndpointsOnly: 'preDNAT' as const } : {}),
  })),

  [`${TORTIE}/Tier`]: tortieEnvelope('Tier', clusterMetadata('Tier', dnsLabel), tierSpec).transform(
    (r, ctx) => {
      if (
        r.metadata.name === DEFAULT_TIER &&
        r.spec.order !== undefined &&
        r.spec.order !== DEFAULT_TIER_ORDER
      ) {
        fail(ctx, `the default tier's order is fixed at ${DEFAULT_TIER_ORDER}`, ['spec', 'order']);
      }
      const order = r.metadata.name === DEFAULT_TIER ? DEFAULT_TIER_ORDER : r.spec.order;
      const tier: Tier = {
        name: r.metadata.name,
        ...(order === undefined ? {} : { order }),
        defaultAction: r.spec.defaultAction ?? 'Deny',
      };
      return { apiVersion: TORTIE, kind: 'Tier', metadata: r.metadata, tier } satisfies Resource;
    },
  ),

  [`${TORTIE}/Profile`]: tortieEnvelope(
    'Profile',
    clusterMetadata('Profile', notPrefixed(NAMESPACE_PROFILE_PREFIX, 'namespace profiles')),
    profileSpec,
  ).transform((r): Resource => ({
    apiVersion: TORTIE,
    kind: 'Profile',
    metadata: r.metadata,
    profile: {
      name: r.metadata.name,
      ingress: r.spec.ingress ?? [],
      egress: r.spec.egress ?? [],
      ...(r.spec.labelsToApply === undefined ? {} : { labelsToApply: r.spec.labelsToApply }),
    },
  })),

  [`${TORTIE}/NetworkSet`]: tortieEnvelope(
    'NetworkSet',
    namespacedMetadata(dnsSubdomain),
    networkSetSpec,
  ).transform((r): Resource => ({
    apiVersion: TORTIE,
    kind: 'NetworkSet',
    metadata: r.metadata,
    networkSet: {
      name: r.metadata.name,
      namespace: r.metadata.namespace!,
      labels: r.metadata.labels,
      nets: r.spec.nets ?? [],
    },
  })),

  [`${TORTIE}/GlobalNetworkSet`]: tortieEnvelope(
    'GlobalNetworkSet',
    clusterMetadata('GlobalNetworkSet', dnsSubdomain),
    networkSetSpec,
  ).transform((r): Resource => ({
    apiVersion: TORTIE,
    kind: 'GlobalNetworkSet',
    metadata: r.metadata,
    networkSet: { name: r.metadata.name, labels: r.metadata.labels, nets: r.spec.nets ?? [] },
  })),

  'networking.k8s.io/v1/NetworkPolicy': z
    .object({
      apiVersion: z.literal('networking.k8s.io/v1'),
      kind: z.literal('NetworkPolicy'),
      metadata: namespacedMetadata(dnsSubdomain),
      spec: k8sNetworkPolicySpec,
      status: z.unknown().optional(),
    })
    .strict()
    .transform((r): Resource => ({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: r.metadata,
      policy: {
        name: `${K8S_POLICY_PREFIX}${r.metadata.name}`,
        namespace: r.metadata.namespace!,
        tier: K8S_POLICY_TIER,
        order: K8S_POLICY_ORDER,
        ...r.spec,
      },
    })),

  'v1/Namespace': z
    .object({
      apiVersion: z.literal('v1'),
      kind: z.literal('Namespace'),
      metadata: clusterMetadata('Namespace', dnsLabel),
      spec: z.unknown().optional(),
      status: z.unknown().optional(),
    })
    .strict()
    .transform((r): Resource => {
      // The API server gives every namespace this label; selectors written for Kubernetes rely on it.
      const nsLabels = { ...r.metadata.labels, [NAMESPACE_NAME_LABEL]: r.metadata.name };
      return {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: r.metadata,
        namespace: { name: r.metadata.name, labels: nsLabels },
      };
    }),
};

// --- entry points ---------------------------------------------------------------------

/** Validates one user object and converts it; throws ResourceError naming the field and reason. */
export function parseResource(obj: unknown): Resource {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ResourceError('', 'expected an object with apiVersion, kind, metadata and spec');
  }
  const { apiVersion, kind } = obj as { apiVersion?: unknown; kind?: unknown };
  if (typeof apiVersion !== 'string')
    throw new ResourceError('apiVersion', 'required field is missing');
  if (typeof kind !== 'string') throw new ResourceError('kind', 'required field is missing');
  const group = CALICO_API_VERSIONS.includes(apiVersion) ? CALICO : apiVersion;
  const schema = kinds[`${group}/${kind}`];
  if (schema === undefined) {
    const known = Object.keys(kinds).filter((k) => k.startsWith(`${group}/`));
    if (known.length === 0) {
      throw new ResourceError('apiVersion', `unknown apiVersion ${JSON.stringify(apiVersion)}`);
    }
    const names = known.map((k) => k.slice(group.length + 1)).join(', ');
    throw new ResourceError(
      'kind',
      `unknown kind ${JSON.stringify(kind)} for ${apiVersion} (expected one of ${names})`,
    );
  }
  const result = schema.safeParse(obj, { errorMap });
  if (!result.success) throw toResourceError(result.error, schema);
  return result.data;
}

/** Calico's per-namespace profile: allow everything, both directions. */
export function namespaceProfile(namespace: string): Profile {
  const allowAll: Rule = { action: 'Allow', source: {}, destination: {} };
  return {
    name: `${NAMESPACE_PROFILE_PREFIX}${namespace}`,
    ingress: [allowAll],
    egress: [allowAll],
  };
}

/**
 * Assembles a World: policies of every policy kind, tiers, profiles, network sets and
 * namespaces, plus the profile `kns.<namespace>` for every namespace that has a
 * Namespace resource or an endpoint. Two resources with the same identity are refused.
 */
export function worldFrom(resources: readonly Resource[], endpoints: readonly Endpoint[]): World {
  const seen = new Set<string>();
  const once = (what: string, key: string): void => {
    const id = `${what} ${key}`;
    if (seen.has(id)) throw new ResourceError('metadata.name', `duplicate ${id}`);
    seen.add(id);
  };

  const policies: Policy[] = [];
  const hostPolicies: Policy[] = [];
  const tiers: Tier[] = [];
  const profiles: Profile[] = [];
  const networkSets: NetworkSet[] = [];
  const namespaces: Namespace[] = [];
  for (const r of resources) {
    switch (r.kind) {
      case 'NetworkPolicy':
      case 'GlobalNetworkPolicy':
        once('policy', policyKey(r.policy));
        // Untracked and pre-DNAT policies apply to host endpoints only: never to pods.
        if (r.kind === 'GlobalNetworkPolicy' && r.hostEndpointsOnly !== undefined)
          hostPolicies.push(r.policy);
        else policies.push(r.policy);
        break;
      case 'Tier':
        once('Tier', r.tier.name);
        tiers.push(r.tier);
        break;
      case 'Profile':
        once('Profile', r.profile.name);
        profiles.push(r.profile);
        break;
      case 'NetworkSet':
      case 'GlobalNetworkSet':
        once(r.kind, `${r.networkSet.namespace ?? ''}/${r.networkSet.name}`);
        networkSets.push(r.networkSet);
        break;
      case 'Namespace':
        once('Namespace', r.namespace.name);
        namespaces.push(r.namespace);
        break;
    }
  }
  for (const e of endpoints) once('Endpoint', e.key);

  const namespaceNames = new Set([
    ...namespaces.map((n) => n.name),
    ...endpoints.map((e) => e.namespace),
  ]);
  for (const ns of [...namespaceNames].sort()) profiles.push(namespaceProfile(ns));

  return {
    endpoints: [...endpoints],
    namespaces,
    networkSets,
    tiers,
    policies,
    profiles,
    ...(hostPolicies.length > 0 ? { hostPolicies } : {}),
  };
}

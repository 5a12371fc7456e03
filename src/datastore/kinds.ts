/**
 * The resource kinds the datastore holds and where they live in etcd:
 *
 *   `${prefix}/resources/<plural>/<namespace>/<name>`   namespaced kinds
 *   `${prefix}/resources/<plural>/<name>`               cluster kinds
 *
 * Other parts (IPAM, agent, BGP) read these keys directly; this file is the contract.
 */

export const DEFAULT_PREFIX = '/tortie';

/** tortie's own group: its own kinds, and the Calico kinds as tortie wrote them before. */
export const TORTIE_API_VERSION = 'tortie.io/v1';

/** Calico's API group: the Calico kinds are read and written under it. */
export const CALICO_API_VERSION = 'projectcalico.org/v3';

/** The CRD form Calico users meet on Kubernetes (`kubectl get ippools.crd.projectcalico.org`). */
export const CALICO_CRD_API_VERSION = 'crd.projectcalico.org/v1';

/** Every apiVersion a Calico kind is read under; the first is the one written. */
const CALICO_VERSIONS = [CALICO_API_VERSION, CALICO_CRD_API_VERSION, TORTIE_API_VERSION] as const;

/**
 * A kind as the API names it. Two kinds share the object kind "NetworkPolicy"; the
 * Kubernetes one is `K8sNetworkPolicy` here.
 */
export type KindName =
  | 'IPPool'
  | 'NetworkPolicy'
  | 'GlobalNetworkPolicy'
  | 'Tier'
  | 'Profile'
  | 'NetworkSet'
  | 'GlobalNetworkSet'
  | 'HostEndpoint'
  | 'WorkloadEndpoint'
  | 'Node'
  | 'BGPConfiguration'
  | 'BGPPeer'
  | 'AgentConfiguration'
  | 'K8sNetworkPolicy'
  | 'Namespace'
  | 'IPReservation'
  | 'IPAMConfiguration'
  | 'BGPFilter'
  | 'FelixConfiguration'
  | 'KubeControllersConfiguration'
  | 'ClusterInformation'
  | 'StagedNetworkPolicy'
  | 'StagedGlobalNetworkPolicy'
  | 'StagedKubernetesNetworkPolicy';

export interface KindInfo {
  readonly name: KindName;
  /** The object's `apiVersion` as tortie writes and prints it, and its `kind` field. */
  readonly apiVersion: string;
  /** Every `apiVersion` an object of this kind is read under (`apiVersion` first). */
  readonly apiVersions: readonly string[];
  readonly kind: string;
  readonly plural: string;
  readonly namespaced: boolean;
  /** Extra spellings the CLI accepts (lower case), besides name and plural. */
  readonly aliases: readonly string[];
}

function info(
  name: KindName,
  plural: string,
  namespaced: boolean,
  aliases: string[] = [],
  apiVersions: readonly string[] = CALICO_VERSIONS,
  kind: string = name,
): KindInfo {
  return { name, apiVersion: apiVersions[0]!, apiVersions, kind, plural, namespaced, aliases };
}

export const KINDS: Readonly<Record<KindName, KindInfo>> = {
  IPPool: info('IPPool', 'ippools', false, ['pool', 'pools']),
  NetworkPolicy: info('NetworkPolicy', 'networkpolicies', true, [
    'policy',
    'policies',
    'netpol',
    'np',
  ]),
  GlobalNetworkPolicy: info('GlobalNetworkPolicy', 'globalnetworkpolicies', false, [
    'gnp',
    'gnps',
    'globalpolicy',
    'globalpolicies',
  ]),
  Tier: info('Tier', 'tiers', false),
  Profile: info('Profile', 'profiles', false, ['pro', 'pros']),
  NetworkSet: info('NetworkSet', 'networksets', true, ['netset', 'netsets']),
  GlobalNetworkSet: info('GlobalNetworkSet', 'globalnetworksets', false, [
    'gns',
    'globalnetset',
    'globalnetsets',
  ]),
  HostEndpoint: info('HostEndpoint', 'hostendpoints', false, ['hep', 'heps']),
  WorkloadEndpoint: info('WorkloadEndpoint', 'workloadendpoints', true, ['wep', 'weps']),
  Node: info('Node', 'nodes', false, ['no']),
  BGPConfiguration: info('BGPConfiguration', 'bgpconfigurations', false, [
    'bgpconfig',
    'bgpconfigs',
  ]),
  BGPPeer: info('BGPPeer', 'bgppeers', false, ['bgpp', 'bgpps']),
  // tortie's own kind (Calico's counterpart is FelixConfiguration): tortie.io/v1 only.
  AgentConfiguration: info(
    'AgentConfiguration',
    'agentconfigurations',
    false,
    ['agentconfig', 'agentconfigs'],
    [TORTIE_API_VERSION],
  ),
  K8sNetworkPolicy: info(
    'K8sNetworkPolicy',
    'k8snetworkpolicies',
    true,
    [
      'knp',
      'networkpolicy.networking.k8s.io',
      'networkpolicies.networking.k8s.io',
      'kubernetesnetworkpolicy',
      'kubernetesnetworkpolicies',
    ],
    ['networking.k8s.io/v1'],
    'NetworkPolicy',
  ),
  Namespace: info('Namespace', 'namespaces', false, ['ns'], ['v1'], 'Namespace'),
  IPReservation: info('IPReservation', 'ipreservations', false, ['ipres']),
  IPAMConfiguration: info('IPAMConfiguration', 'ipamconfigurations', false, [
    'ipamconfig',
    'ipamconfigs',
  ]),
  BGPFilter: info('BGPFilter', 'bgpfilters', false),
  FelixConfiguration: info('FelixConfiguration', 'felixconfigurations', false, [
    'felixconfig',
    'felixconfigs',
  ]),
  KubeControllersConfiguration: info(
    'KubeControllersConfiguration',
    'kubecontrollersconfigurations',
    false,
    ['kubecontrollersconfig', 'kcc'],
  ),
  ClusterInformation: info('ClusterInformation', 'clusterinformations', false, [
    'clusterinfo',
    'clusterinfos',
  ]),
  StagedNetworkPolicy: info('StagedNetworkPolicy', 'stagednetworkpolicies', true, ['snp']),
  StagedGlobalNetworkPolicy: info(
    'StagedGlobalNetworkPolicy',
    'stagedglobalnetworkpolicies',
    false,
    ['sgnp'],
  ),
  StagedKubernetesNetworkPolicy: info(
    'StagedKubernetesNetworkPolicy',
    'stagedkubernetesnetworkpolicies',
    true,
    ['sknp'],
  ),
};

export const KIND_NAMES = Object.keys(KINDS) as KindName[];

/** kind → plural: the key segment under `${prefix}/resources/`. */
export const PLURALS: Readonly<Record<KindName, string>> = Object.fromEntries(
  KIND_NAMES.map((k) => [k, KINDS[k].plural]),
) as Record<KindName, string>;

const bySpelling = new Map<string, KindInfo>();
for (const k of KIND_NAMES) {
  const i = KINDS[k];
  for (const s of [i.name, i.plural, ...i.aliases]) {
    bySpelling.set(s.toLowerCase(), i);
  }
}

/**
 * A kind from a user's spelling, case-insensitive: `IPPool`, `ippools`, `pool`, `gnp`,
 * `networkpolicies.networking.k8s.io`... undefined when nothing matches.
 */
export function findKind(spelling: string): KindInfo | undefined {
  return bySpelling.get(spelling.toLowerCase());
}

/**
 * The kind of an object from its `apiVersion` and `kind` fields: a Calico kind under
 * `projectcalico.org/v3`, `crd.projectcalico.org/v1` or (as tortie stored it before)
 * `tortie.io/v1`.
 */
export function kindOfObject(apiVersion: string, kind: string): KindInfo | undefined {
  return KIND_NAMES.map((k) => KINDS[k]).find(
    (i) => i.kind === kind && i.apiVersions.includes(apiVersion),
  );
}

/** Every apiVersion some kind is read under, for error messages. */
export function knownApiVersions(): string[] {
  return [...new Set(KIND_NAMES.flatMap((k) => KINDS[k].apiVersions))];
}

/** Every spelling findKind accepts, for help and error messages. */
export function kindSpellings(): string[] {
  return KIND_NAMES.map((k) => KINDS[k].plural);
}

// --- keys -----------------------------------------------------------------------------

function normalisePrefix(prefix: string): string {
  return prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
}

/** `${prefix}/resources/` : every resource key starts with it. */
export function resourcesPrefix(prefix: string = DEFAULT_PREFIX): string {
  return `${normalisePrefix(prefix)}/resources/`;
}

/** The prefix of one kind, optionally narrowed to one namespace (namespaced kinds). */
export function kindPrefix(
  kind: KindName,
  namespace?: string,
  prefix: string = DEFAULT_PREFIX,
): string {
  const base = `${resourcesPrefix(prefix)}${KINDS[kind].plural}/`;
  return KINDS[kind].namespaced && namespace !== undefined ? `${base}${namespace}/` : base;
}

/**
 * The etcd key of one object. Namespaced kinds need a namespace (callers default it to
 * "default" as kubectl does); cluster kinds take none.
 */
export function resourceKey(
  kind: KindName,
  name: string,
  namespace?: string,
  prefix: string = DEFAULT_PREFIX,
): string {
  const i = KINDS[kind];
  if (i.namespaced) {
    if (namespace === undefined || namespace === '') {
      throw new Error(`resourceKey: ${kind} is namespaced; give a namespace`);
    }
    return `${resourcesPrefix(prefix)}${i.plural}/${namespace}/${name}`;
  }
  return `${resourcesPrefix(prefix)}${i.plural}/${name}`;
}

export interface KeyRef {
  readonly kind: KindName;
  readonly name: string;
  readonly namespace?: string;
}

const byPlural = new Map(KIND_NAMES.map((k) => [KINDS[k].plural, KINDS[k]]));

/** The inverse of resourceKey; undefined for a key that is not a resource key. */
export function parseResourceKey(key: string, prefix: string = DEFAULT_PREFIX): KeyRef | undefined {
  const base = resourcesPrefix(prefix);
  if (!key.startsWith(base)) return undefined;
  const parts = key.slice(base.length).split('/');
  const i = byPlural.get(parts[0] ?? '');
  if (i === undefined) return undefined;
  if (i.namespaced) {
    if (parts.length !== 3 || parts[1] === '' || parts[2] === '') return undefined;
    return { kind: i.name, namespace: parts[1]!, name: parts[2]! };
  }
  if (parts.length !== 2 || parts[1] === '') return undefined;
  return { kind: i.name, name: parts[1]! };
}

/** "IPPool default", "NetworkPolicy prod/web": how messages name an object. */
export function describeRef(ref: { kind: KindName; name: string; namespace?: string }): string {
  const shown =
    KINDS[ref.kind].namespaced && ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
  return `${ref.kind === 'K8sNetworkPolicy' ? 'NetworkPolicy.networking.k8s.io' : ref.kind} ${shown}`;
}

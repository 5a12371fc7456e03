/**
 * The resource kinds the datastore holds and where they live in etcd. The Calico kinds
 * live where Calico's etcd datastore (libcalico-go's etcdv3 backend) keeps them, so
 * calicoctl and tortie read and write the same objects in the same etcd:
 *
 *   `${prefix}/resources/v3/projectcalico.org/<plural>/<namespace>/<name>`   namespaced
 *   `${prefix}/resources/v3/projectcalico.org/<plural>/<name>`               cluster-wide
 *
 * each one JSON object `{kind, apiVersion, metadata, spec[, status]}` (./codec.ts). The
 * prefix is "/calico" (Calico's, fixed in its clients); tests and labs may use their own.
 *
 * NetworkPolicy and GlobalNetworkPolicy (and their staged forms) are stored under the
 * name Calico's client (v3.28, the release tortie is tested against) gives them: the
 * user's name with `default.` in front (`allow-dns` → `default.allow-dns`), in the key
 * and in `metadata.name`; names starting `knp.` or `ossg.` are kept as they are. Readers
 * see the name as the user wrote it, as `calicoctl get` shows it (storedName/shownName).
 *
 * tortie's own kinds, which Calico has no etcd form for (AgentConfiguration, the
 * Kubernetes NetworkPolicy, Namespace), live beside them in a group calicoctl never lists:
 *
 *   `${prefix}/resources/v3/tortie.io/<plural>/[<namespace>/]<name>`
 *
 * and tortie's keys that are not resources (agent heartbeats and endpoint reports) under
 * `${prefix}/tortie/` (tortieKeysPrefix). IPAM records are src/ipam's (`${prefix}/ipam/`).
 *
 * Before this layout tortie kept every kind at `${prefix}/resources/<plural>/…` under
 * the prefix "/tortie"; `tortie datastore migrate` moves such a store (legacyKindPrefix).
 *
 * Other parts (IPAM, agent, BGP) read these keys directly; this file is the contract.
 */

/** Calico's etcd prefix; tortie's default. */
export const DEFAULT_PREFIX = '/calico';

/** The prefix tortie used before it stored Calico's layout (`datastore migrate` reads it). */
export const LEGACY_PREFIX = '/tortie';

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
  /** The key segment after `resources/v3/`: Calico's group, or tortie's for its own kinds. */
  readonly group: typeof CALICO_GROUP | typeof TORTIE_GROUP;
  /** Stored under Calico's tiered policy name (`default.<name>`); see storedName. */
  readonly tieredName: boolean;
}

/** The key group of the Calico kinds, as Calico's etcd datastore names it. */
export const CALICO_GROUP = 'projectcalico.org';
/** The key group of tortie's own kinds (no Calico counterpart in etcd). */
export const TORTIE_GROUP = 'tortie.io';

const TIERED: ReadonlySet<string> = new Set([
  'NetworkPolicy',
  'GlobalNetworkPolicy',
  'StagedNetworkPolicy',
  'StagedGlobalNetworkPolicy',
]);

function info(
  name: KindName,
  plural: string,
  namespaced: boolean,
  aliases: string[] = [],
  apiVersions: readonly string[] = CALICO_VERSIONS,
  kind: string = name,
): KindInfo {
  return {
    name,
    apiVersion: apiVersions[0]!,
    apiVersions,
    kind,
    plural,
    namespaced,
    aliases,
    group: apiVersions.includes(CALICO_API_VERSION) ? CALICO_GROUP : TORTIE_GROUP,
    tieredName: TIERED.has(name),
  };
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

/** `${prefix}/resources/v3/` : every resource key starts with it. */
export function resourcesPrefix(prefix: string = DEFAULT_PREFIX): string {
  return `${normalisePrefix(prefix)}/resources/v3/`;
}

/** `${prefix}/tortie/` : tortie's keys that are not resources (agent status). */
export function tortieKeysPrefix(prefix: string = DEFAULT_PREFIX): string {
  return `${normalisePrefix(prefix)}/tortie/`;
}

/** Names Calico's client stores as they are (Kubernetes policies, Calico's own). */
const UNTIERED_NAME = /^(knp|ossg)\./;

/**
 * The name a kind's object is stored under: for the policy kinds Calico's tiered name
 * (`allow-dns` → `default.allow-dns`, as libcalico-go v3.28 stores it), else the name.
 */
export function storedName(kind: KindName, name: string): string {
  return KINDS[kind].tieredName && !UNTIERED_NAME.test(name) ? `default.${name}` : name;
}

/**
 * The name as users write and see it, from a stored one: `default.` taken off a policy
 * name (as `calicoctl get` shows it). A policy Calico stored without it (another tier's
 * `<tier>.<name>` in Calico 3.29 and later) is shown as stored.
 */
export function shownName(kind: KindName, stored: string): string {
  return KINDS[kind].tieredName && stored.startsWith('default.')
    ? stored.slice('default.'.length)
    : stored;
}

/** The prefix of one kind, optionally narrowed to one namespace (namespaced kinds). */
export function kindPrefix(
  kind: KindName,
  namespace?: string,
  prefix: string = DEFAULT_PREFIX,
): string {
  const i = KINDS[kind];
  const base = `${resourcesPrefix(prefix)}${i.group}/${i.plural}/`;
  return i.namespaced && namespace !== undefined ? `${base}${namespace}/` : base;
}

/**
 * The etcd key of one object, by the name users write (stored under storedName).
 * Namespaced kinds need a namespace (callers default it to "default" as kubectl does);
 * cluster kinds take none.
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
    return `${kindPrefix(kind, namespace, prefix)}${storedName(kind, name)}`;
  }
  return `${kindPrefix(kind, undefined, prefix)}${storedName(kind, name)}`;
}

export interface KeyRef {
  readonly kind: KindName;
  /** As users write it (shownName of the key's last segment). */
  readonly name: string;
  readonly namespace?: string;
}

const byGroupPlural = new Map(KIND_NAMES.map((k) => [`${KINDS[k].group}/${KINDS[k].plural}`, k]));

function refOf(kind: KindName, parts: readonly string[]): KeyRef | undefined {
  if (KINDS[kind].namespaced) {
    if (parts.length !== 2 || parts[0] === '' || parts[1] === '') return undefined;
    return { kind, namespace: parts[0]!, name: shownName(kind, parts[1]!) };
  }
  if (parts.length !== 1 || parts[0] === '') return undefined;
  return { kind, name: shownName(kind, parts[0]!) };
}

/**
 * The inverse of resourceKey; undefined for a key that is not a resource key of a kind
 * tortie knows (Calico's block affinities, for one, live beside them).
 */
export function parseResourceKey(key: string, prefix: string = DEFAULT_PREFIX): KeyRef | undefined {
  const base = resourcesPrefix(prefix);
  if (!key.startsWith(base)) return undefined;
  const parts = key.slice(base.length).split('/');
  const kind = byGroupPlural.get(`${parts[0]}/${parts[1]}`);
  return kind === undefined ? undefined : refOf(kind, parts.slice(2));
}

// --- the layout before this one (tortie datastore migrate) --------------------------------

/** `${prefix}/resources/<plural>/` : where tortie kept a kind before (every kind, no group). */
export function legacyKindPrefix(kind: KindName, prefix: string = LEGACY_PREFIX): string {
  return `${normalisePrefix(prefix)}/resources/${KINDS[kind].plural}/`;
}

const byPlural = new Map(KIND_NAMES.map((k) => [KINDS[k].plural, k]));

/** A key of the old layout → its kind and (unprefixed) name; undefined for other keys. */
export function parseLegacyResourceKey(
  key: string,
  prefix: string = LEGACY_PREFIX,
): KeyRef | undefined {
  const base = `${normalisePrefix(prefix)}/resources/`;
  if (!key.startsWith(base)) return undefined;
  const parts = key.slice(base.length).split('/');
  const kind = byPlural.get(parts[0] ?? '');
  if (kind === undefined) return undefined;
  const ref = refOf(kind, parts.slice(1));
  // Old keys hold the name as written: no tier prefix to take off.
  return ref === undefined ? undefined : { ...ref, name: parts[parts.length - 1]! };
}

/** "IPPool default", "NetworkPolicy prod/web": how messages name an object. */
export function describeRef(ref: { kind: KindName; name: string; namespace?: string }): string {
  const shown =
    KINDS[ref.kind].namespaced && ref.namespace ? `${ref.namespace}/${ref.name}` : ref.name;
  return `${ref.kind === 'K8sNetworkPolicy' ? 'NetworkPolicy.networking.k8s.io' : ref.kind} ${shown}`;
}

/**
 * The stored form of a resource, as Calico's etcd datastore writes it (Go's encoding of
 * its API structs): JSON `{kind, apiVersion, metadata, spec[, status]}` with
 * `metadata.{name, namespace?, uid, creationTimestamp, labels?, annotations?}`.
 * `metadata.resourceVersion` is not stored: it is the key's mod_revision, filled in on
 * read. Policy names are stored tier-prefixed (`default.<name>`, ./kinds.ts storedName)
 * and read back as written. An object stored under another spelling of its kind's
 * apiVersion (tortie.io/v1 as tortie stored it before, crd.projectcalico.org/v1) is read
 * as the kind's own (projectcalico.org/v3).
 *
 * What Calico writes beside the spec is kept: a stored `status` (Calico's Node carries
 * one; a new Node gets `{}`, as Calico's client writes it) goes back out unchanged when
 * tortie rewrites the object.
 */
import type { IKeyValue } from 'etcd3';
import { DatastoreError } from './errors.js';
import { kindOfObject, parseResourceKey, storedName, type KindName } from './kinds.js';
import type { AgentConfigurationSpec } from './schema/agent.js';
import type { BGPConfigurationSpec, BGPFilterSpec, BGPPeerSpec } from './schema/bgp.js';
import type { FelixConfigurationSpec } from './schema/calico-config.js';
import type { IPAMConfigurationSpec, IPReservationSpec } from './schema/ipam.js';
import type { HostEndpointSpec, WorkloadEndpointSpec } from './schema/endpoints.js';
import type { IPPoolSpec } from './schema/ippool.js';
import type { NodeSpec } from './schema/node.js';

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string;
  readonly uid: string;
  readonly creationTimestamp: string;
  /** The key's etcd mod_revision, as a string; only on objects read from the store. */
  readonly resourceVersion?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface StoredResource<S = Record<string, unknown>> {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly spec: S;
  /** What Calico's components report (Node, KubeControllersConfiguration); kept as read. */
  readonly status?: Readonly<Record<string, unknown>>;
}

/** The spec type the store holds for each kind (policy kinds: as the user wrote it). */
export interface SpecOf {
  IPPool: IPPoolSpec;
  HostEndpoint: HostEndpointSpec;
  WorkloadEndpoint: WorkloadEndpointSpec;
  Node: NodeSpec;
  BGPConfiguration: BGPConfigurationSpec;
  BGPPeer: BGPPeerSpec;
  AgentConfiguration: AgentConfigurationSpec;
  NetworkPolicy: Record<string, unknown>;
  GlobalNetworkPolicy: Record<string, unknown>;
  Tier: Record<string, unknown>;
  Profile: Record<string, unknown>;
  NetworkSet: Record<string, unknown>;
  GlobalNetworkSet: Record<string, unknown>;
  K8sNetworkPolicy: Record<string, unknown>;
  Namespace: Record<string, unknown>;
  IPReservation: IPReservationSpec;
  IPAMConfiguration: IPAMConfigurationSpec;
  BGPFilter: BGPFilterSpec;
  FelixConfiguration: FelixConfigurationSpec;
  KubeControllersConfiguration: Record<string, unknown>;
  ClusterInformation: Record<string, unknown>;
  StagedNetworkPolicy: Record<string, unknown>;
  StagedGlobalNetworkPolicy: Record<string, unknown>;
  StagedKubernetesNetworkPolicy: Record<string, unknown>;
}

export type ResourceOf<K extends KindName> = StoredResource<SpecOf[K]>;

const POLICY_KINDS: ReadonlySet<KindName> = new Set([
  'NetworkPolicy',
  'GlobalNetworkPolicy',
  'StagedNetworkPolicy',
  'StagedGlobalNetworkPolicy',
]);

/** A rule with `source` and `destination` present, in the place Calico's Rule struct has them. */
function withEntities(rules: unknown): unknown {
  if (!Array.isArray(rules)) return rules;
  return rules.map((r: unknown) => {
    if (typeof r !== 'object' || r === null || Array.isArray(r)) return r;
    const { source, destination, http, metadata, ...head } = r as Record<string, unknown>;
    return {
      ...head,
      source: source ?? {},
      destination: destination ?? {},
      ...(http === undefined ? {} : { http }),
      ...(metadata === undefined ? {} : { metadata }),
    };
  });
}

function policyTypes(spec: Record<string, unknown>): string[] {
  const given = (rules: unknown) => Array.isArray(rules) && rules.length > 0;
  if (!given(spec.egress)) return ['Ingress'];
  return given(spec.ingress) ? ['Ingress', 'Egress'] : ['Egress'];
}

/**
 * A spec as Calico's client stores it: a policy's `types` filled in when absent (Ingress
 * unless there are only egress rules; both when both), and every rule's `source` and
 * `destination` present (Go encodes those structs even when empty). The meaning is the
 * same as the spec given; only the stored form is Calico's.
 */
export function storedSpec(kind: KindName, spec: Record<string, unknown>): Record<string, unknown> {
  if (!POLICY_KINDS.has(kind) && kind !== 'Profile') return spec;
  const out: Record<string, unknown> = { ...spec };
  if (spec.ingress !== undefined) out.ingress = withEntities(spec.ingress);
  if (spec.egress !== undefined) out.egress = withEntities(spec.egress);
  if (POLICY_KINDS.has(kind) && (!Array.isArray(spec.types) || spec.types.length === 0))
    out.types = policyTypes(spec);
  return out;
}

/** Kinds whose Go struct in Calico always encodes a `status` (a struct, not a pointer). */
const STATUS_KINDS: ReadonlySet<string> = new Set(['Node']);

/**
 * Bytes to write: fields in the order Calico's Go structs encode them, the name as stored
 * (tier-prefixed policy names), resourceVersion never stored.
 */
export function encodeResource(r: StoredResource<unknown>): string {
  const m = r.metadata;
  const info = kindOfObject(r.apiVersion, r.kind);
  const metadata = {
    name: info === undefined ? m.name : storedName(info.name, m.name),
    ...(m.namespace === undefined ? {} : { namespace: m.namespace }),
    uid: m.uid,
    creationTimestamp: m.creationTimestamp,
    ...(m.labels === undefined || Object.keys(m.labels).length === 0 ? {} : { labels: m.labels }),
    ...(m.annotations === undefined || Object.keys(m.annotations).length === 0
      ? {}
      : { annotations: m.annotations }),
  };
  const status = r.status ?? (info !== undefined && STATUS_KINDS.has(info.name) ? {} : undefined);
  return JSON.stringify({
    kind: r.kind,
    apiVersion: r.apiVersion,
    metadata,
    spec: r.spec,
    ...(status === undefined ? {} : { status }),
  });
}

/** The kind a stored key belongs to, and the object decoded with its resourceVersion. */
export function decodeKeyValue(
  kv: Pick<IKeyValue, 'key' | 'value' | 'mod_revision'>,
  prefix: string,
): { kind: KindName; resource: StoredResource } {
  const key = kv.key.toString();
  const ref = parseResourceKey(key, prefix);
  if (ref === undefined) {
    throw new DatastoreError(
      'invalid',
      `${key} is not a resource key under ${prefix}/resources/v3/ of a kind tortie knows`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(kv.value.toString());
  } catch (e) {
    throw new DatastoreError(
      'invalid',
      `the value stored at ${key} is not JSON (${(e as Error).message})`,
    );
  }
  const obj = parsed as Partial<StoredResource>;
  const meta = obj?.metadata as Partial<ObjectMeta> | undefined;
  const kindInfo =
    typeof obj?.apiVersion === 'string' && typeof obj.kind === 'string'
      ? kindOfObject(obj.apiVersion, obj.kind)
      : undefined;
  if (
    kindInfo?.name !== ref.kind ||
    meta?.name !== key.slice(key.lastIndexOf('/') + 1) ||
    meta.namespace !== ref.namespace
  ) {
    throw new DatastoreError(
      'invalid',
      `the value stored at ${key} is not a ${ref.kind} called ${storedName(ref.kind, ref.name)}: was it written by something other than tortie or Calico?`,
    );
  }
  const status = (obj as { status?: unknown }).status;
  return {
    kind: ref.kind,
    resource: {
      // Read under any spelling the kind accepts (tortie.io/v1 as tortie stored it before);
      // every reader sees the one it is written and printed under (projectcalico.org/v3).
      apiVersion: kindInfo.apiVersion,
      kind: obj.kind!,
      metadata: {
        name: ref.name,
        ...(meta.namespace === undefined ? {} : { namespace: meta.namespace }),
        uid: meta.uid ?? '',
        resourceVersion: kv.mod_revision,
        creationTimestamp: meta.creationTimestamp ?? '',
        ...(meta.labels === undefined ? {} : { labels: meta.labels }),
        ...(meta.annotations === undefined ? {} : { annotations: meta.annotations }),
      },
      spec: (obj.spec ?? {}) as Record<string, unknown>,
      ...(typeof status === 'object' && status !== null && !Array.isArray(status)
        ? { status: status as Record<string, unknown> }
        : {}),
    },
  };
}

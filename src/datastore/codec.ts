/**
 * The stored form of a resource: JSON `{apiVersion, kind, metadata, spec}` with
 * `metadata.{name, namespace?, uid, creationTimestamp, labels?, annotations?}`.
 * `metadata.resourceVersion` is not stored: it is the key's mod_revision, filled in on
 * read. An object stored under another spelling of its kind's apiVersion (tortie.io/v1,
 * crd.projectcalico.org/v1) is read as the kind's own (projectcalico.org/v3).
 */
import type { IKeyValue } from 'etcd3';
import { DatastoreError } from './errors.js';
import { kindOfObject, parseResourceKey, type KindName } from './kinds.js';
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

/** Bytes to write: metadata fields in a fixed order, resourceVersion never stored. */
export function encodeResource(r: StoredResource<unknown>): string {
  const m = r.metadata;
  const metadata = {
    name: m.name,
    ...(m.namespace === undefined ? {} : { namespace: m.namespace }),
    uid: m.uid,
    creationTimestamp: m.creationTimestamp,
    ...(m.labels === undefined || Object.keys(m.labels).length === 0 ? {} : { labels: m.labels }),
    ...(m.annotations === undefined || Object.keys(m.annotations).length === 0
      ? {}
      : { annotations: m.annotations }),
  };
  return JSON.stringify({ apiVersion: r.apiVersion, kind: r.kind, metadata, spec: r.spec });
}

/** The kind a stored key belongs to, and the object decoded with its resourceVersion. */
export function decodeKeyValue(
  kv: Pick<IKeyValue, 'key' | 'value' | 'mod_revision'>,
  prefix: string,
): { kind: KindName; resource: StoredResource } {
  const key = kv.key.toString();
  const ref = parseResourceKey(key, prefix);
  if (ref === undefined) {
    throw new DatastoreError('invalid', `${key} is not a resource key under ${prefix}/resources/`);
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
  if (kindInfo?.name !== ref.kind || meta?.name !== ref.name || meta.namespace !== ref.namespace) {
    throw new DatastoreError(
      'invalid',
      `the value stored at ${key} is not a ${ref.kind} called ${ref.name}: was it written by something other than tortie?`,
    );
  }
  return {
    kind: ref.kind,
    resource: {
      // Read under any spelling the kind accepts (tortie.io/v1 as tortie stored it before);
      // every reader sees the one it is written and printed under (projectcalico.org/v3).
      apiVersion: kindInfo.apiVersion,
      kind: obj.kind!,
      metadata: {
        name: meta.name,
        ...(meta.namespace === undefined ? {} : { namespace: meta.namespace }),
        uid: meta.uid ?? '',
        resourceVersion: kv.mod_revision,
        creationTimestamp: meta.creationTimestamp ?? '',
        ...(meta.labels === undefined ? {} : { labels: meta.labels }),
        ...(meta.annotations === undefined ? {} : { annotations: meta.annotations }),
      },
      spec: (obj.spec ?? {}) as Record<string, unknown>,
    },
  };
}

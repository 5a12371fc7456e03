/**
 * The datastore: tortie's resources in etcd v3. `Datastore` is the entry point; the key
 * layout (resourceKey, PLURALS) is exported for the parts that read etcd directly.
 */
export { Datastore, type LabelResult, type WriteResult } from './store.js';
export {
  DatastoreError,
  isDatastoreError,
  type DatastoreErrorKind,
  type ErrorDetail,
} from './errors.js';
export type { ConnectOptions, DatastoreTls, PemSource } from './etcd/connect.js';
export type {
  EtcdCallOptions,
  EtcdClientFactory,
  EtcdKv,
  EtcdKvClient,
  EtcdWatchClient,
} from './etcd/client.js';
export { DEFAULT_TIMEOUT_MS, grpcEtcdClientFactory } from './etcd/connect.js';
export { batchingReads } from './etcd/batch.js';
export { prefixEnd } from './etcd/keys.js';
export {
  classifyEtcdError,
  EtcdCallError,
  EtcdRefusedError,
  EtcdTimeoutError,
  EtcdUnavailableError,
  type EtcdFailureKind,
} from './etcd/errors.js';
export { EtcdGatewayClient } from './etcd/gateway.js';
export {
  CALICO_GROUP,
  DEFAULT_PREFIX,
  LEGACY_PREFIX,
  TORTIE_GROUP,
  KIND_NAMES,
  KINDS,
  PLURALS,
  TORTIE_API_VERSION,
  describeRef,
  findKind,
  kindOfObject,
  kindPrefix,
  legacyKindPrefix,
  parseLegacyResourceKey,
  parseResourceKey,
  resourceKey,
  resourcesPrefix,
  shownName,
  storedName,
  tortieKeysPrefix,
  type KeyRef,
  type KindInfo,
  type KindName,
} from './kinds.js';
export {
  decodeKeyValue,
  encodeResource,
  storedSpec,
  type ObjectMeta,
  type ResourceOf,
  type SpecOf,
  type StoredResource,
} from './codec.js';
export {
  ResourceWatcher,
  type WatchEvent,
  type WatchHandler,
  type WatchOptions,
  type WatchStatus,
} from './watch.js';
export { validateObject, type ValidObject, type Validation } from './schema/index.js';
export {
  DEFAULT_BLOCK_SIZE,
  ENCAP_MODES,
  type EncapMode,
  type IPPoolSpec,
} from './schema/ippool.js';
export type { HostEndpointSpec, WorkloadEndpointSpec } from './schema/endpoints.js';
export type { NodeSpec } from './schema/node.js';
export { DEFAULT_AS_NUMBER, type BGPConfigurationSpec, type BGPPeerSpec } from './schema/bgp.js';
export {
  AGENT_CONFIG_DEFAULTS,
  effectiveAgentConfig,
  type AgentConfigurationSpec,
} from './schema/agent.js';
export { cidrsOverlap } from './invariants.js';
export {
  CLUSTER_INFO_NAME,
  ensureClusterInformation,
  newClusterInformation,
  TORTIE_CLUSTER_TYPE,
} from './cluster-info.js';
export { findLegacyLayout, legacyPrefixes, migrateHint, type LegacyFinding } from './legacy.js';
export {
  connectKubernetesDatastore,
  crdManifests,
  KubeKv,
  type KubernetesConnectOptions,
  type KubernetesDatastore,
} from './kubernetes/index.js';

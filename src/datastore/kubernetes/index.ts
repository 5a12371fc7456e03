/**
 * The Kubernetes datastore: tortie's key ranges carried by objects of the Kubernetes API
 * (./mapping.ts), served to the store, IPAM and the agent as etcd's KV calls (./kv.ts).
 */
export {
  KubeApiError,
  KubeClient,
  SERVICE_ACCOUNT_DIR,
  inClusterConnection,
  isKubeApiError,
  loadKubeconfig,
  type KubeConnection,
} from './client.js';
export {
  CALICO_CRD_GROUP,
  CRD_MAPPINGS,
  TORTIE_CRD_GROUP,
  affinityName,
  cidrToName,
  crdManifests,
  statusObjectName,
} from './crds.js';
export { KubeKv, registerMappings } from './kv.js';
export {
  connectKubernetesDatastore,
  missingResources,
  type KubernetesConnectOptions,
  type KubernetesDatastore,
} from './connect.js';
export { KubeWatchStream, KubeWatcher, type WatchBuilder } from './watch.js';
export type { KeyMapping, KubeObject, KubeResource } from './mapping.js';

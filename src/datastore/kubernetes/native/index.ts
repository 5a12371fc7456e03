/**
 * Kubernetes' own objects as key ranges of the store (../mapping.ts): Pods as
 * WorkloadEndpoints, Namespaces, ServiceAccounts (as the `ksa.` Profiles that carry their
 * labels), NetworkPolicies, Nodes. Read from the API, never owned; written only where
 * Calico writes them too (annotations of pods and nodes).
 */
import type { KeyMapping, KubeObject } from '../mapping.js';
import { NAMESPACES, NETWORK_POLICIES } from './namespaces.js';
import { NODES } from './nodes.js';
import { PODS } from './pods.js';
import { SERVICE_ACCOUNTS } from './serviceaccounts.js';

export { NAMESPACES, NETWORK_POLICIES } from './namespaces.js';
export { NODES } from './nodes.js';
export {
  PODS,
  parseWorkloadEndpointName,
  podEndpointLabels,
  podPorts,
  podToWorkloadEndpoint,
  workloadEndpointName,
} from './pods.js';
export { SERVICE_ACCOUNTS } from './serviceaccounts.js';

/** Every native mapping, registered with the CRD-backed ones by ../kv.ts. */
export const NATIVE_MAPPINGS: readonly KeyMapping[] = [
  PODS,
  NAMESPACES,
  NETWORK_POLICIES,
  SERVICE_ACCOUNTS,
  NODES,
];

/**
 * The mod_revision `key` has, given the object that holds its range (`undefined`: none):
 * the object's resourceVersion when the object's counterpart is this very key, else "0"
 * (absent), as etcd's compare `Mod == 0` means it. A pod without an address, or with its
 * endpoint under another name, exists in the API and yet has no such key: the CNI plugin's
 * first put of its endpoint is a create (guarded by the pod's resourceVersion when sent).
 */
export function modRevisionOf(
  mapping: KeyMapping,
  key: string,
  object: KubeObject | undefined,
  prefix: string,
): string {
  if (object === undefined) return '0';
  const kv = mapping.toKv(object, prefix);
  return kv?.key === key ? (object.metadata.resourceVersion ?? '0') : '0';
}

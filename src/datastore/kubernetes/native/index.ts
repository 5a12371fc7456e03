/**
 * Kubernetes' own objects as key ranges of the store (../mapping.ts): Pods as
 * WorkloadEndpoints, Namespaces, ServiceAccounts (as the `ksa.` Profiles that carry their
 * labels), NetworkPolicies, Nodes. Read from the API, never owned; written only where
 * Calico writes them too (annotations of pods and nodes).
 */
import type { KeyMapping } from '../mapping.js';
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

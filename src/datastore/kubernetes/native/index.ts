/**
 * Kubernetes' own objects as key ranges of the store (../mapping.ts): Pods as
 * WorkloadEndpoints, Namespaces, ServiceAccounts, NetworkPolicies, Nodes. Read from the
 * API, never owned; written only where Calico writes them too (annotations).
 */
import type { KeyMapping } from '../mapping.js';

/** Every native mapping, registered with the CRD-backed ones by ../kv.ts. */
export const NATIVE_MAPPINGS: readonly KeyMapping[] = [];

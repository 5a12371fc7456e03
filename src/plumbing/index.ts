/**
 * Pod plumbing: the veth, addresses, routes and sysctls that put a pod on the node's
 * layer-3 network (Calico model), in any pair of network namespaces. Used by the CNI
 * plugin and the lab.
 */
export { checkPodNetwork, type PodNetworkProblem, type PodNetworkProblemKind } from './check.js';
export {
  DEFAULT_POD_IFNAME,
  HOST_VETH_MAC,
  HOST_VETH_PREFIX,
  POD_GATEWAY_IP,
} from './constants.js';
export { PlumbingError, type PlumbingErrorKind } from './errors.js';
export { hostVethName } from './names.js';
export { createNetns, deleteNetns, netnsPath } from './netns.js';
export {
  createPodNetwork,
  deletePodNetwork,
  type DeletePodNetworkOptions,
  type PodNetwork,
  type PodNetworkOptions,
} from './pod-network.js';
export { prohibitRules } from './rules.js';

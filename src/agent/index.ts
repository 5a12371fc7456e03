/**
 * The per-node agent (`tortie node run`): watch → model → dataplane reconcile; endpoint
 * status for the CNI plugin; heartbeat, health, metrics. docs/agent.md describes it.
 */
export {
  Agent,
  type AgentOptions,
  type AgentStatus,
  type BgpStatus,
  type ReconcileRecord,
} from './agent.js';
export {
  agentConfig,
  AgentConfigError,
  CONFIG_FILE_ENV,
  DEFAULT_AGENT_CONFIG_FILE,
  DEFAULT_PIN_ROOT,
  ENV_NAMES,
  parseAgentConfigFile,
  resolveAgentConfig,
  type AgentConfig,
  type AgentConfigFile,
  type AgentFlags,
  type ConfigSources,
} from './config.js';
export {
  EndpointNotProgrammedError,
  endpointStatusKey,
  endpointStatusPrefix,
  nodeStatusKey,
  nodeStatusPrefix,
  readEndpointStatuses,
  readNodeStatus,
  waitForEndpointProgrammed,
  type EndpointStatus,
  type NodeStatus,
  type StatusReader,
  type WaitOptions,
} from './status.js';
export {
  desiredRoutes,
  diffRoutes,
  knownNodeAddresses,
  vxlanInnerSources,
  type DesiredRoute,
  type RouteInputs,
} from './routes.js';
export { buildWorld, ClusterModel, wepToEndpoint, WATCHED_KINDS } from './model.js';
export { createLogger, silentLogger } from './log.js';

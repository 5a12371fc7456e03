/**
 * The iptables dataplane (docs/iptables.md): Felix's chain layout over the shared policy
 * model and selector resolution.
 */
export {
  IptablesCommandError,
  IptablesDataplane,
  type ApplyReport,
  type IptablesBackend,
  type IptablesDataplaneOptions,
} from './dataplane.js';
export {
  applicableTiers,
  endpointChainName,
  intervalsToCidrs,
  IptablesUnsupportedError,
  MARK_ACCEPT,
  MARK_PASS,
  MARK_SCRATCH,
  multiportChunks,
  policyChainName,
  profileChainName,
  render,
  vxlanInnerSourceRules,
  CHAIN_VXLAN_IN,
  type VxlanPeer,
  setName,
  tempSetName,
  type IpSetSpec,
  type IptablesEndpoint,
  type RenderOptions,
  type Ruleset,
} from './render.js';
export {
  EMPTY_STATE,
  parseIpsetSave,
  parseIptablesSave,
  plan,
  ruleHashes,
  type KernelState,
  type Plan,
} from './restore.js';
export { spellLine, spellRule, type IptRule, type Match, type Target } from './rules.js';

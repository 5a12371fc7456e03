/**
 * The policy compiler (world → BPF policy map entries, incrementally): its interface.
 * How it works: ./compiler.ts, and the modules it names.
 */
export { PolicyCompiler } from './compiler.js';
export type {
  CompiledState,
  CompileWork,
  Delta,
  EndpointEntry,
  LocalEndpoint,
  PolAddrEntry,
  PolicyCompilerOptions,
  PolL4Entry,
  PolSportEntry,
} from './types.js';
export { addrKey, l4Key, sportKey } from './types.js';
export { PolicyBudgetError, PolicyMapFullError, LocalEndpointError } from './errors.js';
export { ACTION_ALLOW, ACTION_BY_SPORT, ACTION_DENY, FLAG_LOG } from './verdict.js';
export { packetL4 } from './l4.js';
export { parseAddress, formatAddress } from './addresses.js';

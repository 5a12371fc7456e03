/**
 * Load-time configuration of bpf/tc_policy.o: the `volatile const` globals of
 * bpf/lib/config.h, set before load so the verifier prunes what is turned off.
 */

export interface CtTimeoutsMs {
  /** TCP flow that has seen only the opening SYN. Default 60 s. */
  readonly syn: number;
  /** TCP flow past the handshake. Default 6 h. */
  readonly established: number;
  /** TCP flow after a FIN or RST. Default 10 s. */
  readonly closing: number;
  /** Every other protocol (UDP, ICMP, SCTP, ...). Default 60 s. */
  readonly other: number;
}

export interface DataplaneConfig {
  /** A DROP event on the ring buffer for every dropped packet. Default true. */
  readonly dropEvents?: boolean;
  /** A VERDICT event for every policy decision. Default false (costly; for debugging). */
  readonly traceVerdicts?: boolean;
  /** Conntrack idle timeouts in milliseconds; unset ones keep their defaults. */
  readonly ctTimeoutsMs?: Partial<CtTimeoutsMs>;
  /**
   * Let pods send IPIP (protocol 4) themselves (Calico's FelixConfiguration field of
   * the same name). Default false: a pod's IPIP is dropped as DROP_WORKLOAD_ENCAP.
   */
  readonly allowIPIPPacketsFromWorkloads?: boolean;
  /** Let pods send UDP to the VXLAN port. Default false (DROP_WORKLOAD_ENCAP). */
  readonly allowVXLANPacketsFromWorkloads?: boolean;
  /** The VXLAN UDP port the guard above watches. Default 4789. */
  readonly vxlanPort?: number;
  /**
   * A pod's new flow to an address of the node, after its egress policy allowed it
   * (Felix's defaultEndpointToHostAction). Default Drop, as Calico's. Return behaves as
   * Accept: tortie has no host endpoint policy to return to yet.
   */
  readonly endpointToHostAction?: EndpointToHostAction;
  /**
   * New-flow budget per sending pod: `perSecond` new flows on average, `burst` at once
   * (default: perSecond rounded up, at least 1); the flow beyond is dropped as
   * DROP_CT_BUDGET. Unset (the default): no budget. docs/dataplane.md, "Conntrack
   * capacity and fairness".
   */
  readonly ctNewFlowBudget?: { readonly perSecond: number; readonly burst?: number };
}

export const ENDPOINT_TO_HOST_ACTIONS = ['Drop', 'Accept', 'Return'] as const;
export type EndpointToHostAction = (typeof ENDPOINT_TO_HOST_ACTIONS)[number];

/** bpf/lib/config.h's TORTIE_HOST_ACTION_*. */
const HOST_ACTION_VALUE: Readonly<Record<EndpointToHostAction, number>> = {
  Drop: 0,
  Accept: 1,
  Return: 2,
};

function hostAction(action: EndpointToHostAction | undefined): number {
  const value = HOST_ACTION_VALUE[action ?? 'Drop'];
  if (value === undefined) {
    throw new Error(
      `endpointToHostAction must be one of ${ENDPOINT_TO_HOST_ACTIONS.join(', ')}, got ${String(action)}`,
    );
  }
  return value;
}

/** The VXLAN port when none is configured (IANA's, Calico's default). */
export const DEFAULT_VXLAN_PORT = 4789;

export const DEFAULT_CT_TIMEOUTS_MS: CtTimeoutsMs = {
  syn: 60_000,
  established: 6 * 3600_000,
  closing: 10_000,
  other: 60_000,
};

/** A global of the object and the bytes to set it to (exact size, little-endian). */
export interface GlobalSetting {
  readonly name: string;
  readonly value: Buffer;
}

/** A load-time constant's bytes (little endian, as the BPF target). */
export function u32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(value);
  return buf;
}

export function u64(value: bigint): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(value);
  return buf;
}

function timeoutNs(which: keyof CtTimeoutsMs, ms: number): bigint {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    throw new Error(
      `ctTimeoutsMs.${which} must be a positive number of milliseconds, got ${String(ms)}`,
    );
  }
  return BigInt(Math.round(ms * 1_000_000));
}

function vxlanPort(port: number | undefined): number {
  if (port === undefined) return DEFAULT_VXLAN_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`vxlanPort must be a UDP port (1..65535), got ${String(port)}`);
  return port;
}

/** tortie_cfg_ct_budget_interval_ns and _burst: 0 and 1 when there is no budget. */
function ctBudget(budget: DataplaneConfig['ctNewFlowBudget']): {
  intervalNs: bigint;
  burst: number;
} {
  if (budget === undefined) return { intervalNs: 0n, burst: 1 };
  const { perSecond } = budget;
  if (!(typeof perSecond === 'number' && perSecond > 0 && perSecond <= 1e9))
    throw new Error(
      `ctNewFlowBudget.perSecond must be above 0 and at most 1e9, got ${String(perSecond)}`,
    );
  const burst = budget.burst ?? Math.max(1, Math.ceil(perSecond));
  if (!Number.isInteger(burst) || burst < 1 || burst > 0xffffffff)
    throw new Error(
      `ctNewFlowBudget.burst must be a whole number of flows, 1 or more, got ${String(burst)}`,
    );
  const intervalNs = BigInt(Math.max(1, Math.round(1e9 / perSecond)));
  if (intervalNs * BigInt(burst) >= 1n << 63n)
    throw new Error(`ctNewFlowBudget: burst ${burst} at ${perSecond}/s spans more than 2^63 ns`);
  return { intervalNs, burst };
}

/** The globals to set for this configuration (every one, defaults included). */
export function configGlobals(config: DataplaneConfig = {}): GlobalSetting[] {
  const t = { ...DEFAULT_CT_TIMEOUTS_MS, ...config.ctTimeoutsMs };
  const budget = ctBudget(config.ctNewFlowBudget);
  return [
    { name: 'tortie_cfg_drop_events', value: u32(config.dropEvents === false ? 0 : 1) },
    { name: 'tortie_cfg_trace_verdicts', value: u32(config.traceVerdicts === true ? 1 : 0) },
    { name: 'tortie_cfg_ct_syn_timeout_ns', value: u64(timeoutNs('syn', t.syn)) },
    {
      name: 'tortie_cfg_ct_established_timeout_ns',
      value: u64(timeoutNs('established', t.established)),
    },
    { name: 'tortie_cfg_ct_closing_timeout_ns', value: u64(timeoutNs('closing', t.closing)) },
    { name: 'tortie_cfg_ct_other_timeout_ns', value: u64(timeoutNs('other', t.other)) },
    {
      name: 'tortie_cfg_allow_ipip_from_workloads',
      value: u32(config.allowIPIPPacketsFromWorkloads === true ? 1 : 0),
    },
    {
      name: 'tortie_cfg_allow_vxlan_from_workloads',
      value: u32(config.allowVXLANPacketsFromWorkloads === true ? 1 : 0),
    },
    { name: 'tortie_cfg_vxlan_port', value: u32(vxlanPort(config.vxlanPort)) },
    {
      name: 'tortie_cfg_endpoint_to_host_action',
      value: u32(hostAction(config.endpointToHostAction)),
    },
    { name: 'tortie_cfg_ct_budget_interval_ns', value: u64(budget.intervalNs) },
    { name: 'tortie_cfg_ct_budget_burst', value: u32(budget.burst) },
  ];
}

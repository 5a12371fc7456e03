/**
 * The reference evaluator for host endpoints: Calico's host endpoint semantics in the
 * most obvious code (docs/host-endpoints.md states them; the BPF dataplane is tested
 * against this). Rule matching is ./evaluate.ts's walk; this file decides which host
 * endpoint an interface has, which policies judge which traffic, and in what order the
 * stages come — as Felix's raw, mangle and filter chains order them:
 *
 *   arriving on a host interface (to a host process, or forwarded):
 *     1. untracked (raw PREROUTING): failsafe inbound, then doNotTrack ingress policy;
 *     2. pre-DNAT (mangle PREROUTING): failsafe inbound, then preDNAT policy;
 *     3. filter: to a host process — failsafe inbound, then normal policy and profiles
 *        (default deny); forwarded — applyOnForward ingress policy (allow when none
 *        applies; no failsafe, no profiles).
 *   leaving by a host interface:
 *     1. untracked (raw OUTPUT, host processes only): failsafe outbound, then doNotTrack
 *        egress policy;
 *     2. filter: from a host process — failsafe outbound, then normal policy and
 *        profiles; forwarded — applyOnForward egress policy (allow when none applies).
 *
 * In stages 1 and 2 a matching Allow accepts the packet there and then (later stages do
 * not see it), a Deny drops it, and a packet no rule matches goes on (no tier default,
 * no profiles). An interface with no host endpoint is not tortie's business: allowed.
 * Only new flows are judged here: replies of an allowed tracked flow pass on conntrack.
 */
import { addressInNet } from './evaluate-net.js';
import { policyApplies, walkPolicies, type Subject } from './evaluate.js';
import type {
  Direction,
  Failsafe,
  FailsafePort,
  HostEndpoint,
  Packet,
  Policy,
  Verdict,
  World,
} from './model.js';

/** A non-workload interface of the node. */
export interface HostInterface {
  readonly name: string;
  /** Its IPv4 addresses (expectedIPs match them). */
  readonly addresses: readonly string[];
}

/** Which way a packet crosses the host interface, and whether a host process is its end. */
export type HostPath =
  | 'to-host' //      arrives on the interface for a host process (INPUT)
  | 'from-host' //    a host process sends it out of the interface (OUTPUT)
  | 'forward-in' //   arrives on the interface and is forwarded (to a pod, another interface)
  | 'forward-out'; // is forwarded out of the interface (from a pod, another interface)

export type HostStage = 'none' | 'doNotTrack' | 'preDNAT' | 'failsafe' | 'policy' | 'forward';

export interface HostJudgement {
  readonly allowed: boolean;
  /** The host endpoint judging the interface; undefined: none, the packet is allowed. */
  readonly endpoint?: string;
  /** The stage that decided. */
  readonly stage: HostStage;
  /** The deciding rule (stage failsafe: `failsafe/<in|out>/<index>`; forward default: `forward/default/<d>`). */
  readonly verdict?: Verdict;
  /** False when a doNotTrack policy allowed it: the flow is not tracked (replies need their own allow). */
  readonly tracked: boolean;
}

/**
 * The host endpoint of `node` that judges `iface`, as Felix resolves it: one naming the
 * interface; else one whose expectedIPs hold an address of the interface; else a
 * wildcard (`*`) one. Among several of a kind, the first by name.
 */
export function hostEndpointFor(
  endpoints: readonly HostEndpoint[],
  node: string,
  iface: HostInterface,
): HostEndpoint | undefined {
  const mine = endpoints
    .filter((h) => h.node === node)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return (
    mine.find((h) => h.interfaceName === iface.name) ??
    mine.find(
      (h) =>
        h.interfaceName === undefined && h.expectedIPs.some((ip) => iface.addresses.includes(ip)),
    ) ??
    mine.find((h) => h.interfaceName === '*')
  );
}

/** The subject a host endpoint is to the rule walk; `address` is the packet's host side. */
function hostSubject(hep: HostEndpoint, address: string): Subject {
  return {
    labels: hep.labels,
    namespace: undefined,
    address,
    ports: hep.ports,
    profiles: hep.profiles,
  };
}

/** The index of the first failsafe entry the packet matches, or -1. */
export function failsafeMatch(
  ports: readonly FailsafePort[],
  packet: Packet,
  direction: Direction,
): number {
  const peer = direction === 'ingress' ? packet.saddr : packet.daddr;
  return ports.findIndex(
    (f) =>
      f.protocol === packet.protocol &&
      f.port === packet.dport &&
      (f.net === undefined || addressInNet(peer, f.net)),
  );
}

function failsafeVerdict(
  failsafe: Failsafe,
  packet: Packet,
  direction: Direction,
): Verdict | undefined {
  const list = direction === 'ingress' ? failsafe.inbound : failsafe.outbound;
  const index = failsafeMatch(list, packet, direction);
  if (index < 0) return undefined;
  const d = direction === 'ingress' ? 'in' : 'out';
  return { action: 'allow', rule: `failsafe/${d}/${index}`, logged: false };
}

function stagePolicies(world: World, stage: 'doNotTrack' | 'preDNAT'): Policy[] {
  return (world.hostPolicies ?? []).filter((p) => p.stage === stage);
}

export interface HostContext {
  readonly node: string;
  /** Every host endpoint of the world (those of other nodes are ignored). */
  readonly hostEndpoints: readonly HostEndpoint[];
  readonly failsafe: Failsafe;
}

/** The fate of a new flow's first packet crossing a host interface of `host.node`. */
export function judgeHostPacket(
  world: World,
  host: HostContext,
  iface: HostInterface,
  path: HostPath,
  packet: Packet,
): HostJudgement {
  const hep = hostEndpointFor(host.hostEndpoints, host.node, iface);
  if (hep === undefined) return { allowed: true, stage: 'none', tracked: true };
  const endpoint = hep.name;
  const direction: Direction = path === 'to-host' || path === 'forward-in' ? 'ingress' : 'egress';
  const hostSide = direction === 'ingress' ? packet.daddr : packet.saddr;
  const subject = hostSubject(hep, hostSide);
  const decided = (stage: HostStage, verdict: Verdict, tracked = true): HostJudgement => ({
    allowed: verdict.action === 'allow',
    endpoint,
    stage,
    verdict,
    tracked,
  });
  const failsafe = failsafeVerdict(host.failsafe, packet, direction);

  // 1. Untracked: ingress on every arriving packet, egress only for host processes
  // (raw has no hook between forwarding and leaving). Failsafe comes first there too,
  // so a doNotTrack deny cannot cut a failsafe port either.
  if (path !== 'forward-out') {
    const dnt = stagePolicies(world, 'doNotTrack');
    if (dnt.length > 0 && failsafe === undefined) {
      const v = walkPolicies(world, subject, direction, packet, dnt, 'fall-through');
      if (v !== undefined) return decided('doNotTrack', v, v.action !== 'allow');
    }
  }

  // 2. Pre-DNAT: ingress only.
  if (direction === 'ingress') {
    const pre = stagePolicies(world, 'preDNAT');
    if (pre.length > 0 && failsafe === undefined) {
      const v = walkPolicies(world, subject, 'ingress', packet, pre, 'fall-through');
      if (v !== undefined) return decided('preDNAT', v);
    }
  }

  // 3. Filter.
  if (path === 'to-host' || path === 'from-host') {
    if (failsafe !== undefined) return decided('failsafe', failsafe);
    const v = walkPolicies(world, subject, direction, packet, world.policies, 'profiles')!;
    return decided('policy', v);
  }
  // Forwarded: judged only when an applyOnForward policy applies in this direction.
  const forwarding = world.policies.filter(
    (p) => p.applyOnForward === true && policyApplies(world, p, subject, direction),
  );
  if (forwarding.length === 0)
    return decided('forward', {
      action: 'allow',
      rule: `forward/default/${direction}`,
      logged: false,
    });
  return decided('forward', walkPolicies(world, subject, direction, packet, forwarding, 'tiers')!);
}

/**
 * The validated inputs of create / check: every name, address and namespace worked out
 * once, before anything touches the kernel.
 */
import { DEFAULT_POD_IFNAME } from './constants.js';
import { assertIPv4, assertIfName, assertMtu, hostVethName } from './names.js';
import { netnsTarget, otherNetns, type NetnsTarget, type OtherNetns } from './netns.js';

export interface PodNetworkOptions {
  /** Any non-empty string that identifies the workload (container id, "ns/pod", ...). */
  workloadId: string;
  /** The pod's network namespace, by path (/run/netns/X, /proc/PID/ns/net, ...). */
  podNetns: string;
  /** The node's network namespace, by path; undefined means the caller's own. */
  hostNetns?: string;
  /** The pod's IPv4 address; it is given to the pod as a /32. */
  ip: string;
  /** The interface name inside the pod. Default eth0. */
  ifName?: string;
  /** MTU of both veth ends; default the kernel's (1500). */
  mtu?: number;
  /**
   * The BPF dataplane's endpoint programs, attached to the host end (tc ingress and egress)
   * before it is brought up: the guard of src/cni/guard.ts in BPF mode.
   */
  programs?: { fromPodFd: number; toPodFd: number };
}

export interface PodNetwork {
  hostIfName: string;
  hostIfindex: number;
  podIfName: string;
  podIfindex: number;
  podMac: string;
}

export interface PodNetworkPlan {
  workloadId: string;
  host: NetnsTarget;
  pod: OtherNetns;
  hostIfName: string;
  podIfName: string;
  ip: string;
  mtu: number | undefined;
  programs: { fromPodFd: number; toPodFd: number } | undefined;
}

export function planPodNetwork(opts: PodNetworkOptions): PodNetworkPlan {
  const hostIfName = hostVethName(opts.workloadId);
  const podIfName = opts.ifName ?? DEFAULT_POD_IFNAME;
  assertIfName(podIfName, 'pod interface name');
  assertIPv4(opts.ip);
  assertMtu(opts.mtu);
  return {
    workloadId: opts.workloadId,
    host: netnsTarget(opts.hostNetns, 'host network namespace path'),
    pod: otherNetns(opts.podNetns, 'pod network namespace path'),
    hostIfName,
    podIfName,
    ip: opts.ip,
    mtu: opts.mtu,
    programs: opts.programs,
  };
}

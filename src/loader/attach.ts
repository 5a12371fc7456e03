/**
 * tc attachment: the two programs on the host end of a pod veth (tc ingress runs
 * tortie_from_pod — the pod sends —, tc egress runs tortie_to_pod — the pod receives),
 * and the two on the node's uplink (tc ingress runs tortie_from_uplink — tunnel
 * traffic arrives —, tc egress runs tortie_to_uplink — the node's own packets to
 * remote pods are encapsulated).
 * Attaching replaces whatever sits at tortie's (priority, handle), so it is idempotent
 * and a reloaded dataplane takes over from the previous one without a gap.
 */
import { native } from '../native/index.js';
import type { TcDirection } from '../native/types.js';

/** tortie's filter slot on each clsact hook. */
export const TC_PRIORITY = 1;
export const TC_HANDLE = 1;

export interface NetnsOption {
  /** Network namespace of the interface (e.g. /run/netns/X); default: the caller's. */
  readonly netnsPath?: string;
}

/** Runs fn inside the namespace at path (on this thread), then returns. */
export function inNetns<T>(path: string | undefined, fn: () => T): T {
  if (path === undefined) return fn();
  const previous = native.enterNetns(path);
  try {
    return fn();
  } finally {
    native.restoreNetns(previous);
  }
}

export interface EndpointPrograms {
  /** fd of tortie_from_pod */
  readonly fromPodFd: number;
  /** fd of tortie_to_pod */
  readonly toPodFd: number;
}

function attachOne(ifindex: number, direction: TcDirection, fd: number): void {
  try {
    native.tcAttach(ifindex, direction, fd, {
      priority: TC_PRIORITY,
      handle: TC_HANDLE,
      replace: true,
    });
  } catch (e) {
    throw new Error(
      `attaching tortie to tc ${direction} of ifindex ${ifindex} failed: ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
}

export function attachPrograms(
  ifindex: number,
  progs: EndpointPrograms,
  opts: NetnsOption = {},
): void {
  inNetns(opts.netnsPath, () => {
    attachOne(ifindex, 'ingress', progs.fromPodFd);
    attachOne(ifindex, 'egress', progs.toPodFd);
  });
}

/** Removes both programs; true when anything was attached. Unknown interfaces throw. */
export function detachPrograms(ifindex: number, opts: NetnsOption = {}): boolean {
  return inNetns(opts.netnsPath, () => {
    const slot = { priority: TC_PRIORITY, handle: TC_HANDLE };
    const ingress = native.tcDetach(ifindex, 'ingress', slot);
    const egress = native.tcDetach(ifindex, 'egress', slot);
    return ingress || egress;
  });
}

export interface UplinkPrograms {
  /** fd of tortie_from_uplink */
  readonly fromUplinkFd: number;
  /** fd of tortie_to_uplink */
  readonly toUplinkFd: number;
}

/** Puts both uplink programs on the node's uplink, replacing what sits in tortie's slots. */
export function attachUplinkPrograms(
  ifindex: number,
  progs: UplinkPrograms,
  opts: NetnsOption = {},
): void {
  inNetns(opts.netnsPath, () => {
    attachOne(ifindex, 'ingress', progs.fromUplinkFd);
    attachOne(ifindex, 'egress', progs.toUplinkFd);
  });
}

/**
 * Removes them (the clsact qdisc stays: other programs may use it); true when anything
 * was attached. Unknown interfaces throw.
 */
export function detachUplinkPrograms(ifindex: number, opts: NetnsOption = {}): boolean {
  return detachPrograms(ifindex, opts);
}

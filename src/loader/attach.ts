/**
 * tc attachment of the two programs to the host end of a pod veth: tc ingress runs
 * tortie_from_pod (the pod sends), tc egress runs tortie_to_pod (the pod receives).
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

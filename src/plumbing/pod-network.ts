/**
 * Creates and deletes a pod's network in the Calico model: a veth pair, the host end
 * (`tor…`, MAC ee:ee:ee:ee:ee:ee, proxy ARP) in the node's namespace with a /32 route to
 * the pod, the pod end holding the pod's /32 and a default route via 169.254.1.1.
 *
 * Through rtnetlink in the native addon (native/netlink.cc), one request per step in the
 * namespaces themselves: no `ip` process (~3 ms each idle, several times that loaded),
 * which is what a CNI ADD's latency is made of once its process start is gone.
 */
import { native } from '../native/index.js';
import { HOST_VETH_MAC, POD_GATEWAY_IP } from './constants.js';
import { PlumbingError, kindFromStderr, type PlumbingErrorKind } from './errors.js';
import {
  assertNetnsExists,
  describeNetns,
  netnsTarget,
  runIpIn,
  type NetnsTarget,
} from './netns.js';
import { hostVethName } from './names.js';
import {
  planPodNetwork,
  type PodNetwork,
  type PodNetworkOptions,
  type PodNetworkPlan,
} from './pod-network-plan.js';

export type { PodNetwork, PodNetworkOptions } from './pod-network-plan.js';

export interface DeletePodNetworkOptions {
  workloadId: string;
  hostNetns?: string;
}

/** The path the native calls take for a namespace (undefined: the caller's own). */
export function nativeNetns(target: NetnsTarget): string | undefined {
  return target.kind === 'current' ? undefined : target.path;
}

/**
 * Creates the pod's network, all or nothing: on any failure what was done is undone (the
 * host veth is deleted, which takes its peer and its route along) and a PlumbingError
 * names the failed step and interface. net.ipv4.ip_forward=1 is namespace-wide and shared
 * by every pod of the node, so it is left set.
 */
export async function createPodNetwork(opts: PodNetworkOptions): Promise<PodNetwork> {
  const plan = planPodNetwork(opts);
  await assertNetnsExists(plan.host, 'open the host network namespace');
  await assertNetnsExists(plan.pod, 'open the pod network namespace');
  const hostNetns = nativeNetns(plan.host);
  try {
    const made = await native.podNetworkCreate({
      ...(hostNetns === undefined ? {} : { hostNetns }),
      podNetns: plan.pod.path,
      hostIfName: plan.hostIfName,
      podIfName: plan.podIfName,
      hostMac: HOST_VETH_MAC,
      ip: plan.ip,
      gateway: POD_GATEWAY_IP,
      ...(plan.mtu === undefined ? {} : { mtu: plan.mtu }),
      ...(plan.programs === undefined ? {} : plan.programs),
    });
    return {
      hostIfName: plan.hostIfName,
      hostIfindex: made.hostIfindex,
      podIfName: plan.podIfName,
      podIfindex: made.podIfindex,
      podMac: made.podMac,
    };
  } catch (err) {
    throw await failAndUndo(plan, err as NetlinkError);
  }
}

/**
 * Removes the workload's host veth (its peer and the /32 route go with it). Returns true
 * when it removed something, false when there was nothing to remove.
 */
export async function deletePodNetwork(opts: DeletePodNetworkOptions): Promise<boolean> {
  const hostIfName = hostVethName(opts.workloadId);
  const host = netnsTarget(opts.hostNetns, 'host network namespace path');
  await assertNetnsExists(host, 'open the host network namespace');
  return deleteHostVeth(host, hostIfName);
}

/** What the native netlink calls throw: an errno error naming the step. */
interface NetlinkError extends Error {
  step?: string;
  code?: string;
}

async function deleteHostVeth(host: NetnsTarget, hostIfName: string): Promise<boolean> {
  try {
    return await native.linkDelete(nativeNetns(host), hostIfName);
  } catch (err) {
    const e = err as NetlinkError;
    throw new PlumbingError(
      `delete the host veth ${hostIfName} in ${describeNetns(host)} failed: ${e.message}`,
      {
        kind: kindOf(e),
        step: 'delete the host veth',
        ifName: hostIfName,
        cause: err,
      },
    );
  }
}

function kindOf(err: NetlinkError): PlumbingErrorKind {
  if (err.code === 'EEXIST') return 'already-exists';
  if (err.code === 'ENOENT' || err.code === 'ENODEV') return 'not-found';
  return kindFromStderr(err.message);
}

/** Undoes a partial create (anything after the veth exists) and names the failed step. */
async function failAndUndo(plan: PodNetworkPlan, err: NetlinkError): Promise<PlumbingError> {
  const step = err.step ?? 'create the pod network';
  const hostSide =
    step.includes(plan.hostIfName) ||
    /veth pair|host route|ip_forward|host namespace/.test(step) ||
    (plan.host.kind !== 'current' && step.includes(plan.host.path));
  const ifName = hostSide ? plan.hostIfName : plan.podIfName;
  const kind = kindOf(err);
  let reason = err.message.startsWith(`${step}: `)
    ? err.message.slice(step.length + 2)
    : err.message;
  const vethCreated = !/^create the veth pair|^open |^enter |^parse /.test(step);
  if (kind === 'already-exists' && !vethCreated) reason += await explainExistingVeth(plan);
  let outcome = '';
  if (vethCreated) {
    try {
      const removed = await deleteHostVeth(plan.host, plan.hostIfName);
      outcome = removed ? `; undone: removed ${plan.hostIfName} and its peer` : '';
    } catch (undoErr) {
      outcome = `; undo FAILED, ${plan.hostIfName} may remain: ${(undoErr as Error).message}`;
    }
  }
  const where = describeNetns(hostSide ? plan.host : plan.pod);
  return new PlumbingError(
    `create pod network for workload ${JSON.stringify(plan.workloadId)}: step "${step}" failed on ${ifName}` +
      ` in ${where}: ${reason}${outcome}`,
    { kind, step, ifName, stderr: reason, cause: err },
  );
}

/** "File exists" from `link add` means either end's name is taken: say which. */
async function explainExistingVeth(plan: PodNetworkPlan): Promise<string> {
  const [host, pod] = await Promise.allSettled([
    runIpIn(plan.host, ['link', 'show', 'dev', plan.hostIfName]),
    runIpIn(plan.pod, ['link', 'show', 'dev', plan.podIfName]),
  ]);
  const taken: string[] = [];
  if (host.status === 'fulfilled') {
    taken.push(
      `${plan.hostIfName} already exists in ${describeNetns(plan.host)} (is this workload already set up?)`,
    );
  }
  if (pod.status === 'fulfilled')
    taken.push(`${plan.podIfName} already exists in ${describeNetns(plan.pod)}`);
  return taken.length > 0 ? ` (${taken.join('; ')})` : '';
}

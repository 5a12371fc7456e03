/**
 * Creates and deletes a pod's network in the Calico model: a veth pair, the host end
 * (`tor…`, MAC ee:ee:ee:ee:ee:ee, proxy ARP) in the node's namespace with a /32 route to
 * the pod, the pod end holding the pod's /32 and a default route via 169.254.1.1.
 *
 * Cost: three spawns when the node is another namespace (ip batch on the host side, then
 * the pod-side ip batch and the sysctls in parallel), two in the caller's own namespace
 * (sysctls go through /proc/sys).
 */
import { HOST_VETH_MAC, POD_GATEWAY_IP } from './constants.js';
import { PlumbingError, kindFromStderr, type PlumbingErrorKind } from './errors.js';
import { IpBatchError, runIpBatch, type IpBatchLine } from './ip-batch.js';
import { ipLinksSchema, parseIpJson, splitJsonOutputs, type IpLink } from './iproute-json.js';
import { CommandError } from './command.js';
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
import { SysctlError, writeSysctls } from './sysctl.js';

export type { PodNetwork, PodNetworkOptions } from './pod-network-plan.js';

export interface DeletePodNetworkOptions {
  workloadId: string;
  hostNetns?: string;
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

  let hostLink: IpLink;
  try {
    hostLink = lastLink(
      await runIpBatch(plan.host, hostLines(plan), { json: true }),
      plan.hostIfName,
    );
  } catch (err) {
    // Only a failure after the veth exists (any line but the first) leaves something to undo.
    const vethCreated =
      !(err instanceof IpBatchError) || (err.failedIndex ?? vethCreateIndexGuess(err)) > 0;
    throw await failAndUndo(plan, err, { undo: vethCreated, side: 'host' });
  }

  const [sysctls, pod] = await Promise.allSettled([
    writeSysctls(plan.host, hostSysctls(plan)),
    runIpBatch(plan.pod, podLines(plan), { json: true }),
  ]);
  if (sysctls.status === 'rejected')
    throw await failAndUndo(plan, sysctls.reason, { undo: true, side: 'host' });
  if (pod.status === 'rejected')
    throw await failAndUndo(plan, pod.reason, { undo: true, side: 'pod' });

  let podLink: IpLink;
  try {
    podLink = lastLink(pod.value, plan.podIfName);
    if (!podLink.address) throw new Error(`ip link show dev ${plan.podIfName} gave no MAC address`);
  } catch (err) {
    throw await failAndUndo(plan, err, { undo: true, side: 'pod' });
  }
  return {
    hostIfName: plan.hostIfName,
    hostIfindex: hostLink.ifindex,
    podIfName: plan.podIfName,
    podIfindex: podLink.ifindex,
    podMac: podLink.address,
  };
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

function hostLines(plan: PodNetworkPlan): IpBatchLine[] {
  const mtu = plan.mtu === undefined ? '' : ` mtu ${plan.mtu}`;
  const host = plan.hostIfName;
  return [
    {
      step: `create the veth pair (peer ${plan.podIfName} in ${plan.pod.path})`,
      ifName: host,
      command:
        `link add ${host} address ${HOST_VETH_MAC}${mtu} type veth` +
        ` peer name ${plan.podIfName}${mtu} netns ${plan.pod.path}`,
    },
    // No IPv6 link-local address: tortie pods are IPv4-only until dual stack lands, and
    // an address would make both ends chatter (router solicitations, DAD) into the BPF
    // programs, which drop IPv6. Calico's CNI plugin disables IPv6 the same way.
    {
      step: 'turn off IPv6 address generation on the host end',
      ifName: host,
      command: `link set dev ${host} addrgenmode none`,
    },
    { step: 'bring the host end up', ifName: host, command: `link set dev ${host} up` },
    {
      step: `add the host route to ${plan.ip}/32`,
      ifName: host,
      command: `route add ${plan.ip}/32 dev ${host} scope link`,
    },
    { step: 'read the host end', ifName: host, command: `link show dev ${host}` },
  ];
}

function podLines(plan: PodNetworkPlan): IpBatchLine[] {
  const pod = plan.podIfName;
  return [
    { step: 'bring lo up in the pod', ifName: 'lo', command: 'link set dev lo up' },
    {
      step: `add the pod address ${plan.ip}/32`,
      ifName: pod,
      command: `address add ${plan.ip}/32 dev ${pod}`,
    },
    {
      step: 'turn off IPv6 address generation on the pod end',
      ifName: pod,
      command: `link set dev ${pod} addrgenmode none`,
    },
    { step: 'bring the pod end up', ifName: pod, command: `link set dev ${pod} up` },
    {
      step: `add the pod's link route to ${POD_GATEWAY_IP}`,
      ifName: pod,
      command: `route add ${POD_GATEWAY_IP}/32 dev ${pod} scope link`,
    },
    {
      step: `add the pod's default route via ${POD_GATEWAY_IP}`,
      ifName: pod,
      command: `route add default via ${POD_GATEWAY_IP} dev ${pod} onlink`,
    },
    { step: 'read the pod end', ifName: pod, command: `link show dev ${pod}` },
  ];
}

function hostSysctls(plan: PodNetworkPlan): Array<[string, string]> {
  return [
    ['net.ipv4.ip_forward', '1'],
    [`net.ipv4.conf.${plan.hostIfName}.proxy_arp`, '1'],
    // Answer ARP for the gateway at once, not after a random delay of up to 0.8 s.
    [`net.ipv4.neigh.${plan.hostIfName}.proxy_delay`, '0'],
  ];
}

/**
 * ip rejects some arguments before running a line and then gives no line number. Those
 * are the namespace arguments of the first line ("Invalid netns value", "Cannot open
 * network namespace"), after which nothing was done, as when ip could not be started;
 * anything else may have come later, so it is undone.
 */
function vethCreateIndexGuess(err: IpBatchError): number {
  if (err.cause instanceof CommandError && err.cause.notStarted) return 0;
  return /Invalid "netns" value|Cannot open network namespace/.test(err.stderr) ? 0 : 1;
}

function lastLink(stdout: string, ifName: string): IpLink {
  const outputs = splitJsonOutputs(stdout);
  const links = parseIpJson(
    ipLinksSchema,
    outputs[outputs.length - 1],
    `ip link show dev ${ifName}`,
  );
  const link = links.find((candidate) => candidate.ifname === ifName);
  if (!link) throw new Error(`ip link show dev ${ifName} did not return ${ifName}`);
  return link;
}

async function deleteHostVeth(host: NetnsTarget, hostIfName: string): Promise<boolean> {
  try {
    await runIpIn(host, ['link', 'delete', 'dev', hostIfName]);
    return true;
  } catch (err) {
    if (err instanceof CommandError && /Cannot find device/.test(err.stderr)) return false;
    const stderr = err instanceof CommandError ? err.stderr.trim() : undefined;
    throw new PlumbingError(
      `delete the host veth ${hostIfName} in ${describeNetns(host)} failed: ${stderr || (err as Error).message}`,
      {
        kind: stderr ? kindFromStderr(stderr) : 'command-failed',
        step: 'delete the host veth',
        ifName: hostIfName,
        ...(stderr ? { stderr } : {}),
        cause: err,
      },
    );
  }
}

/** Undoes a partial create (when `undo`) and builds the error that names the failed step. */
async function failAndUndo(
  plan: PodNetworkPlan,
  err: unknown,
  how: { undo: boolean; side: 'host' | 'pod' },
): Promise<PlumbingError> {
  let step = 'read back the created interfaces';
  let ifName = how.side === 'host' ? plan.hostIfName : plan.podIfName;
  let stderr: string | undefined;
  let kind: PlumbingErrorKind = 'command-failed';
  if (err instanceof IpBatchError) {
    step = err.failed?.step ?? 'an ip batch step (ip did not say which)';
    ifName = err.failed?.ifName ?? ifName;
    stderr = err.stderr;
    kind = kindFromStderr(err.stderr);
  } else if (err instanceof SysctlError) {
    step = 'set ip_forward, proxy_arp and proxy_delay for the host end';
    stderr = err.stderr;
    kind = kindFromStderr(err.stderr);
  }
  let reason = stderr || (err instanceof Error ? err.message : String(err));
  if (kind === 'already-exists' && err instanceof IpBatchError && err.failedIndex === 0) {
    reason += await explainExistingVeth(plan);
  }
  let outcome = '';
  if (how.undo) {
    try {
      const removed = await deleteHostVeth(plan.host, plan.hostIfName);
      outcome = removed ? `; undone: removed ${plan.hostIfName} and its peer` : '';
    } catch (undoErr) {
      outcome = `; undo FAILED, ${plan.hostIfName} may remain: ${(undoErr as Error).message}`;
    }
  }
  const where = describeNetns(how.side === 'host' ? plan.host : plan.pod);
  return new PlumbingError(
    `create pod network for workload ${JSON.stringify(plan.workloadId)}: step "${step}" failed on ${ifName}` +
      ` in ${where}: ${reason}${outcome}`,
    { kind, step, ifName, ...(stderr ? { stderr } : {}), cause: err },
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

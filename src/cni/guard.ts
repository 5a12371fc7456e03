/**
 * The guard that closes the window between "the veth is up" and "the agent has attached
 * its programs to it".
 *
 * Plumbing brings the pod's veth up with its address and routes. Until the node's agent
 * has attached tortie_from_pod / tortie_to_pod to the host end (it does so only once it
 * sees the WorkloadEndpoint), that veth is a plain kernel interface: the node namespace
 * forwards whatever the pod sends (to pods of the node through their veths, to other
 * nodes through the uplink, which encapsulates it) and delivers to the pod whatever is
 * routed to its /32 (packets that other pods' programs hand to the host stack). Measured:
 * a pod of a default-deny namespace sending every 10 ms got 6 datagrams to a pod of the
 * same node and 6 to a pod of another node, and received 3, before its policy was in
 * place (test/e2e/resilience.test.ts).
 *
 * So before the veth exists, ADD puts two policy-routing rules into the node namespace,
 * ahead of the main table:
 *
 *   pref 10 iif <host veth> prohibit   nothing the pod sends is routed; the node does not
 *                                      even answer its ARP for the gateway (proxy ARP
 *                                      routes the request through these rules), so the
 *                                      pod cannot send any IP packet
 *   pref 10 to <pod ip>/32 prohibit    nothing is routed to it by the node's kernel
 *
 * and takes them out only once the agent reports the endpoint programmed — its entry,
 * policy and attachment are in place, and the programs, which redirect without the
 * kernel's routing, carry the traffic. A rule for an interface that does not exist yet
 * is valid (the kernel matches it by name), so the guard is in place before the first
 * packet can be sent. Rollback and DEL take the rules out too.
 */
import { hostVethName } from '../plumbing/names.js';
import { netnsTarget, runIpIn } from '../plumbing/netns.js';
import { CommandError } from '../plumbing/command.js';

/** After `local` (0): the node's own addresses stay local; before `main` (32766). */
export const GUARD_RULE_PREF = 10;

function ruleSpecs(hostIfName: string, ips: readonly string[]): string[] {
  return [
    `pref ${GUARD_RULE_PREF} iif ${hostIfName} prohibit`,
    ...ips.map((ip) => `pref ${GUARD_RULE_PREF} to ${ip}/32 prohibit`),
  ];
}

async function deleteRules(hostNetns: string | undefined, specs: readonly string[]) {
  const target = netnsTarget(hostNetns, 'host network namespace path');
  try {
    // -force: go on after a rule that is not there.
    await runIpIn(target, ['-force', '-batch', '-'], {
      stdin: specs.map((s) => `rule del ${s}\n`).join(''),
    });
  } catch (err) {
    const stderr = err instanceof CommandError ? err.stderr : String(err);
    const real = stderr
      .split('\n')
      .filter((l) => l.trim() !== '')
      .filter((l) => !/No such file or directory|Command failed -:\d+/.test(l));
    if (real.length > 0)
      throw new Error(`remove the guard rules (${specs.join('; ')}): ${real.join(' ')}`);
  }
}

/** Puts the guard up for the veth of `workloadId` and the pod's address (idempotent). */
export async function guardPod(
  hostNetns: string | undefined,
  workloadId: string,
  ip: string,
): Promise<void> {
  const specs = ruleSpecs(hostVethName(workloadId), [ip]);
  // A guard a crashed ADD left behind would be a second copy: remove it first.
  await deleteRules(hostNetns, specs);
  const target = netnsTarget(hostNetns, 'host network namespace path');
  try {
    await runIpIn(target, ['-batch', '-'], { stdin: specs.map((s) => `rule add ${s}\n`).join('') });
  } catch (err) {
    const stderr = err instanceof CommandError ? err.stderr.trim() : String(err);
    await deleteRules(hostNetns, specs).catch(() => undefined);
    throw new Error(`add the guard rules (${specs.join('; ')}): ${stderr}`);
  }
}

/** Takes the guard down (absent rules are fine). */
export async function unguardPod(
  hostNetns: string | undefined,
  workloadId: string,
  ips: readonly string[],
): Promise<void> {
  await deleteRules(hostNetns, ruleSpecs(hostVethName(workloadId), ips));
}

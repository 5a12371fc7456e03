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
import { hostVethName, prohibitRules } from '../plumbing/index.js';

/** After `local` (0): the node's own addresses stay local; before `main` (32766). */
export const GUARD_RULE_PREF = 10;

/**
 * Puts the guard up for the veth of `workloadId` and the pod's address (idempotent: a
 * guard a crashed ADD left behind is not doubled).
 */
export async function guardPod(
  hostNetns: string | undefined,
  workloadId: string,
  ip: string,
): Promise<void> {
  const host = hostVethName(workloadId);
  try {
    prohibitRules(hostNetns, 'add', GUARD_RULE_PREF, [host], [ip]);
  } catch (err) {
    await unguardPod(hostNetns, workloadId, [ip]).catch(() => undefined);
    throw new Error(
      `add the guard rules (pref ${GUARD_RULE_PREF} iif ${host} prohibit; pref ${GUARD_RULE_PREF} to ${ip}/32 prohibit): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** Takes the guard down (absent rules are fine). */
export async function unguardPod(
  hostNetns: string | undefined,
  workloadId: string,
  ips: readonly string[],
): Promise<void> {
  const host = hostVethName(workloadId);
  try {
    prohibitRules(hostNetns, 'delete', GUARD_RULE_PREF, [host], ips);
  } catch (err) {
    throw new Error(
      `remove the guard rules of ${host} (${ips.join(', ')}): ${(err as Error).message}`,
      { cause: err },
    );
  }
}

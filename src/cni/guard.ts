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
 * In the BPF dataplane the guard is the programs themselves. When ADD runs inside the node
 * agent (src/cni/server.ts) and the agent's dataplane is BPF in the namespace the veth is
 * made in, plumbing attaches the agent's tortie_from_pod (tc ingress) and tortie_to_pod (tc
 * egress) to the host end right after creating the pair, before it is up and before its
 * /32 route exists (native/netlink.cc). With no entry for the interface in tortie_ifaces
 * they drop every IP packet either way as TORTIE_DROP_NO_ENDPOINT (bpf/tc_policy.c; ARP
 * still passes, so the pod resolves its gateway and gets nothing further). The agent's
 * reconcile then attaches the same programs at the same tc slot (a replace: nothing is
 * doubled or detached), writes the entry and the policy, and reports the endpoint
 * programmed; from then on policy is in force. No rule is added, so none is on ADD's path
 * and the kernel's fib_has_custom_rules, which never clears once any rule has existed,
 * stays off: every bpf_fib_lookup of the node skips the rules walk (docs/benchmarks.md).
 * DEL adds none either: the programs stay attached until the veth is gone, and drop
 * everything once the agent has removed the entry.
 *
 * Elsewhere — the iptables dataplane (no programs), a CNI server without the agent, a veth
 * in another namespace than the agent's node namespace — the guard is two policy-routing
 * rules, put into the node namespace before the veth exists, ahead of the main table:
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
 * packet can be sent. Rollback and DEL take the rules out too; DEL does in either mode,
 * and absent rules are fine, so a guard an older agent or a killed ADD left behind goes.
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

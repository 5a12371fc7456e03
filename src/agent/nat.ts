/**
 * natOutgoing: pods of a pool with `natOutgoing: true` reach destinations outside every
 * IP pool with the node's address as their source, as in Calico. tortie does it with the
 * kernel's netfilter in the node's namespace — one chain of its own in the `nat` table,
 * jumped to from the top of POSTROUTING:
 *
 *   -A POSTROUTING -m comment --comment "tortie natOutgoing" -j TORTIE-NAT-OUTGOING
 *   -A TORTIE-NAT-OUTGOING -d <every pool> ... -j RETURN        (pod and node-to-pod traffic)
 *   -A TORTIE-NAT-OUTGOING -s <natOutgoing pool> ... -j MASQUERADE
 *
 * Only packets the BPF programs hand to the host stack ever reach POSTROUTING: a pod's
 * packet to another pod is redirected by BPF (same node, or IPIP to another node) and
 * never meets netfilter; under ipipMode Never it is routed by the kernel but its
 * destination is in a pool, so it RETURNs. The reply to a masqueraded flow comes back
 * plain to the node's address (tortie_from_uplink passes it, PASS_NOT_TUNNEL), netfilter
 * de-NATs it in PREROUTING and the kernel routes it to the pod's veth, where
 * tortie_to_pod finds the flow in its conntrack (PASS_CT_REPLY).
 *
 * Everything here is pure (rendering, parsing `iptables-save -t nat`, the plan); running
 * the commands is at the bottom. The chain is rewritten with `iptables-restore --noflush`
 * in one transaction (declaring the chain flushes it inside the same commit: never an
 * empty-chain window), only when what is there differs from what is wanted, and removed
 * with its jump when no pool wants it. A restarted agent reads the chain and adopts it.
 */
import { netnsTarget, runIn } from '../plumbing/netns.js';
import { tryParseCidr } from '../ipam/ipv4.js';

export const NAT_CHAIN = 'TORTIE-NAT-OUTGOING';
const JUMP_COMMENT = 'tortie natOutgoing';

export interface NatPool {
  readonly name: string;
  readonly cidr: string;
  readonly natOutgoing: boolean;
}

/**
 * How the source is rewritten (Felix's natOutgoingAddress and natPortRange): by default
 * MASQUERADE to the address of the interface the packet leaves by; with an address,
 * SNAT to it; with a port range, only source ports in it.
 */
export interface NatOptions {
  /** An IPv4 address (the agent validated it). */
  readonly toAddress?: string;
  /** `min-max`. */
  readonly portRange?: string;
}

/** The target of a natOutgoing rule, as iptables-save prints it (ports only with tcp/udp). */
function natTarget(opts: NatOptions, withPorts: boolean): string {
  const ports = withPorts ? opts.portRange : undefined;
  if (opts.toAddress !== undefined)
    return `-j SNAT --to-source ${opts.toAddress}${ports === undefined ? '' : `:${ports}`}`;
  return ports === undefined ? '-j MASQUERADE' : `-j MASQUERADE --to-ports ${ports}`;
}

/** The chain's rules (`-A TORTIE-NAT-OUTGOING …` lines, as iptables-save prints them); [] = no chain. */
export function natRules(pools: readonly NatPool[], opts: NatOptions = {}): string[] {
  const valid = pools
    .filter((p) => tryParseCidr(p.cidr) !== undefined && /^[A-Za-z0-9.:_-]+$/.test(p.name))
    .sort((a, b) => (a.cidr < b.cidr ? -1 : a.cidr > b.cidr ? 1 : a.name < b.name ? -1 : 1));
  if (!valid.some((p) => p.natOutgoing)) return [];
  const seen = new Set<string>();
  const ret: string[] = [];
  for (const p of valid) {
    if (seen.has(p.cidr)) continue;
    seen.add(p.cidr);
    ret.push(`-A ${NAT_CHAIN} -d ${p.cidr} -m comment --comment "tortie pool ${p.name}" -j RETURN`);
  }
  // A port range needs a protocol with ports: TCP and UDP get it, the rest none (as Felix).
  const protocols = opts.portRange === undefined ? [''] : ['-p tcp ', '-p udp ', ''];
  const masq = valid
    .filter((p) => p.natOutgoing)
    .flatMap((p) =>
      protocols.map(
        (proto) =>
          `-A ${NAT_CHAIN} -s ${p.cidr} ${proto}-m comment --comment "tortie pool ${p.name}" ${natTarget(opts, proto !== '')}`,
      ),
    );
  return [...ret, ...[...new Set(masq)]];
}

/** The jump from POSTROUTING, as iptables-save prints it. */
export const NAT_JUMP = `-A POSTROUTING -m comment --comment "${JUMP_COMMENT}" -j ${NAT_CHAIN}`;

/** What the `nat` table holds of tortie's. */
export interface NatState {
  readonly chainExists: boolean;
  /** The chain's `-A` lines, in order. */
  readonly rules: readonly string[];
  /** POSTROUTING's `-A` lines that jump to the chain. */
  readonly jumps: readonly string[];
}

/** Reads `iptables-save -t nat` output. */
export function parseNatSave(save: string): NatState {
  let chainExists = false;
  const rules: string[] = [];
  const jumps: string[] = [];
  for (const raw of save.split('\n')) {
    const line = raw.trim();
    if (line.startsWith(`:${NAT_CHAIN} `)) chainExists = true;
    else if (line.startsWith(`-A ${NAT_CHAIN} `)) rules.push(line);
    else if (line.startsWith('-A POSTROUTING ') && / -j TORTIE-NAT-OUTGOING(\s|$)/.test(line))
      jumps.push(line);
  }
  return { chainExists, rules, jumps };
}

/** Rule text compared the way iptables prints it (quotes vary by backend). */
function norm(rule: string): string {
  return rule.replace(/"/g, '').replace(/\s+/g, ' ').trim();
}

/**
 * The `iptables-restore --noflush` input that turns `state` into `desired` (natRules), or
 * undefined when nothing needs doing.
 */
export function planNat(state: NatState, desired: readonly string[]): string | undefined {
  const lines: string[] = [];
  if (desired.length === 0) {
    if (!state.chainExists && state.jumps.length === 0) return undefined;
    for (const j of state.jumps) lines.push(j.replace(/^-A /, '-D '));
    if (state.chainExists) lines.push(`:${NAT_CHAIN} - [0:0]`, `-X ${NAT_CHAIN}`);
    return ['*nat', ...lines, 'COMMIT', ''].join('\n');
  }
  const sameRules =
    state.chainExists &&
    state.rules.length === desired.length &&
    state.rules.every((r, i) => norm(r) === norm(desired[i]!));
  const jumpOk = state.jumps.length === 1 && norm(state.jumps[0]!) === norm(NAT_JUMP);
  if (sameRules && jumpOk) return undefined;
  // Declaring the chain creates it or empties it, in the same transaction as the refill.
  lines.push(`:${NAT_CHAIN} - [0:0]`, ...desired);
  if (!jumpOk) {
    for (const j of state.jumps) lines.push(j.replace(/^-A /, '-D '));
    lines.push(NAT_JUMP.replace(/^-A POSTROUTING /, '-I POSTROUTING 1 '));
  }
  return ['*nat', ...lines, 'COMMIT', ''].join('\n');
}

// --- running it ------------------------------------------------------------------------

/**
 * The iptables programs: the system's `iptables-save` / `iptables-restore` (on Debian 12
 * the nf_tables backend), so tortie's chain sits in the same backend as whatever else
 * manages the node. TORTIE_IPTABLES_BACKEND=legacy|nft picks one explicitly.
 */
function programs(): { save: string; restore: string } {
  const b = process.env.TORTIE_IPTABLES_BACKEND;
  if (b === 'nft' || b === 'legacy')
    return { save: `iptables-${b}-save`, restore: `iptables-${b}-restore` };
  return { save: 'iptables-save', restore: 'iptables-restore' };
}

export async function readNatState(nodeNetns: string | undefined): Promise<NatState> {
  const target = netnsTarget(nodeNetns, 'node network namespace');
  const { stdout } = await runIn(target, programs().save, ['-t', 'nat']);
  return parseNatSave(stdout);
}

/**
 * Brings the node's `nat` table to `desired`: reads it, and writes the plan (if any) in one
 * `iptables-restore --noflush`. Returns the plan written, undefined when nothing changed.
 */
export async function syncNat(
  nodeNetns: string | undefined,
  desired: readonly string[],
): Promise<string | undefined> {
  const plan = planNat(await readNatState(nodeNetns), desired);
  if (plan === undefined) return undefined;
  const target = netnsTarget(nodeNetns, 'node network namespace');
  await runIn(target, programs().restore, ['--noflush', '--wait'], { stdin: plan });
  return plan;
}

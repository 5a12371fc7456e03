/**
 * From a rendered Ruleset and what the kernel holds to the inputs of `ipset restore` and
 * `iptables-restore --noflush` that change only what differs (pure; the dataplane runs
 * them), and back from `iptables-save` / `ipset save` to what the kernel holds.
 *
 * Every rule carries `tortie:<hash>` in its comment (as Felix's `cali:<hash>`): the hash
 * of the chain name, the previous rule's hash and the rule's text. A chain whose hashes
 * equal the wanted ones is left alone; any other is flushed and rewritten whole (a
 * `:chain` line flushes an existing chain under --noflush) in one atomic transaction.
 */
import { createHash } from 'node:crypto';
import { CHAIN_PREFIX, SET_PREFIX, tempSetName, type IpSetSpec, type Ruleset } from './render.js';
import { spellLine, spellRule, type IptRule } from './rules.js';

/** What the kernel holds of tortie's, as far as the diff needs it. */
export interface KernelState {
  /** tortie chain → the hashes of its rules ('' for a rule without one). */
  readonly chains: ReadonlyMap<string, readonly string[]>;
  /** `FORWARD>tortie-FORWARD`: built-in chains that already jump to a tortie chain. */
  readonly hooks: ReadonlySet<string>;
  /** tortie sets (temporary ones included). */
  readonly sets: ReadonlyMap<string, IpSetSpec>;
}

export const EMPTY_STATE: KernelState = { chains: new Map(), hooks: new Set(), sets: new Map() };

/** The hashes of a chain's rules, each covering everything before it (Felix's scheme). */
export function ruleHashes(chain: string, rules: readonly IptRule[]): string[] {
  let previous = chain;
  return rules.map((rule) => {
    const h = createHash('sha256')
      .update(`${previous}\n${spellRule(rule)}\n${rule.comment ?? ''}`)
      .digest('base64url')
      .slice(0, 16);
    previous = h;
    return h;
  });
}

export interface Plan {
  /** `ipset restore` input run first: new sets made, changed sets swapped in; '' when none. */
  readonly ipsetBefore: string;
  /** `iptables-restore --noflush` input; '' when nothing changes. */
  readonly iptables: string;
  /** `ipset restore` input run last: sets nothing uses any more destroyed; '' when none. */
  readonly ipsetAfter: string;
  /** Chains written (new or changed) and removed. */
  readonly writtenChains: readonly string[];
  readonly deletedChains: readonly string[];
  readonly writtenSets: readonly string[];
  readonly deletedSets: readonly string[];
  /** The kernel's state once the plan ran. */
  readonly next: KernelState;
}

function sameList(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

export function plan(want: Ruleset, have: KernelState): Plan {
  // --- ipsets ---
  const before: string[] = [];
  const after: string[] = [];
  const writtenSets: string[] = [];
  const deletedSets: string[] = [];
  for (const set of [...want.sets.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const current = have.sets.get(set.name);
    if (
      current !== undefined &&
      current.type === set.type &&
      sameList(current.members, set.members)
    )
      continue;
    writtenSets.push(set.name);
    const maxelem = Math.max(65536, set.members.length);
    const create = (name: string): string =>
      `create ${name} ${set.type} family inet hashsize 1024 maxelem ${maxelem}`;
    if (current === undefined) {
      before.push(create(set.name));
      for (const m of set.members) before.push(`add ${set.name} ${m}`);
    } else if (current.type !== set.type) {
      throw new Error(`ipset ${set.name} is ${current.type} in the kernel, want ${set.type}`);
    } else {
      // Built whole aside, then swapped in: the set in use is never empty or half-filled.
      const tmp = tempSetName(set.name);
      if (have.sets.has(tmp)) before.push(`destroy ${tmp}`);
      before.push(create(tmp));
      for (const m of set.members) before.push(`add ${tmp} ${m}`);
      before.push(`swap ${tmp} ${set.name}`, `destroy ${tmp}`);
    }
  }
  for (const name of [...have.sets.keys()].sort()) {
    if (want.sets.has(name)) continue;
    // Temporary sets left by a crash go too.
    if (before.some((l) => l === `destroy ${name}`)) continue;
    after.push(`destroy ${name}`);
    deletedSets.push(name);
  }

  // --- chains ---
  const written: string[] = [];
  const deleted: string[] = [];
  const hashes = new Map<string, string[]>();
  for (const [chain, rules] of want.chains) {
    const h = ruleHashes(chain, rules);
    hashes.set(chain, h);
    if (!sameList(have.chains.get(chain), h)) written.push(chain);
  }
  for (const chain of have.chains.keys()) if (!want.chains.has(chain)) deleted.push(chain);
  const hooks = want.hooks.filter((h) => !have.hooks.has(`${h.builtin}>${h.chain}`));
  let iptables = '';
  if (written.length + deleted.length + hooks.length > 0) {
    const lines = ['*filter'];
    // Declared first: new chains exist before anything jumps to them; existing ones are flushed.
    for (const chain of [...written, ...deleted]) lines.push(`:${chain} - [0:0]`);
    for (const chain of written) {
      const rules = want.chains.get(chain)!;
      const h = hashes.get(chain)!;
      rules.forEach((rule, i) => lines.push(`-A ${chain} ${spellLine(rule, h[i]!)}`));
    }
    for (const chain of deleted) lines.push(`-X ${chain}`);
    for (const h of hooks) lines.push(`-I ${h.builtin} 1 -j ${h.chain}`);
    lines.push('COMMIT', '');
    iptables = lines.join('\n');
  }

  const nextHooks = new Set(have.hooks);
  for (const h of hooks) nextHooks.add(`${h.builtin}>${h.chain}`);
  return {
    ipsetBefore: before.length === 0 ? '' : before.join('\n') + '\n',
    iptables,
    ipsetAfter: after.length === 0 ? '' : after.join('\n') + '\n',
    writtenChains: written,
    deletedChains: deleted,
    writtenSets,
    deletedSets,
    next: { chains: hashes, hooks: nextHooks, sets: new Map(want.sets) },
  };
}

/** The tortie part of `iptables-save -t filter` output. */
export function parseIptablesSave(text: string): Pick<KernelState, 'chains' | 'hooks'> {
  const chains = new Map<string, string[]>();
  const hooks = new Set<string>();
  let inFilter = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) inFilter = line === '*filter';
    if (!inFilter) continue;
    const declared = /^:(\S+)/.exec(line);
    if (declared !== null && declared[1]!.startsWith(CHAIN_PREFIX)) chains.set(declared[1]!, []);
    const rule = /^-A (\S+) (.*)$/.exec(line);
    if (rule === null) continue;
    const [, chain, spec] = rule as unknown as [string, string, string];
    if (chain.startsWith(CHAIN_PREFIX)) {
      const hash = /--comment "?tortie:([A-Za-z0-9_-]+)/.exec(spec);
      (chains.get(chain) ?? chains.set(chain, []).get(chain)!).push(hash?.[1] ?? '');
    } else {
      const jump = /^-j (tortie-\S+)$/.exec(spec.trim());
      if (jump !== null) hooks.add(`${chain}>${jump[1]}`);
    }
  }
  return { chains, hooks };
}

/** The tortie sets in `ipset save` output. */
export function parseIpsetSave(text: string): Map<string, IpSetSpec> {
  const sets = new Map<string, { name: string; type: IpSetSpec['type']; members: string[] }>();
  for (const line of text.split('\n')) {
    const create = /^create (\S+) (\S+)/.exec(line);
    if (create !== null && create[1]!.startsWith(SET_PREFIX)) {
      sets.set(create[1]!, {
        name: create[1]!,
        type: create[2] as IpSetSpec['type'],
        members: [],
      });
      continue;
    }
    const add = /^add (\S+) (\S+)/.exec(line);
    if (add !== null) sets.get(add[1]!)?.members.push(add[2]!.replace(/\/32$/, ''));
  }
  for (const s of sets.values()) s.members.sort();
  return sets;
}

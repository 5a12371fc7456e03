/**
 * BGPFilter → BIRD: one function per filter and direction, called from the import and
 * export filters of the BGPPeers that name it (render.ts), in the order the peer lists
 * them. This is Calico's model (docs/bgp.md, "BGPFilter"):
 *
 * - the rules of a direction are tried in order; the first whose conditions all hold
 *   ends the whole filter with its action (`accept` / `reject` inside a BIRD function
 *   ends the filter that called it), after its operations;
 * - a route no rule of any filter takes falls through to what the peer does without
 *   filters: import accepts, export sends the node's pool prefixes (tortie_export_to_peers);
 * - `peerType` makes a rule apply to iBGP or eBGP peers only: every function takes
 *   `same_as` (the peer is in the node's AS), the caller passes it.
 *
 * Conditions: `cidr` with `matchOperator` (Equal `net = c`, NotEqual `net != c`, In
 * `net ~ c`, NotIn `net !~ c`; with `prefixLength`, In/NotIn match the prefix set
 * `c{min,max}`, min defaulting to the CIDR's length and max to 32), `source: RemotePeers`
 * (learned over BGP), `interface` (a BIRD pattern on the route's interface),
 * `communities`, `asPathPrefix`. Operations: `addCommunity`, `prependASPath`. Rules with
 * `priority` or `setPriority` are left out and reported: tortie does not keep Calico's
 * route priorities (krt_metric / local preference).
 */
import { createHash } from 'node:crypto';
import type { BGPFilterSpec } from '../datastore/schema/bgp.js';
import { tryParseCidr } from '../ipam/ipv4.js';

export type FilterDirection = 'import' | 'export';

export interface NamedFilter {
  readonly name: string;
  readonly spec: BGPFilterSpec;
}

type Rule = NonNullable<BGPFilterSpec['importV4']>[number];

/** BIRD limits symbols to 64 characters. */
const SYMBOL_MAX = 64;

/** The BIRD function of filter `name` in `dir` (a quoted symbol: names hold `-` and `.`). */
export function filterFunctionName(name: string, dir: FilterDirection): string {
  const plain = `tortie_${name}_${dir}`;
  if (plain.length <= SYMBOL_MAX) return `'${plain}'`;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 8);
  const room = SYMBOL_MAX - `tortie__${dir}`.length - hash.length - 1;
  return `'tortie_${name.slice(0, room)}-${hash}_${dir}'`;
}

function rulesOf(spec: BGPFilterSpec, dir: FilterDirection): readonly Rule[] {
  return (dir === 'import' ? spec.importV4 : spec.exportV4) ?? [];
}

/** Whether filter `spec` has rules for `dir` (a function is rendered, and called). */
export function hasRules(spec: BGPFilterSpec, dir: FilterDirection): boolean {
  return rulesOf(spec, dir).length > 0;
}

/** `aa:nn` → `(aa, nn)`; `aa:nn:mm` → `(aa, nn, mm)`, with the attribute it lives in. */
export function communityTerm(value: string): { term: string; attribute: string } {
  const parts = value.split(':');
  return {
    term: `(${parts.join(', ')})`,
    attribute: parts.length === 3 ? 'bgp_large_community' : 'bgp_community',
  };
}

/** An AS number as a Calico user writes it: 65000, "65000" or "1.10" (asdot). */
function asNumberOf(a: number | string): number | undefined {
  if (typeof a === 'number') return a;
  const dot = /^(\d+)\.(\d+)$/.exec(a);
  if (dot !== null) return Number(dot[1]) * 65536 + Number(dot[2]);
  return /^\d+$/.test(a) ? Number(a) : undefined;
}

function cidrCondition(rule: Rule): string | undefined {
  if (rule.cidr === undefined || rule.matchOperator === undefined) return undefined;
  const cidr = tryParseCidr(rule.cidr);
  if (cidr === undefined) return undefined;
  const op = rule.matchOperator;
  if (op === 'Equal') return `net = ${rule.cidr}`;
  if (op === 'NotEqual') return `net != ${rule.cidr}`;
  const tilde = op === 'In' ? '~' : '!~';
  if (rule.prefixLength === undefined) return `net ${tilde} ${rule.cidr}`;
  const min = Math.max(cidr.prefixLength, rule.prefixLength.min ?? cidr.prefixLength);
  const max = Math.min(32, rule.prefixLength.max ?? 32);
  return `net ${tilde} [ ${rule.cidr}{${min},${max}} ]`;
}

/** One rule as a BIRD statement, or why it is left out. */
function ruleStatement(rule: Rule): { text: string } | { problem: string } {
  if (rule.priority !== undefined)
    return { problem: 'matches priority, which tortie does not keep: rule left out' };
  const conds: string[] = [];
  const cidr = cidrCondition(rule);
  if (cidr !== undefined) conds.push(cidr);
  if (rule.source === 'RemotePeers') conds.push('source = RTS_BGP');
  if (rule.interface !== undefined) conds.push(`(defined(ifname) && ifname ~ "${rule.interface}")`);
  for (const value of rule.communities?.values ?? []) {
    const c = communityTerm(value);
    conds.push(`${c.term} ~ ${c.attribute}`);
  }
  if (rule.asPathPrefix !== undefined && rule.asPathPrefix.length > 0) {
    const asns = rule.asPathPrefix.map(asNumberOf);
    if (asns.some((a) => a === undefined))
      return {
        problem: `asPathPrefix ${JSON.stringify(rule.asPathPrefix)} is not a list of AS numbers: rule left out`,
      };
    conds.push(`bgp_path ~ [= ${asns.join(' ')} * =]`);
  }
  const body: string[] = [];
  for (const op of rule.operations ?? []) {
    if (op.setPriority !== undefined)
      return { problem: 'sets a priority, which tortie does not keep: rule left out' };
    if (op.addCommunity !== undefined) {
      const c = communityTerm(op.addCommunity.value);
      body.push(`${c.attribute}.add(${c.term});`);
    }
    if (op.prependASPath !== undefined) {
      const asns = op.prependASPath.prefix.map(asNumberOf);
      if (asns.some((a) => a === undefined))
        return {
          problem: `prependASPath ${JSON.stringify(op.prependASPath.prefix)} is not a list of AS numbers: rule left out`,
        };
      // Prepended last to first, so the path starts with the list as written.
      for (const a of [...asns].reverse()) body.push(`bgp_path.prepend(${a});`);
    }
  }
  body.push(rule.action === 'Accept' ? 'accept;' : 'reject;');
  let text =
    conds.length === 0
      ? body.join(' ')
      : `if ${conds.map((c) => `(${c})`).join(' && ')} then { ${body.join(' ')} }`;
  if (rule.peerType !== undefined)
    text = `if (${rule.peerType === 'iBGP' ? '' : '!'}same_as) then { ${text} }`;
  return { text };
}

/**
 * The BIRD functions of every filter (sorted by name, the same store renders the same
 * text), and the rules left out with why.
 */
export function renderFilterFunctions(filters: readonly NamedFilter[]): {
  lines: string[];
  problems: string[];
} {
  const lines: string[] = [];
  const problems: string[] = [];
  for (const f of [...filters].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    for (const dir of ['import', 'export'] as const) {
      const rules = rulesOf(f.spec, dir);
      if (rules.length === 0) continue;
      lines.push(`# BGPFilter ${f.name}: ${dir}V4`);
      lines.push(`function ${filterFunctionName(f.name, dir)}(bool same_as) {`);
      for (const [i, rule] of rules.entries()) {
        const r = ruleStatement(rule);
        if ('problem' in r) {
          problems.push(`BGPFilter ${f.name} ${dir}V4[${i}]: ${r.problem}`);
          lines.push(`  # ${dir}V4[${i}] left out: ${r.problem}`);
        } else lines.push(`  ${r.text}`);
      }
      lines.push('}');
      lines.push('');
    }
  }
  return { lines, problems };
}

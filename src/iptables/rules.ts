/**
 * iptables rules as data: the matches and targets the renderer uses, and their spelling
 * on an iptables-restore line. Keeping rules structured lets the tests judge packets
 * against exactly what is written (test/unit/iptables-differential.test.ts) and keeps
 * the spelling in one place.
 */

export type Match =
  | { readonly k: 'iface'; readonly dir: 'in' | 'out'; readonly name: string }
  | { readonly k: 'proto'; readonly not: boolean; readonly proto: number }
  | { readonly k: 'icmp'; readonly not: boolean; readonly type: number; readonly code?: number }
  | {
      readonly k: 'addr';
      readonly dir: 'src' | 'dst';
      readonly not: boolean;
      readonly cidr: string;
    }
  | {
      readonly k: 'set';
      readonly not: boolean;
      readonly name: string;
      /**
       * `src` / `dst`: the address; `dst,dst` / `src,src`: (daddr, protocol:dport) /
       * (saddr, protocol:sport) of a hash:ip,port set.
       */
      readonly flags: 'src' | 'dst' | 'dst,dst' | 'src,src';
    }
  | {
      readonly k: 'multiport';
      readonly not: boolean;
      /** Which port: the destination's (`--dports`, the default) or the source's (`--sports`). */
      readonly side?: 'src' | 'dst';
      /** At most 15 ports, a range counting as two (the kernel's limit). */
      readonly ranges: readonly (readonly [number, number])[];
    }
  | { readonly k: 'mark'; readonly value: number; readonly mask: number }
  /**
   * The inner IPv4 source of a VXLAN packet (UDP, outer header of any length) within
   * `cidr`, read by the u32 match before the kernel's vxlan device decapsulates it:
   * outer IHL → UDP header, + 8 (UDP) + 8 (VXLAN) + 14 (inner Ethernet) + 12 = 42.
   */
  | { readonly k: 'vxlan-inner-src'; readonly cidr: string }
  | { readonly k: 'ctstate'; readonly states: readonly ('ESTABLISHED' | 'RELATED' | 'INVALID')[] };

export type Target =
  | { readonly k: 'ACCEPT' | 'DROP' | 'RETURN' }
  | { readonly k: 'jump' | 'goto'; readonly chain: string }
  | { readonly k: 'set-mark'; readonly value: number; readonly mask: number }
  | { readonly k: 'log'; readonly prefix: string };

export interface IptRule {
  readonly matches: readonly Match[];
  readonly target: Target;
  /** A note for humans (not part of the rule's identity beyond its text). */
  readonly comment?: string;
}

/** Multiport's limit: 15 ports per rule, a range counting as two. */
export const MULTIPORT_MAX = 15;

const PROTO_NAMES: Readonly<Record<number, string>> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  132: 'sctp',
  136: 'udplite',
};

export function protoName(proto: number): string {
  return PROTO_NAMES[proto] ?? String(proto);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/** Bytes from the UDP header to a VXLAN packet's inner IPv4 source (8 + 8 + 14 + 12). */
export const VXLAN_INNER_SRC_OFFSET = 42;

/** An IPv4 CIDR as u32's `&mask=value` (u32 matches ranges by mask only). */
export function cidrValueMask(cidr: string): [value: number, mask: number] {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)(?:\/(\d+))?$/.exec(cidr);
  const octets = m?.slice(1, 5).map(Number);
  const len = m?.[5] === undefined ? 32 : Number(m[5]);
  if (m === null || octets!.some((o) => o > 255) || len > 32) {
    throw new Error(`not an IPv4 CIDR: ${cidr}`);
  }
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const addr = octets!.reduce((a, o) => a * 256 + o, 0);
  return [(addr & mask) >>> 0, mask];
}

function bang(not: boolean): string {
  return not ? '! ' : '';
}

/** Double quotes for iptables-restore: the value must hold no quote or newline. */
export function quote(text: string): string {
  if (/["\n\\]/.test(text)) throw new Error(`cannot quote ${JSON.stringify(text)} for iptables`);
  return `"${text}"`;
}

function spellMatch(m: Match, protoOfRule: number | undefined): string {
  switch (m.k) {
    case 'iface':
      return `${m.dir === 'in' ? '-i' : '-o'} ${m.name}`;
    case 'proto':
      return `${bang(m.not)}-p ${protoName(m.proto)}`;
    case 'icmp':
      return `-m icmp ${bang(m.not)}--icmp-type ${m.type}${m.code === undefined ? '' : `/${m.code}`}`;
    case 'addr':
      return `${bang(m.not)}${m.dir === 'src' ? '-s' : '-d'} ${m.cidr}`;
    case 'set':
      return `-m set ${bang(m.not)}--match-set ${m.name} ${m.flags}`;
    case 'multiport': {
      if (protoOfRule === undefined) throw new Error('multiport needs a protocol match first');
      const ports = m.ranges.map(([lo, hi]) => (lo === hi ? `${lo}` : `${lo}:${hi}`)).join(',');
      return `-m multiport ${bang(m.not)}--${m.side === 'src' ? 's' : 'd'}ports ${ports}`;
    }
    case 'mark':
      return `-m mark --mark ${hex(m.value)}/${hex(m.mask)}`;
    case 'ctstate':
      return `-m conntrack --ctstate ${m.states.join(',')}`;
    case 'vxlan-inner-src': {
      const [value, mask] = cidrValueMask(m.cidr);
      return `-m u32 --u32 ${quote(`0>>22&0x3C@${VXLAN_INNER_SRC_OFFSET}&${hex(mask)}=${hex(value)}`)}`;
    }
  }
}

function spellTarget(t: Target): string {
  switch (t.k) {
    case 'ACCEPT':
    case 'DROP':
    case 'RETURN':
      return `-j ${t.k}`;
    case 'jump':
      return `-j ${t.chain}`;
    case 'goto':
      return `-g ${t.chain}`;
    case 'set-mark':
      return `-j MARK --set-xmark ${hex(t.value)}/${hex(t.mask)}`;
    case 'log':
      return `-j LOG --log-prefix ${quote(t.prefix)} --log-level 5`;
  }
}

/** The rule's matches and target as iptables-restore reads them (no comment). */
export function spellRule(rule: IptRule): string {
  const proto = rule.matches.find((m) => m.k === 'proto' && !m.not) as
    { proto: number } | undefined;
  const parts = rule.matches.map((m) => spellMatch(m, proto?.proto));
  parts.push(spellTarget(rule.target));
  return parts.join(' ');
}

/**
 * The rule after `-A <chain> `, with its hash first in the comment as Felix does
 * (`tortie:<hash>`, then the human note): reading iptables-save back, the hashes say
 * which chains already hold what would be written.
 */
export function spellLine(rule: IptRule, hash: string): string {
  const note = rule.comment === undefined ? `tortie:${hash}` : `tortie:${hash} ${rule.comment}`;
  return `-m comment --comment ${quote(note)} ${spellRule(rule)}`;
}

/**
 * VXLAN anti-spoofing across nodes in the iptables dataplane (tortie-vxlan-in): the u32
 * spelling of the inner-source match, the rules for a sample of nodes and blocks (a /32
 * borrowed from a block is refused to the block's owner), and, for random clusters, the
 * chain's verdict against the routes' longest-prefix owner of the inner source.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { desiredRoutes, vxlanInnerSources, type RouteInputs } from '../../src/agent/routes.js';
import {
  CHAIN_VXLAN_IN,
  render,
  spellRule,
  vxlanInnerSourceRules,
  type IptRule,
} from '../../src/iptables/index.js';
import { cidrValueMask } from '../../src/iptables/rules.js';
import { cidrContains, parseIp, tryParseCidr } from '../../src/ipam/ipv4.js';
import { EMPTY, inputs } from '../helpers/vxlan-world.js';

/** The chain's verdict for a packet from `outer` with inner source `inner`. */
function verdict(rules: readonly IptRule[], outer: string, inner: string): string {
  const o = parseIp(outer);
  const i = parseIp(inner);
  for (const r of rules) {
    const hit = r.matches.every((m) => {
      if (m.k === 'addr')
        return !m.not && m.dir === 'src' && cidrContains(tryParseCidr(m.cidr)!, o);
      if (m.k === 'vxlan-inner-src') {
        const [value, mask] = cidrValueMask(m.cidr);
        return (i & mask) >>> 0 === value;
      }
      throw new Error(`unexpected match ${m.k}`);
    });
    if (hit) return r.target.k;
  }
  return 'RETURN';
}

describe('tortie-vxlan-in', () => {
  it('spells a CIDR as u32 mask and value at the inner source (outer IHL, then 42)', () => {
    expect(cidrValueMask('10.88.1.64/26')).toEqual([0x0a580140, 0xffffffc0]);
    expect(cidrValueMask('192.0.2.2/32')).toEqual([0xc0000202, 0xffffffff]);
    expect(cidrValueMask('0.0.0.0/0')).toEqual([0, 0]);
    expect(
      spellRule({
        matches: [{ k: 'vxlan-inner-src', cidr: '10.88.1.64/26' }],
        target: { k: 'DROP' },
      }),
    ).toBe('-m u32 --u32 "0>>22&0x3C@42&0xffffffc0=0xa580140" -j DROP');
  });

  it('binds each node to its blocks, its borrowed /32s and its own address', () => {
    const peers = vxlanInnerSources(inputs);
    expect(peers).toEqual([
      { source: '192.0.2.2', cidrs: ['192.0.2.2/32', '10.88.0.64/26'] },
      { source: '192.0.2.3', cidrs: ['192.0.2.3/32', '10.88.0.70/32', '10.88.0.128/26'] },
    ]);
    const rs = render(EMPTY, [], {
      vxlanSources: ['192.0.2.2', '192.0.2.3'],
      vxlanInnerSources: peers,
    });
    expect(rs.chains.get('tortie-INPUT')!.map(spellRule).slice(0, 2)).toEqual([
      '-p udp -m multiport --dports 4789 -m set ! --match-set tortie-v-vxlan-nodes src -j DROP',
      '-p udp -m multiport --dports 4789 -j tortie-vxlan-in',
    ]);
    expect(rs.chains.get(CHAIN_VXLAN_IN)!.map(spellRule)).toEqual([
      // n2: the /32 borrowed by n3 from n2's block is refused before the block is accepted.
      '-s 192.0.2.2/32 -m u32 --u32 "0>>22&0x3C@42&0xffffffff=0xa580046" -j DROP',
      '-s 192.0.2.2/32 -m u32 --u32 "0>>22&0x3C@42&0xffffffff=0xc0000202" -j RETURN',
      '-s 192.0.2.2/32 -m u32 --u32 "0>>22&0x3C@42&0xffffffc0=0xa580040" -j RETURN',
      '-s 192.0.2.3/32 -m u32 --u32 "0>>22&0x3C@42&0xffffffff=0xa580046" -j RETURN',
      '-s 192.0.2.3/32 -m u32 --u32 "0>>22&0x3C@42&0xffffffff=0xc0000203" -j RETURN',
      '-s 192.0.2.3/32 -m u32 --u32 "0>>22&0x3C@42&0xffffffc0=0xa580080" -j RETURN',
      '-j DROP',
    ]);
    const rules = rs.chains.get(CHAIN_VXLAN_IN)!;
    expect(verdict(rules, '192.0.2.2', '10.88.0.65')).toBe('RETURN');
    expect(verdict(rules, '192.0.2.2', '10.88.0.70')).toBe('DROP'); // n3's borrowed address
    expect(verdict(rules, '192.0.2.3', '10.88.0.70')).toBe('RETURN');
    expect(verdict(rules, '192.0.2.3', '10.88.0.65')).toBe('DROP');
    expect(verdict(rules, '192.0.2.2', '10.88.0.5')).toBe('DROP'); // this node's own block
    expect(verdict(rules, '192.0.2.2', '192.0.2.3')).toBe('DROP');
    expect(verdict(rules, '192.0.2.2', '192.0.2.2')).toBe('RETURN');
    expect(verdict(rules, '192.0.2.9', '10.88.0.65')).toBe('DROP');
  });

  it('no chain and no jump without vxlanInnerSources', () => {
    const rs = render(EMPTY, [], {
      vxlanSources: ['192.0.2.2'],
    });
    expect(rs.chains.has(CHAIN_VXLAN_IN)).toBe(false);
    expect(rs.chains.get('tortie-INPUT')!.map(spellRule).join('\n')).not.toContain('vxlan-in');
  });

  it('accepts exactly the inner sources whose longest-prefix route is the sender (random)', () => {
    const nodeNames = ['n1', 'n2', 'n3', 'n4'];
    const arb = fc.record({
      affinities: fc.array(fc.constantFrom(...nodeNames, null), { minLength: 4, maxLength: 4 }),
      borrows: fc.array(
        fc.record({ block: fc.nat(3), ordinal: fc.nat(63), node: fc.constantFrom(...nodeNames) }),
        { maxLength: 8 },
      ),
      probes: fc.array(
        fc.record({ outer: fc.nat(3), inner: fc.oneof(fc.nat(255), fc.constant(-1)) }),
        { minLength: 20, maxLength: 40 },
      ),
    });
    fc.assert(
      fc.property(arb, ({ affinities, borrows, probes }) => {
        const ri: RouteInputs = {
          self: 'n1',
          nodes: nodeNames.map((n, k) => ({
            name: n,
            address: `192.0.2.${k + 1}/24`,
            alive: true,
          })),
          blocks: affinities.map((aff, k) => ({
            cidr: `10.88.0.${k * 64}/26`,
            affinity: aff,
            allocations: borrows
              .filter((b) => b.block === k)
              .map((b) => ({ ip: `10.88.0.${k * 64 + b.ordinal}`, node: b.node })),
          })),
          pools: [{ cidr: '10.88.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }],
        };
        const rules = vxlanInnerSourceRules(vxlanInnerSources(ri));
        const routes = desiredRoutes(ri);
        for (const p of probes) {
          const outer = `192.0.2.${p.outer + 1}`;
          const inner = p.inner < 0 ? `192.0.2.${(p.outer % 4) + 1}` : `10.88.0.${p.inner}`;
          const i = parseIp(inner);
          const best = routes
            .filter((r) => cidrContains(tryParseCidr(r.cidr)!, i))
            .sort(
              (x, y) => tryParseCidr(y.cidr)!.prefixLength - tryParseCidr(x.cidr)!.prefixLength,
            )[0];
          const ok = outer !== '192.0.2.1' && (inner === outer || best?.nextHop === outer);
          expect(verdict(rules, outer, inner), `${outer} carrying ${inner}`).toBe(
            ok ? 'RETURN' : 'DROP',
          );
        }
      }),
      { numRuns: 300, seed: 4789 },
    );
  });
});

/**
 * The iptables renderer and the restore planner: chain layout, marks for tiers and Pass,
 * ipset names and contents, multiport splitting, named ports, anti-spoofing, and a plan
 * that writes only the chains that changed.
 */
import { describe, expect, it } from 'vitest';
import type { Endpoint, Policy, Rule, World } from '../../src/policy/model.js';
import { namespaceProfile } from '../../src/policy/resources.js';
import {
  EMPTY_STATE,
  endpointChainName,
  intervalsToCidrs,
  IptablesUnsupportedError,
  multiportChunks,
  parseIpsetSave,
  parseIptablesSave,
  plan,
  policyChainName,
  profileChainName,
  render,
  spellRule,
  type IptablesEndpoint,
  type Ruleset,
} from '../../src/iptables/index.js';

const a: Endpoint = {
  key: 'x/a',
  namespace: 'x',
  name: 'a',
  ip: '10.66.0.10',
  labels: { app: 'web' },
  profiles: ['kns.x'],
  ports: [{ name: 'http', protocol: 6, port: 8080 }],
};
const b: Endpoint = {
  ...a,
  key: 'x/b',
  name: 'b',
  ip: '10.66.0.11',
  labels: { app: 'db' },
  ports: [],
};
const c: Endpoint = {
  ...a,
  key: 'y/c',
  namespace: 'y',
  name: 'c',
  ip: '10.66.0.12',
  profiles: ['kns.y'],
  labels: { app: 'web' },
  ports: [{ name: 'http', protocol: 6, port: 80 }],
};
const locals: IptablesEndpoint[] = [
  { iface: 'tora', endpoint: a },
  { iface: 'torb', endpoint: b },
];

const allow = (over: Partial<Rule> = {}): Rule => ({
  action: 'Allow',
  source: {},
  destination: {},
  ...over,
});

function world(policies: Policy[], extra: Partial<World> = {}): World {
  return {
    endpoints: [a, b, c],
    namespaces: [
      { name: 'x', labels: { team: 'x' } },
      { name: 'y', labels: { team: 'y' } },
    ],
    networkSets: [],
    tiers: [{ name: 'security', order: 10, defaultAction: 'Deny' }],
    policies,
    profiles: [namespaceProfile('x'), namespaceProfile('y')],
    ...extra,
  };
}

const security: Policy = {
  name: 'sec',
  tier: 'security',
  order: 1,
  selector: 'all()',
  types: ['Ingress'],
  ingress: [
    { action: 'Deny', protocol: 6, source: { nets: ['192.168.0.0/16'] }, destination: {} },
    { action: 'Pass', source: { selector: 'app == "web"' }, destination: {} },
  ],
  egress: [],
};
const webIngress: Policy = {
  name: 'web',
  namespace: 'x',
  tier: 'default',
  order: 100,
  selector: 'app == "web"',
  types: ['Ingress'],
  ingress: [
    allow({ protocol: 6, destination: { ports: [{ kind: 'named', name: 'http' }] } }),
    { action: 'Log', source: {}, destination: {} },
  ],
  egress: [],
};

function spelled(rs: Ruleset, chain: string): string[] {
  const rules = rs.chains.get(chain);
  if (rules === undefined) throw new Error(`no chain ${chain}`);
  return rules.map(spellRule);
}

describe('iptables renderer', () => {
  const rs = render(world([security, webIngress]), locals);

  it('hooks FORWARD and INPUT and dispatches by interface with goto', () => {
    expect(rs.hooks).toEqual([
      { builtin: 'FORWARD', chain: 'tortie-FORWARD' },
      { builtin: 'INPUT', chain: 'tortie-INPUT' },
    ]);
    expect(spelled(rs, 'tortie-FORWARD')).toEqual([
      '-j MARK --set-xmark 0x0/0x70000',
      '-i tor+ -j tortie-from-wl-dispatch',
      '-o tor+ -j tortie-to-wl-dispatch',
      '-m mark --mark 0x10000/0x10000 -j ACCEPT',
    ]);
    expect(spelled(rs, 'tortie-to-wl-dispatch')).toEqual([
      '-o tora -g tortie-tw-tora',
      '-o torb -g tortie-tw-torb',
      '-j DROP',
    ]);
    expect(spelled(rs, 'tortie-from-wl-dispatch')[0]).toBe('-i tora -g tortie-fw-tora');
  });

  it("sends a pod's traffic to the node through its egress policy, then the endpoint-to-host action; loopback never", () => {
    expect(spelled(rs, 'tortie-INPUT')).toEqual([
      '-j MARK --set-xmark 0x0/0x70000',
      '-i tor+ -g tortie-wl-to-host',
    ]);
    const wlToHost = (action?: 'Drop' | 'Accept' | 'Return') =>
      spelled(
        render(world([security, webIngress]), locals, action ? { endpointToHost: action } : {}),
        'tortie-wl-to-host',
      );
    expect(wlToHost()).toEqual(['-d 127.0.0.0/8 -j DROP', '-j tortie-from-wl-dispatch', '-j DROP']);
    expect(wlToHost('Drop')).toEqual(wlToHost());
    expect(wlToHost('Accept')[2]).toBe('-j ACCEPT');
    expect(wlToHost('Return')[2]).toBe('-j RETURN');
  });

  it('lays out an endpoint chain as Felix does: conntrack, tiers with the pass mark, profiles, drop', () => {
    const pi = policyChainName('security', security, 'ingress');
    const web = policyChainName('default', webIngress, 'ingress');
    const pri = profileChainName('kns.x', 'ingress');
    expect(spelled(rs, endpointChainName('tora', 'ingress'))).toEqual([
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-m conntrack --ctstate INVALID -j DROP',
      '-j MARK --set-xmark 0x0/0x70000',
      '-j MARK --set-xmark 0x0/0x20000',
      `-m mark --mark 0x0/0x20000 -j ${pi}`,
      '-m mark --mark 0x10000/0x10000 -j RETURN',
      '-m mark --mark 0x0/0x20000 -j DROP',
      '-j MARK --set-xmark 0x0/0x20000',
      `-m mark --mark 0x0/0x20000 -j ${web}`,
      '-m mark --mark 0x10000/0x10000 -j RETURN',
      '-m mark --mark 0x0/0x20000 -j DROP',
      `-j ${pri}`,
      '-m mark --mark 0x10000/0x10000 -j RETURN',
      '-j DROP',
    ]);
    // b is not web: the default-tier policy does not apply to it.
    expect(spelled(rs, endpointChainName('torb', 'ingress')).join('\n')).not.toContain(web);
    for (const name of rs.chains.keys()) expect(name.length).toBeLessThanOrEqual(28);
  });

  it('marks Pass and Allow and returns; Deny drops; Log logs and goes on', () => {
    const pi = spelled(rs, policyChainName('security', security, 'ingress'));
    expect(pi[0]).toBe('-p tcp -s 192.168.0.0/16 -j DROP');
    expect(pi[1]).toMatch(
      /^-m set --match-set tortie-s-[0-9a-f]{16} src -j MARK --set-xmark 0x20000\/0x20000$/,
    );
    expect(pi[2]).toBe('-m mark --mark 0x20000/0x20000 -j RETURN');
    const web = spelled(rs, policyChainName('default', webIngress, 'ingress'));
    expect(web[1]).toBe('-m mark --mark 0x10000/0x10000 -j RETURN');
    expect(web[2]).toMatch(/^-j LOG --log-prefix "tortie [^"]*: " --log-level 5$/);
    // In a profile, Pass drops.
    const prof = render(
      world([], {
        profiles: [
          { name: 'kns.x', ingress: [{ action: 'Pass', source: {}, destination: {} }], egress: [] },
        ],
      }),
      locals,
    );
    expect(spelled(prof, profileChainName('kns.x', 'ingress'))).toEqual(['-j DROP']);
  });

  it('puts selector-matched addresses in a hash:net set named by the selector and its scope', () => {
    const setRule = rs.chains.get(policyChainName('security', security, 'ingress'))![1]!;
    const m = setRule.matches[0]!;
    expect(m.k).toBe('set');
    const name = (m as { name: string }).name;
    expect(name.length).toBeLessThanOrEqual(31);
    // A global policy sees every endpoint: a (x) and c (y) are web.
    expect(rs.sets.get(name)).toEqual({
      name,
      type: 'hash:net',
      members: ['10.66.0.10', '10.66.0.12'],
    });
    // The same selector rendered again names the same set; its content follows the world.
    const again = render(world([security, webIngress], { endpoints: [a, b] }), locals);
    expect(again.sets.get(name)!.members).toEqual(['10.66.0.10']);
  });

  it('resolves named ports on the destination endpoint through a hash:ip,port set', () => {
    const web = rs.chains.get(policyChainName('default', webIngress, 'ingress'))!;
    expect(spellRule(web[0]!)).toMatch(
      /^-p tcp -m set --match-set tortie-p-[0-9a-f]{16} dst,dst -j MARK --set-xmark 0x10000\/0x10000$/,
    );
    const name = (web[0]!.matches[1] as { name: string }).name;
    expect(rs.sets.get(name)).toEqual({
      name,
      type: 'hash:ip,port',
      members: ['10.66.0.10,tcp:8080', '10.66.0.12,tcp:80'],
    });
  });

  it('drops spoofed sources first in the from-workload chain', () => {
    expect(spelled(rs, endpointChainName('tora', 'egress'))[0]).toBe('! -s 10.66.0.10/32 -j DROP');
  });

  it("drops a pod's VXLAN and IPIP right after anti-spoofing, before conntrack, unless allowed", () => {
    expect(spelled(rs, endpointChainName('tora', 'egress')).slice(1, 4)).toEqual([
      '-p udp -m multiport --dports 4789 -j DROP',
      '-p 4 -j DROP',
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    ]);
    const open = render(world([security, webIngress]), locals, {
      allowIPIPPacketsFromWorkloads: true,
      allowVXLANPacketsFromWorkloads: true,
    });
    expect(spelled(open, endpointChainName('tora', 'egress'))[1]).toBe(
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    );
    const port = render(world([security, webIngress]), locals, {
      allowIPIPPacketsFromWorkloads: true,
      vxlanPort: 8472,
    });
    expect(spelled(port, endpointChainName('tora', 'egress'))[1]).toBe(
      '-p udp -m multiport --dports 8472 -j DROP',
    );
    // Ingress chains have no such rule: a pod may receive whatever policy allows.
    expect(spelled(rs, endpointChainName('tora', 'ingress'))[0]).toBe(
      '-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    );
  });

  it('accepts VXLAN only from the nodes in tortie-v-vxlan-nodes when given the sources', () => {
    expect(spelled(rs, 'tortie-INPUT')[0]).not.toContain('4789');
    const withNodes = render(world([security, webIngress]), locals, {
      vxlanSources: ['192.0.2.12', '192.0.2.2'],
    });
    expect(spelled(withNodes, 'tortie-INPUT')[0]).toBe(
      '-p udp -m multiport --dports 4789 -m set ! --match-set tortie-v-vxlan-nodes src -j DROP',
    );
    expect(withNodes.sets.get('tortie-v-vxlan-nodes')).toEqual({
      name: 'tortie-v-vxlan-nodes',
      type: 'hash:net',
      members: ['192.0.2.2', '192.0.2.12'],
    });
  });

  it('splits more than 15 ports into several multiport rules (a range counts two)', () => {
    const ports = Array.from({ length: 20 }, (_, i) => ({
      kind: 'range' as const,
      from: 1000 + 2 * i,
      to: 1000 + 2 * i,
    }));
    const p: Policy = { ...webIngress, ingress: [allow({ protocol: 17, destination: { ports } })] };
    const r = spelled(render(world([p]), locals), policyChainName('default', p, 'ingress'));
    expect(r).toHaveLength(3);
    expect(r[0]).toMatch(/^-p udp -m multiport --dports 1000,1002,.*,1028 -j MARK/);
    expect(r[0]!.split('--dports ')[1]!.split(' ')[0]!.split(',')).toHaveLength(15);
    expect(r[1]!.split('--dports ')[1]!.split(' ')[0]!.split(',')).toHaveLength(5);
    expect(
      multiportChunks([
        [1, 5],
        [7, 7],
        [9, 12],
        [14, 20],
        [22, 30],
        [40, 50],
        [60, 70],
        [80, 90],
        [99, 99],
      ]).map((c) => c.length),
    ).toEqual([8, 1]);
    // notPorts: every chunk must miss, in one rule.
    const n: Policy = {
      ...webIngress,
      ingress: [allow({ protocol: 6, destination: { notPorts: ports } })],
    };
    const nr = spelled(render(world([n]), locals), policyChainName('default', n, 'ingress'));
    expect(nr[0]!.match(/! --dports/g)).toHaveLength(2);
  });

  it('uses a CIDR set for several nets and notNets, and a local-side set for the local fields', () => {
    const p: Policy = {
      ...webIngress,
      ingress: [
        allow({
          source: { nets: ['10.0.0.0/8', '172.16.0.0/12'], notNets: ['10.1.0.0/16'] },
          destination: { selector: 'app == "web"' },
        }),
      ],
    };
    const r = render(world([p]), locals);
    const rule = r.chains.get(policyChainName('default', p, 'ingress'))![0]!;
    const sets = rule.matches
      .map((m) => (m.k === 'set' ? m : undefined))
      .filter((m) => m !== undefined);
    expect(sets.map((s) => [s.name.slice(0, 9), s.not, s.flags])).toEqual([
      ['tortie-n-', false, 'src'],
      ['tortie-n-', true, 'src'],
      ['tortie-l-', false, 'dst'],
    ]);
    expect(r.sets.get(sets[0]!.name)!.members).toEqual(['10.0.0.0/8', '172.16.0.0/12']);
    expect(r.sets.get(sets[2]!.name)!.members).toEqual(['10.66.0.10']);
    expect(intervalsToCidrs([[0, 2 ** 32 - 1]])).toEqual(['0.0.0.0/0']);
    expect(intervalsToCidrs([[10, 17]])).toEqual(['0.0.0.10/31', '0.0.0.12/30', '0.0.0.16/31']);
  });

  it('refuses what iptables cannot write instead of writing something else', () => {
    const bad: Policy = {
      ...webIngress,
      ingress: [allow({ icmp: { type: 8 }, source: {}, destination: {} })],
    };
    expect(() => render(world([bad]), locals)).toThrow(IptablesUnsupportedError);
    const ports: Policy = {
      ...webIngress,
      ingress: [allow({ destination: { ports: [{ kind: 'range', from: 80, to: 80 }] } })],
    };
    expect(() => render(world([ports]), locals)).toThrow(/need protocol/);
  });
});

describe('restore plan', () => {
  it('writes everything at first, nothing when nothing changed, and only changed chains after an edit', () => {
    const w1 = world([security, webIngress]);
    const first = plan(render(w1, locals), EMPTY_STATE);
    expect(first.iptables).toContain('-I FORWARD 1 -j tortie-FORWARD');
    expect(first.iptables).toMatch(/^\*filter\n:tortie-/);
    expect(first.ipsetBefore).toMatch(/^create tortie-/m);
    expect(plan(render(w1, locals), first.next).iptables).toBe('');

    const edited: Policy = { ...webIngress, ingress: [webIngress.ingress[0]!] };
    const second = plan(render(world([security, edited]), locals), first.next);
    expect(second.writtenChains).toEqual([policyChainName('default', edited, 'ingress')]);
    expect(second.iptables).not.toContain('-I FORWARD');
    expect(second.ipsetBefore).toBe('');

    // b joins the web selector: only sets change (swapped in), no chain is written but b's.
    const b2 = { ...b, labels: { app: 'web' } };
    const third = plan(
      render(world([security, edited], { endpoints: [a, b2, c] }), [
        locals[0]!,
        { iface: 'torb', endpoint: b2 },
      ]),
      second.next,
    );
    expect(third.writtenChains).toEqual([endpointChainName('torb', 'ingress')]);
    expect(third.ipsetBefore).toMatch(/swap tortie-ts-[0-9a-f]{16} tortie-s-[0-9a-f]{16}/);

    // Removing the policies removes their chains, in the same transaction.
    const fourth = plan(render(world([]), locals), third.next);
    expect(fourth.deletedChains).toHaveLength(2);
    expect(fourth.iptables).toMatch(/-X tortie-pi-/);
    expect(fourth.ipsetAfter).toMatch(/^destroy tortie-/);
  });

  it('adopts what iptables-save and ipset save show', () => {
    const rs = render(world([security]), locals);
    const p = plan(rs, EMPTY_STATE);
    // What the kernel would print back: the restore lines, with a header and counters.
    const saved = [
      '# Generated by iptables-nft-save',
      '*filter',
      ':INPUT ACCEPT [0:0]',
      ':FORWARD ACCEPT [0:0]',
      '-A FORWARD -j tortie-FORWARD',
      '-A INPUT -j tortie-INPUT',
      ...p.iptables.split('\n').filter((l) => l.startsWith(':tortie') || l.startsWith('-A')),
      'COMMIT',
    ].join('\n');
    const adopted = parseIptablesSave(saved);
    const sets = parseIpsetSave(
      p.ipsetBefore.replace(
        /^create (\S+) (\S+) .*$/gm,
        'create $1 $2 family inet hashsize 1024 maxelem 65536',
      ),
    );
    const again = plan(rs, { ...adopted, sets });
    expect(again.iptables).toBe('');
    expect(again.ipsetBefore).toBe('');
  });
});

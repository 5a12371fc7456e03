/**
 * The uplink's XDP deny list from doNotTrack policy (src/policy/xdp.ts): which rules are
 * dropped in XDP, which stop the walk, and the prefixes they give. Policies are written
 * as Calico YAML and parsed by the real resource schemas.
 */
import { describe, expect, it } from 'vitest';

import type { Policy, Tier } from '../../src/policy/model.js';
import { parseResource } from '../../src/policy/resources.js';
import {
  compileXdpDenyList,
  uplinkHostEndpoint,
  xdpRuleId,
  type XdpHostEndpoint,
  type XdpInputs,
} from '../../src/policy/xdp.js';

const NODE = 'node-a';
const HEP: XdpHostEndpoint = {
  name: 'node-a-eth0',
  node: NODE,
  interfaceName: 'eth0',
  expectedIPs: ['192.168.1.10'],
  labels: { role: 'edge' },
};

function gnp(name: string, spec: Record<string, unknown>): Policy {
  const r = parseResource({
    apiVersion: 'projectcalico.org/v3',
    kind: 'GlobalNetworkPolicy',
    metadata: { name },
    spec: { doNotTrack: true, applyOnForward: true, selector: 'role == "edge"', ...spec },
  });
  if (r.kind !== 'GlobalNetworkPolicy') throw new Error('not a GlobalNetworkPolicy');
  return r.policy;
}

function inputs(untracked: Policy[], more: Partial<XdpInputs> = {}): XdpInputs {
  return {
    node: NODE,
    uplink: { name: 'eth0', ip: '192.168.1.10' },
    hostEndpoints: [HEP],
    untracked,
    tiers: [] as Tier[],
    networkSets: [],
    endpoints: [],
    ...more,
  };
}

const denyFrom = (...nets: string[]) => ({ action: 'Deny', source: { nets } });

describe('XDP deny list: which rules', () => {
  it('takes a doNotTrack Deny on source nets, one entry per prefix, host bits masked', () => {
    const list = compileXdpDenyList(
      inputs([gnp('shed', { order: 10, ingress: [denyFrom('198.51.100.0/24', '203.0.113.7')] })]),
    );
    expect(list.hostEndpoint).toBe('node-a-eth0');
    expect(list.rules).toEqual(['policy/default/shed/ingress/0']);
    expect([...list.entries]).toEqual([
      ['198.51.100.0/24', xdpRuleId(0)],
      ['203.0.113.7/32', xdpRuleId(0)],
    ]);
    expect(list.stoppedAt).toBeUndefined();
  });

  it('uses the nets of the GlobalNetworkSets a source selector selects', () => {
    const list = compileXdpDenyList(
      inputs(
        [gnp('shed', { ingress: [{ action: 'Deny', source: { selector: 'blocklist == "x"' } }] })],
        {
          networkSets: [
            { name: 'bad', labels: { blocklist: 'x' }, nets: ['10.66.0.0/16', '10.67.1.0/24'] },
            { name: 'good', labels: { blocklist: 'y' }, nets: ['10.99.0.0/16'] },
          ],
        },
      ),
    );
    expect([...list.entries.keys()].sort()).toEqual(['10.66.0.0/16', '10.67.1.0/24']);
  });

  it('with both nets and a selector, takes the prefixes in both', () => {
    const list = compileXdpDenyList(
      inputs(
        [
          gnp('shed', {
            ingress: [{ action: 'Deny', source: { nets: ['10.66.0.0/16'], selector: 'b == "x"' } }],
          }),
        ],
        {
          networkSets: [
            { name: 's', labels: { b: 'x' }, nets: ['10.0.0.0/8', '10.67.0.0/16', '10.66.5.0/24'] },
          ],
        },
      ),
    );
    expect([...list.entries.keys()].sort()).toEqual(['10.66.0.0/16', '10.66.5.0/24']);
  });

  it('walks policies in order and stops at the first rule XDP cannot decide', () => {
    const list = compileXdpDenyList(
      inputs([
        gnp('b-second', { order: 20, ingress: [denyFrom('10.2.0.0/16')] }),
        gnp('a-first', {
          order: 10,
          ingress: [
            denyFrom('10.1.0.0/16'),
            { action: 'Allow', source: { nets: ['10.2.3.0/24'] } },
            denyFrom('10.3.0.0/16'),
          ],
        }),
      ]),
    );
    // The Allow of 10.2.3.0/24 comes before b-second's Deny of 10.2.0.0/16: neither that
    // Deny nor anything after the Allow may be dropped in XDP.
    expect(list.rules).toEqual(['policy/default/a-first/ingress/0']);
    expect([...list.entries.keys()]).toEqual(['10.1.0.0/16']);
    expect(list.stoppedAt).toEqual({
      rule: 'policy/default/a-first/ingress/1',
      reason: 'action Allow: only Deny rules are dropped in XDP',
    });
  });

  it.each([
    ['a protocol', { action: 'Deny', protocol: 'TCP', source: { nets: ['10.0.0.0/8'] } }],
    [
      'source ports',
      { action: 'Deny', protocol: 'TCP', source: { nets: ['10.0.0.0/8'], ports: [22] } },
    ],
    [
      'a destination match',
      {
        action: 'Deny',
        source: { nets: ['10.0.0.0/8'] },
        destination: { nets: ['192.168.1.10/32'] },
      },
    ],
    ['source notNets', { action: 'Deny', source: { notNets: ['10.0.0.0/8'] } }],
    ['no source at all', { action: 'Deny' }],
  ])('leaves a Deny with %s to the host endpoint policy', (_what, rule) => {
    const list = compileXdpDenyList(
      inputs([gnp('p', { ingress: [rule, denyFrom('10.9.0.0/16')] })]),
    );
    expect(list.rules).toEqual([]);
    expect(list.entries.size).toBe(0);
    expect(list.stoppedAt?.rule).toBe('policy/default/p/ingress/0');
  });

  it('orders tiers before policies, and keeps a prefix for the first rule naming it', () => {
    const tiers: Tier[] = [{ name: 'edge', order: 1, defaultAction: 'Deny' }];
    const list = compileXdpDenyList(
      inputs(
        [
          gnp('late', { order: 1, ingress: [denyFrom('10.1.0.0/16')] }),
          gnp('edge.early', {
            tier: 'edge',
            order: 100,
            ingress: [denyFrom('10.1.0.0/16', '10.5.0.0/16')],
          }),
        ],
        { tiers },
      ),
    );
    expect(list.rules).toEqual([
      'policy/edge/edge.early/ingress/0',
      'policy/default/late/ingress/0',
    ]);
    expect(list.entries.get('10.1.0.0/16')).toBe(xdpRuleId(0));
  });

  it('ignores policies that do not select the host endpoint, and egress-only ones', () => {
    const list = compileXdpDenyList(
      inputs([
        gnp('other', { selector: 'role == "db"', ingress: [denyFrom('10.1.0.0/16')] }),
        gnp('out', {
          types: ['Egress'],
          egress: [{ action: 'Deny', destination: { nets: ['10.2.0.0/16'] } }],
        }),
      ]),
    );
    expect(list.entries.size).toBe(0);
    expect(list.stoppedAt).toBeUndefined();
  });

  it('is empty without a host endpoint for the uplink', () => {
    const list = compileXdpDenyList(
      inputs([gnp('shed', { ingress: [denyFrom('10.1.0.0/16')] })], {
        hostEndpoints: [{ ...HEP, node: 'node-b' }],
      }),
    );
    expect(list).toEqual({
      hostEndpoint: undefined,
      rules: [],
      entries: new Map(),
      stoppedAt: undefined,
    });
  });
});

describe('XDP deny list: the uplink host endpoint', () => {
  const wildcard: XdpHostEndpoint = { ...HEP, name: 'all', interfaceName: '*' };
  const byIp: XdpHostEndpoint = {
    name: 'by-ip',
    node: NODE,
    expectedIPs: ['192.168.1.10'],
    labels: {},
  };

  it('prefers the one named for the interface, then by expected IP, then the wildcard', () => {
    expect(uplinkHostEndpoint(inputs([], { hostEndpoints: [wildcard, byIp, HEP] }))?.name).toBe(
      'node-a-eth0',
    );
    expect(uplinkHostEndpoint(inputs([], { hostEndpoints: [wildcard, byIp] }))?.name).toBe('by-ip');
    expect(uplinkHostEndpoint(inputs([], { hostEndpoints: [wildcard] }))?.name).toBe('all');
    expect(
      uplinkHostEndpoint(inputs([], { hostEndpoints: [{ ...HEP, interfaceName: 'eth1' }] })),
    ).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import {
  desiredKernelRoutes,
  desiredRoutes,
  diffKernelRoutes,
  diffRoutes,
  parseKernelRoutes,
  knownNodeAddresses,
  type DesiredRoute,
  type RouteInputs,
} from '../../src/agent/routes.js';

const nodes: RouteInputs['nodes'] = [
  { name: 'n1', address: '192.168.1.1/24', alive: true },
  { name: 'n2', address: '192.168.1.2/24', alive: true },
  { name: 'n3', address: '192.168.2.3/24', alive: true },
];
const pool = (ipipMode: 'Always' | 'CrossSubnet' | 'Never' = 'Always') => ({
  cidr: '10.0.0.0/16',
  ipipMode,
  vxlanMode: 'Never' as const,
});
const block = (
  cidr: string,
  affinity: string | null,
  allocations: { ip: string; node: string }[] = [],
) => ({
  cidr,
  affinity,
  allocations,
});

function routes(partial: Partial<RouteInputs>): DesiredRoute[] {
  return desiredRoutes({ self: 'n1', nodes, blocks: [], pools: [pool()], ...partial });
}

describe('desired remote routes', () => {
  it("a block affine to another live node goes to that node's address; this node's own blocks need none", () => {
    expect(
      routes({
        blocks: [
          block('10.0.0.0/26', 'n1'),
          block('10.0.0.64/26', 'n2'),
          block('10.0.0.128/26', 'n3'),
        ],
      }),
    ).toEqual([
      { cidr: '10.0.0.64/26', node: 'n2', nextHop: '192.168.1.2', ipip: true, vxlan: false },
      { cidr: '10.0.0.128/26', node: 'n3', nextHop: '192.168.2.3', ipip: true, vxlan: false },
    ]);
  });

  it('a node that is not alive (heartbeat expired or Node deleted) has its routes withdrawn', () => {
    const blocks = [block('10.0.0.64/26', 'n2'), block('10.0.0.128/26', 'n3')];
    const down = nodes.map((n) => (n.name === 'n2' ? { ...n, alive: false } : n));
    expect(routes({ blocks, nodes: down }).map((r) => r.cidr)).toEqual(['10.0.0.128/26']);
    const deleted = nodes.filter((n) => n.name !== 'n3');
    expect(routes({ blocks, nodes: deleted }).map((r) => r.cidr)).toEqual(['10.0.0.64/26']);
  });

  it('a node without an underlay address gets no route', () => {
    const blocks = [block('10.0.0.64/26', 'n2')];
    expect(
      routes({
        blocks,
        nodes: nodes.map((n) => (n.name === 'n2' ? { ...n, address: undefined } : n)),
      }),
    ).toEqual([]);
  });

  it('an address borrowed from another block gets a /32 to the borrower; this node needs none for its own', () => {
    const blocks = [
      // n2's block, one address borrowed by n3 and one by this node (n1).
      block('10.0.0.64/26', 'n2', [
        { ip: '10.0.0.65', node: 'n2' },
        { ip: '10.0.0.66', node: 'n3' },
        { ip: '10.0.0.67', node: 'n1' },
      ]),
      // This node's block, one address borrowed by n2.
      block('10.0.0.0/26', 'n1', [{ ip: '10.0.0.5', node: 'n2' }]),
      // A block with no affinity: only its allocations are routed.
      block('10.0.1.0/26', null, [{ ip: '10.0.1.9', node: 'n3' }]),
    ];
    expect(routes({ blocks }).map((r) => `${r.cidr} ${r.node}`)).toEqual([
      '10.0.0.5/32 n2',
      '10.0.0.64/26 n2',
      '10.0.0.66/32 n3',
      '10.0.1.9/32 n3',
    ]);
  });

  it('encapsulation follows the pool: Always, Never, and CrossSubnet only across subnets', () => {
    const blocks = [block('10.0.0.64/26', 'n2'), block('10.0.0.128/26', 'n3')];
    const ipip = (mode: 'Always' | 'CrossSubnet' | 'Never') =>
      routes({ blocks, pools: [pool(mode)] }).map((r) => [r.node, r.ipip]);
    expect(ipip('Always')).toEqual([
      ['n2', true],
      ['n3', true],
    ]);
    expect(ipip('Never')).toEqual([
      ['n2', false],
      ['n3', false],
    ]);
    expect(ipip('CrossSubnet')).toEqual([
      ['n2', false],
      ['n3', true],
    ]);
    // A block outside every pool is routed plainly.
    expect(routes({ blocks, pools: [] }).every((r) => !r.ipip && !r.vxlan)).toBe(true);
  });

  it('CrossSubnet without a known address for this node encapsulates (it cannot tell)', () => {
    const blocks = [block('10.0.0.64/26', 'n2')];
    const selfless = nodes.map((n) => (n.name === 'n1' ? { ...n, address: undefined } : n));
    expect(routes({ blocks, nodes: selfless, pools: [pool('CrossSubnet')] })[0]!.ipip).toBe(true);
  });

  it('known nodes are the live others, by address', () => {
    expect(knownNodeAddresses({ self: 'n1', nodes })).toEqual(['192.168.1.2', '192.168.2.3']);
    expect(
      knownNodeAddresses({
        self: 'n1',
        nodes: nodes.map((n) => (n.name === 'n3' ? { ...n, alive: false } : n)),
      }),
    ).toEqual(['192.168.1.2']);
  });
});

describe('route diff', () => {
  const r = (cidr: string, nextHop: string, ipip = true): DesiredRoute => ({
    cidr,
    node: nextHop,
    nextHop,
    ipip,
    vxlan: false,
  });

  it('sets new and changed routes, removes the ones no longer wanted, leaves the rest', () => {
    const current = new Map([
      ['10.0.0.64/26', r('10.0.0.64/26', '192.168.1.2')],
      ['10.0.0.128/26', r('10.0.0.128/26', '192.168.2.3')],
      ['10.0.1.0/26', r('10.0.1.0/26', '192.168.2.3')],
    ]);
    const diff = diffRoutes(current, [
      r('10.0.0.64/26', '192.168.1.2'),
      r('10.0.0.128/26', '192.168.2.9'),
      r('10.0.1.0/26', '192.168.2.3', false),
      r('10.0.2.0/26', '192.168.1.2'),
    ]);
    expect(diff.set.map((x) => x.cidr)).toEqual(['10.0.0.128/26', '10.0.1.0/26', '10.0.2.0/26']);
    expect(diff.remove).toEqual([]);
    expect(diffRoutes(current, []).remove).toEqual([
      '10.0.0.64/26',
      '10.0.0.128/26',
      '10.0.1.0/26',
    ]);
  });
});

describe('kernel routes for remote blocks', () => {
  const want = (cidr: string, nextHop: string, ipip: boolean): DesiredRoute => ({
    cidr,
    node: 'n',
    nextHop,
    ipip,
    vxlan: false,
  });

  it('a plain route without MTU, an IPIP route with mtu 1480, out of the uplink', () => {
    expect(
      desiredKernelRoutes(
        [want('10.0.0.64/26', '192.168.1.2', false), want('10.0.0.128/26', '192.168.1.3', true)],
        'ul',
      ),
    ).toEqual([
      { cidr: '10.0.0.64/26', via: '192.168.1.2', dev: 'ul', mtu: undefined },
      { cidr: '10.0.0.128/26', via: '192.168.1.3', dev: 'ul', mtu: 1480 },
    ]);
  });

  it('reads `ip -j route show proto 177`, /32s included', () => {
    expect(
      parseKernelRoutes(
        '[{"dst":"10.9.0.0/26","gateway":"192.168.9.2","dev":"d0","flags":[],"metrics":[{"mtu":1480}]},' +
          '{"dst":"10.9.0.7","gateway":"192.168.9.3","dev":"d0","flags":[]}]\n',
      ),
    ).toEqual([
      { cidr: '10.9.0.0/26', via: '192.168.9.2', dev: 'd0', mtu: 1480 },
      { cidr: '10.9.0.7/32', via: '192.168.9.3', dev: 'd0', mtu: undefined },
    ]);
    expect(parseKernelRoutes('')).toEqual([]);
  });

  const k = (cidr: string, via: string, mtu?: number) => ({ cidr, via, dev: 'ul', mtu });

  it('adds missing routes, keeps equal ones, replaces moved ones, deletes withdrawn ones by proto', () => {
    expect(
      diffKernelRoutes(
        [
          k('10.0.0.64/26', '192.168.1.2'),
          k('10.0.0.128/26', '192.168.1.3'),
          k('10.0.1.0/26', '192.168.1.4'),
        ],
        [
          k('10.0.0.64/26', '192.168.1.2'),
          k('10.0.0.128/26', '192.168.1.4'),
          k('10.0.0.192/26', '192.168.1.2'),
        ],
      ),
    ).toEqual([
      'route replace 10.0.0.128/26 via 192.168.1.4 dev ul proto 177',
      'route replace 10.0.0.192/26 via 192.168.1.2 dev ul proto 177',
      'route del 10.0.1.0/26 proto 177',
    ]);
  });

  it('a mode change (MTU) or another uplink replaces the route; nothing to do gives no lines', () => {
    expect(
      diffKernelRoutes(
        [k('10.0.0.64/26', '192.168.1.2')],
        [k('10.0.0.64/26', '192.168.1.2', 1480)],
      ),
    ).toEqual(['route replace 10.0.0.64/26 via 192.168.1.2 dev ul proto 177 mtu 1480']);
    expect(
      diffKernelRoutes(
        [k('10.0.0.64/26', '192.168.1.2', 1480)],
        [{ ...k('10.0.0.64/26', '192.168.1.2', 1480), dev: 'eth1' }],
      ),
    ).toEqual(['route replace 10.0.0.64/26 via 192.168.1.2 dev eth1 proto 177 mtu 1480']);
    expect(
      diffKernelRoutes(
        [k('10.0.0.64/26', '192.168.1.2', 1480)],
        [k('10.0.0.64/26', '192.168.1.2', 1480)],
      ),
    ).toEqual([]);
    expect(diffKernelRoutes([], [])).toEqual([]);
  });

  it('when every node is gone, every tortie route is deleted (and only by its proto)', () => {
    expect(
      diffKernelRoutes([k('10.0.0.128/26', '192.168.1.3'), k('10.0.0.64/26', '192.168.1.2')], []),
    ).toEqual(['route del 10.0.0.64/26 proto 177', 'route del 10.0.0.128/26 proto 177']);
  });
});

/**
 * What the agent reads back under BGP routing: BIRD's `show protocols all` as sessions,
 * the kernel routes BIRD installed as route-map entries (learnedRoutes), and the
 * calicoctl-like sessions table of `tortie node status`.
 */
import { describe, expect, it } from 'vitest';
import { birdPaths, parseProtocols } from '../../src/bgp/bird.js';
import { learnedRoutes, parseKernelRoutes } from '../../src/agent/routes.js';
import { sessionTable } from '../../src/cli/node.js';

const SHOW_PROTOCOLS_ALL = `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     2026-11-22 05:51:40  

tortie_kernel Kernel     master4    up     2026-11-22 05:51:40  
  Channel ipv4
    State:          UP
    Table:          master4

Mesh_192_168_231_2 BGP        ---        up     2026-11-22 05:51:44  Established   
  BGP state:          Established
    Neighbor address: 192.168.231.2
    Neighbor AS:      64512
    Hold timer:       5.007/6
  Channel ipv4
    State:          UP

Mesh_192_168_231_3 BGP        ---        start  2026-11-22 05:51:29  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: 192.168.231.3
    Neighbor AS:      64512
    Connect delay:    0.895/5

Global_10_0_0_1_1790 BGP        ---        start  2026-11-22 05:51:29  Connect
  BGP state:          Connect
    Neighbor address: 10.0.0.1
    Neighbor port:    1790

other_bgp  BGP        ---        up     2026-11-22 05:51:44  Established
`;

describe('parseProtocols', () => {
  it('keeps the tortie BGP sessions with state, since, info and the neighbor address', () => {
    expect(parseProtocols(SHOW_PROTOCOLS_ALL)).toEqual([
      {
        name: 'Mesh_192_168_231_2',
        type: 'mesh',
        peer: '192.168.231.2',
        state: 'up',
        since: '2026-11-22 05:51:44',
        info: 'Established',
      },
      {
        name: 'Mesh_192_168_231_3',
        type: 'mesh',
        peer: '192.168.231.3',
        state: 'start',
        since: '2026-11-22 05:51:29',
        info: 'Active Socket: Connection refused',
      },
      {
        name: 'Global_10_0_0_1_1790',
        type: 'global',
        peer: '10.0.0.1',
        state: 'start',
        since: '2026-11-22 05:51:29',
        info: 'Connect',
      },
    ]);
  });

  it('reads birdc -v output (reply codes) too, and nothing from an empty reply', () => {
    const coded = SHOW_PROTOCOLS_ALL.split('\n')
      .map((l, i) => (i === 0 ? `0001 ${l}` : `1006-${l}`))
      .join('\n');
    expect(parseProtocols(coded).map((s) => s.name)).toEqual([
      'Mesh_192_168_231_2',
      'Mesh_192_168_231_3',
      'Global_10_0_0_1_1790',
    ]);
    expect(parseProtocols('')).toEqual([]);
  });

  it('names files with the node', () => {
    expect(birdPaths('/run/x', 'bg1-n0')).toEqual({
      conf: '/run/x/bird-bg1-n0.conf',
      ctl: '/run/x/bird-bg1-n0.ctl',
      pid: '/run/x/bird-bg1-n0.pid',
      log: '/run/x/bird-bg1-n0.log',
    });
  });
});

const nodes = [
  { name: 'n0', address: '192.168.231.1/24', alive: true },
  { name: 'n1', address: '192.168.231.2/24', alive: true },
  { name: 'far', address: '192.168.50.2/24', alive: true },
];

function learned(json: unknown[]) {
  return parseKernelRoutes(JSON.stringify(json));
}

describe('learnedRoutes', () => {
  const kernel = learned([
    {
      dst: '10.231.0.64/26',
      gateway: '192.168.231.2',
      dev: 'ul',
      prefsrc: '192.168.231.1',
      metric: 32,
      metrics: [{ mtu: 1480 }],
    },
    { dst: '10.231.0.130', gateway: '192.168.231.2', dev: 'ul', metric: 32 },
    { dst: '10.231.1.0/26', gateway: '192.168.50.2', dev: 'ul', metric: 32 },
    // Outside every pool (an external route): kernel only.
    { dst: '172.16.0.0/16', gateway: '192.168.231.9', dev: 'ul', metric: 32 },
    // Multipath: no single gateway.
    { dst: '10.231.2.0/26', nexthops: [{ gateway: '192.168.231.2' }], metric: 32 },
  ]);

  it('turns learned pool prefixes into remote routes, IPIP as the pool says', () => {
    const always = learnedRoutes(kernel, {
      self: 'n0',
      nodes,
      pools: [{ cidr: '10.231.0.0/16', ipipMode: 'Always', vxlanMode: 'Never' }],
    });
    expect(always).toEqual([
      { cidr: '10.231.0.64/26', node: 'n1', nextHop: '192.168.231.2', ipip: true, vxlan: false },
      { cidr: '10.231.0.130/32', node: 'n1', nextHop: '192.168.231.2', ipip: true, vxlan: false },
      { cidr: '10.231.1.0/26', node: 'far', nextHop: '192.168.50.2', ipip: true, vxlan: false },
    ]);
    const never = learnedRoutes(kernel, {
      self: 'n0',
      nodes,
      pools: [{ cidr: '10.231.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' }],
    });
    expect(never.map((r) => r.ipip)).toEqual([false, false, false]);
  });

  it('CrossSubnet: plain inside the subnet, encapsulated across it', () => {
    const r = learnedRoutes(kernel, {
      self: 'n0',
      nodes,
      pools: [{ cidr: '10.231.0.0/16', ipipMode: 'CrossSubnet', vxlanMode: 'Never' }],
    });
    expect(r.map((x) => [x.cidr, x.ipip])).toEqual([
      ['10.231.0.64/26', false],
      ['10.231.0.130/32', false],
      ['10.231.1.0/26', true],
    ]);
  });

  it('a next hop no Node has: unnamed, judged with this node prefix length', () => {
    const r = learnedRoutes(
      learned([{ dst: '10.231.3.0/26', gateway: '192.168.231.77', dev: 'ul' }]),
      {
        self: 'n0',
        nodes,
        pools: [{ cidr: '10.231.0.0/16', ipipMode: 'CrossSubnet', vxlanMode: 'Never' }],
      },
    );
    expect(r).toEqual([
      { cidr: '10.231.3.0/26', node: '', nextHop: '192.168.231.77', ipip: false, vxlan: false },
    ]);
  });

  it('nothing learned, nothing routed', () => {
    expect(learnedRoutes([], { self: 'n0', nodes, pools: [] })).toEqual([]);
  });
});

describe('sessionTable', () => {
  it('prints calicoctl columns', () => {
    const t = sessionTable([
      {
        peer: '192.168.231.2',
        type: 'mesh',
        state: 'up',
        since: '2026-11-22 05:51:44',
        info: 'Established',
      },
    ]);
    expect(t).toEqual([
      '+---------------+-------------------+-------+---------------------+-------------+',
      '| PEER ADDRESS  | PEER TYPE         | STATE | SINCE               | INFO        |',
      '+---------------+-------------------+-------+---------------------+-------------+',
      '| 192.168.231.2 | node-to-node mesh | up    | 2026-11-22 05:51:44 | Established |',
      '+---------------+-------------------+-------+---------------------+-------------+',
    ]);
    expect(sessionTable([])).toEqual(['no BGP sessions']);
  });
});

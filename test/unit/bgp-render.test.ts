/**
 * The BIRD configuration renderer: sessions from the mesh and BGPPeers, what is
 * originated, filters, determinism. The text is also parsed by BIRD itself (`bird -p`:
 * parse only, no privileges, nothing started; required: package bird2).
 */
import { describe, expect, it } from 'vitest';
import {
  originated,
  peersOf,
  renderBird,
  sessionName,
  sessionType,
  type BirdInputs,
} from '../../src/bgp/render.js';
import { birdParses } from '../helpers/bird-config.js';

const nodes = [
  { name: 'n0', address: '192.168.231.1/24', labels: { rack: 'a' } },
  { name: 'n2', address: '192.168.231.3/24', asNumber: 64600 },
  { name: 'n1', address: '192.168.231.2/24' },
  { name: 'nx', address: undefined },
];

const base: BirdInputs = {
  self: 'n0',
  nodes,
  peers: [],
  pools: [{ cidr: '10.231.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' }],
  blocks: [
    { cidr: '10.231.0.64/26', affinity: 'n0', allocations: [{ ip: '10.231.0.65', node: 'n0' }] },
    { cidr: '10.231.0.0/26', affinity: 'n0', allocations: [] },
    {
      cidr: '10.231.0.128/26',
      affinity: 'n1',
      allocations: [
        { ip: '10.231.0.129', node: 'n1' },
        { ip: '10.231.0.130', node: 'n0' },
      ],
    },
    // Outside every pool: never originated.
    { cidr: '10.9.0.0/26', affinity: 'n0', allocations: [] },
  ],
  uplink: 'ul',
};

describe('session names', () => {
  it('are derived from type, address and port', () => {
    expect(sessionName('mesh', '192.168.231.2')).toBe('Mesh_192_168_231_2');
    expect(sessionName('global', '10.0.0.1', 179)).toBe('Global_10_0_0_1');
    expect(sessionName('node', '10.0.0.1', 1790)).toBe('Node_10_0_0_1_1790');
    expect(sessionType('Mesh_192_168_231_2')).toBe('mesh');
    expect(sessionType('Node_10_0_0_1_1790')).toBe('node');
    expect(sessionType('tortie_kernel')).toBeUndefined();
  });
});

describe('renderBird', () => {
  it('renders a full mesh to every other node with an address, sorted, with their AS', () => {
    const r = renderBird(base);
    expect(r.routerId).toBe('192.168.231.1');
    expect(r.asNumber).toBe(64512);
    expect(r.peers.map((p) => [p.name, p.asNumber, p.direct])).toEqual([
      ['Mesh_192_168_231_2', 64512, true],
      ['Mesh_192_168_231_3', 64600, true],
    ]);
    expect(r.text).toContain('protocol bgp Mesh_192_168_231_2 from tortie_bgp {');
    expect(r.text).toContain('  neighbor 192.168.231.3 as 64600;');
    expect(r.text).toContain('  local 192.168.231.1 as 64512;');
    birdParses(r.text);
  });

  it('originates the affine blocks aggregated and the borrowed /32s, inside pools only', () => {
    expect(originated('n0', base.blocks).map((o) => o.text)).toEqual([
      '10.9.0.0/26',
      '10.231.0.0/26',
      '10.231.0.64/26',
      '10.231.0.130/32',
    ]);
    const r = renderBird(base);
    expect(r.originated).toEqual(['10.231.0.0/26', '10.231.0.64/26', '10.231.0.130/32']);
    expect(r.text).toContain('  route 10.231.0.64/26 blackhole;');
    expect(r.text).not.toContain('10.231.0.65');
    expect(r.text).toContain('if net ~ [ 10.231.0.0/16+ ] then accept;');
  });

  it('is deterministic: the order of the inputs does not matter', () => {
    const shuffled = {
      ...base,
      nodes: [...nodes].reverse(),
      blocks: [...base.blocks].reverse(),
    };
    expect(renderBird(shuffled).text).toBe(renderBird(base).text);
  });

  it('honours nodeToNodeMeshEnabled, the default AS and the node AS', () => {
    const off = renderBird({ ...base, config: { asNumber: 65000, nodeToNodeMeshEnabled: false } });
    expect(off.peers).toEqual([]);
    expect(off.asNumber).toBe(65000);
    expect(off.text).not.toContain('protocol bgp Mesh_');
    birdParses(off.text);
    const own = renderBird({ ...base, self: 'n2' });
    expect(own.asNumber).toBe(64600);
    expect(own.peers.map((p) => [p.name, p.asNumber])).toEqual([
      ['Mesh_192_168_231_1', 64512],
      ['Mesh_192_168_231_2', 64512],
    ]);
  });

  it('adds BGPPeers: global, by node, by nodeSelector, by peerSelector; with a password', () => {
    const r = renderBird({
      ...base,
      config: { asNumber: 64512, nodeToNodeMeshEnabled: false },
      peers: [
        { name: 'tor', spec: { peerIP: '10.0.0.1', asNumber: 65001, password: 'secret' } },
        { name: 'bad', spec: { peerIP: '10.0.0.9', asNumber: 65009, password: 'a"b' } },
        { name: 'only-n1', spec: { node: 'n1', peerIP: '10.0.0.2', asNumber: 65002 } },
        {
          name: 'rack-a',
          spec: { nodeSelector: "rack == 'a'", peerIP: '10.0.0.3:1790', asNumber: 65003 },
        },
        {
          name: 'rack-b',
          spec: { nodeSelector: "rack == 'b'", peerIP: '10.0.0.4', asNumber: 65004 },
        },
        { name: 'rr', spec: { node: 'n0', peerSelector: 'all()' } },
      ],
    });
    expect(r.peers.map((p) => [p.name, p.type, p.asNumber])).toEqual([
      // peerSelector peers (no peerIP) sort first.
      ['Node_192_168_231_2', 'node', 64512],
      ['Node_192_168_231_3', 'node', 64600],
      ['Node_10_0_0_3_1790', 'node', 65003],
      ['Global_10_0_0_1', 'global', 65001],
    ]);
    expect(r.text).toContain('  neighbor 10.0.0.3 port 1790 as 65003;');
    expect(r.text).toContain('  password "secret";');
    expect(r.problems).toEqual([
      'BGPPeer bad: the password holds " \\ or a line break, which BIRD cannot take: session Global_10_0_0_9 not started',
    ]);
    // Not in the node's subnet: multihop.
    expect(r.text).toMatch(/neighbor 10\.0\.0\.1 as 65001;\n {2}multihop;/);
    birdParses(r.text);
  });

  it('does not open a second session to an address the mesh already peers with', () => {
    const p = peersOf({
      ...base,
      peers: [{ name: 'dup', spec: { peerIP: '192.168.231.2', asNumber: 64512 } }],
    });
    expect(p.map((x) => x.name)).toEqual(['Mesh_192_168_231_2', 'Mesh_192_168_231_3']);
  });

  it('marks encapsulating pools with the IPIP MTU in the kernel export, and timers', () => {
    const r = renderBird({
      ...base,
      pools: [
        { cidr: '10.231.0.0/16', ipipMode: 'Always', vxlanMode: 'Never' },
        { cidr: '10.232.0.0/16', ipipMode: 'CrossSubnet', vxlanMode: 'Never' },
      ],
      timers: { holdTime: 6, startDelayTime: 1, connectRetryTime: 2, errorWaitTime: [1, 6] },
      logFile: '/tmp/x/bird-n0.log',
      config: { logSeverityScreen: 'Debug' },
    });
    expect(r.text).toContain('if net ~ [ 10.231.0.0/16+ ] then krt_mtu = 1480;');
    expect(r.text).toContain(
      'if net ~ [ 10.232.0.0/16+ ] && !(gw ~ 192.168.231.0/24) then krt_mtu = 1480;',
    );
    expect(r.text).toContain('  hold time 6;\n  keepalive time 2;');
    expect(r.text).toContain('  error wait time 1, 6;');
    expect(r.text).toContain('  start delay time 1;');
    expect(r.text).toContain('log "/tmp/x/bird-n0.log" all;');
    expect(r.text).toContain('  debug all;');
    birdParses(r.text);
  });

  it('refuses a node without an address', () => {
    expect(() => renderBird({ ...base, self: 'nx' })).toThrow(/no underlay address/);
  });
});

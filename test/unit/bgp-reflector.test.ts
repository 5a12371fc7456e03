/**
 * Route reflectors in the BIRD render (issue 5): the Calico topology from the store —
 * mesh off, a BGPPeer `{ nodeSelector: all(), peerSelector: route-reflector == 'true' }`,
 * reflectors with `routeReflectorClusterID` — seen from a reflector (sessions to every
 * other node: clients `rr client` + cluster id, the other reflector plain iBGP with the
 * same cluster id) and from a client (sessions to the reflectors only). Parsed by BIRD
 * itself (`bird -p`, required: package bird2); the role read back from `show protocols all`.
 */
import { describe, expect, it } from 'vitest';
import { parseProtocols } from '../../src/bgp/bird.js';
import { peersOf, renderBird, type BgpNode, type BirdInputs } from '../../src/bgp/render.js';
import { birdParses } from '../helpers/bird-config.js';

const CLUSTER = '224.0.0.1';

/** n0, n1: reflectors (labelled, cluster id); n2..n5: clients. */
const nodes: BgpNode[] = [0, 1, 2, 3, 4, 5].map((i) => ({
  name: `n${i}`,
  address: `192.168.231.${i + 1}/24`,
  labels: i < 2 ? { 'route-reflector': 'true' } : ({} as Record<string, string>),
  routeReflectorClusterID: i < 2 ? CLUSTER : undefined,
}));

const rrInputs = (self: string, extra: Partial<BirdInputs> = {}): BirdInputs => ({
  self,
  nodes,
  config: { asNumber: 64512, nodeToNodeMeshEnabled: false },
  peers: [
    {
      name: 'peer-with-rrs',
      spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
    },
  ],
  pools: [{ cidr: '10.231.0.0/16', ipipMode: 'Never', vxlanMode: 'Never' }],
  blocks: [{ cidr: `10.231.${Number(self.slice(1))}.0/26`, affinity: self, allocations: [] }],
  uplink: 'ul',
  ...extra,
});

/** The lines of one protocol block. */
function block(text: string, name: string): string {
  const m = new RegExp(`protocol bgp ${name} from tortie_bgp \\{\\n([^}]*)\\}`).exec(text);
  if (m === null) throw new Error(`no protocol ${name} in\n${text}`);
  return m[1]!;
}

describe('route reflectors: the reflector side', () => {
  it('peers with every other node: clients as rr client, the other reflector as iBGP', () => {
    const r = renderBird(rrInputs('n0'));
    expect(r.peers.map((p) => [p.name, p.type, p.role, p.clusterId])).toEqual([
      ['Node_192_168_231_2', 'node', 'rr-peer', CLUSTER],
      ['Node_192_168_231_3', 'node', 'rr-client', CLUSTER],
      ['Node_192_168_231_4', 'node', 'rr-client', CLUSTER],
      ['Node_192_168_231_5', 'node', 'rr-client', CLUSTER],
      ['Node_192_168_231_6', 'node', 'rr-client', CLUSTER],
    ]);
    expect(block(r.text, 'Node_192_168_231_3')).toBe(
      [
        '  neighbor 192.168.231.3 as 64512;',
        '  direct;',
        '  description "route reflector client";',
        '  rr client;',
        `  rr cluster id ${CLUSTER};`,
        '',
      ].join('\n'),
    );
    const peer = block(r.text, 'Node_192_168_231_2');
    expect(peer).not.toContain('rr client');
    expect(peer).toContain(`  rr cluster id ${CLUSTER};`);
    expect(peer).toContain('  description "route reflector, same cluster";');
    // No mesh: nothing else.
    expect(r.text).not.toContain('Mesh_');
    // Next hops are left alone (iBGP reflection keeps the originator's).
    expect(r.text).not.toMatch(/next hop self/);
    birdParses(r.text);
  });

  it('a reflector of another cluster is a client (hierarchy), not a same-cluster peer', () => {
    const other = nodes.map((n) =>
      n.name === 'n1' ? { ...n, routeReflectorClusterID: '224.0.0.2' } : n,
    );
    const p = peersOf(rrInputs('n0', { nodes: other }));
    expect(p.find((x) => x.ip === '192.168.231.2')?.role).toBe('rr-client');
  });

  it('never makes an eBGP peer a client', () => {
    const ebgp = nodes.map((n) => (n.name === 'n2' ? { ...n, asNumber: 64600 } : n));
    const p = peersOf(rrInputs('n0', { nodes: ebgp }));
    const n2 = p.find((x) => x.ip === '192.168.231.3')!;
    expect([n2.asNumber, n2.role, n2.clusterId]).toEqual([64600, undefined, undefined]);
    expect(renderBird(rrInputs('n0', { nodes: ebgp })).text).not.toMatch(
      /neighbor 192\.168\.231\.3 as 64600;\n[^}]*rr client/,
    );
  });
});

describe('route reflectors: the client side', () => {
  it('peers with the reflectors only, as their client (nothing to configure but the role)', () => {
    for (const self of ['n2', 'n5']) {
      const r = renderBird(rrInputs(self));
      expect(r.peers.map((p) => [p.name, p.type, p.role])).toEqual([
        ['Node_192_168_231_1', 'node', 'reflector'],
        ['Node_192_168_231_2', 'node', 'reflector'],
      ]);
      expect(r.text).not.toContain('rr client');
      expect(r.text).not.toContain('rr cluster id');
      expect(r.text).toContain('  description "route reflector";');
      birdParses(r.text);
    }
  });

  it('renders the same text whatever the order of nodes and peers (stable names)', () => {
    const a = renderBird(rrInputs('n3')).text;
    const b = renderBird(rrInputs('n3', { nodes: [...nodes].reverse() })).text;
    expect(b).toBe(a);
    const c = renderBird(rrInputs('n0')).text;
    const d = renderBird(rrInputs('n0', { nodes: [...nodes].reverse() })).text;
    expect(d).toBe(c);
  });

  it('with the mesh on too, a reflector makes its mesh sessions client sessions', () => {
    const r = renderBird(rrInputs('n1', { config: { asNumber: 64512 }, peers: [] }));
    expect(r.peers.map((p) => [p.name, p.role])).toEqual([
      ['Mesh_192_168_231_1', 'rr-peer'],
      ['Mesh_192_168_231_3', 'rr-client'],
      ['Mesh_192_168_231_4', 'rr-client'],
      ['Mesh_192_168_231_5', 'rr-client'],
      ['Mesh_192_168_231_6', 'rr-client'],
    ]);
    birdParses(r.text);
  });

  it('a global BGPPeer to an external router (ToR) is plain eBGP on every node', () => {
    const tor = { name: 'tor', spec: { peerIP: '192.168.231.250', asNumber: 64999 } };
    for (const self of ['n0', 'n3']) {
      const r = renderBird(rrInputs(self, { peers: [...rrInputs(self).peers, tor] }));
      const p = r.peers.find((x) => x.name === 'Global_192_168_231_250')!;
      expect([p.type, p.asNumber, p.role, p.direct]).toEqual(['global', 64999, undefined, true]);
      expect(block(r.text, 'Global_192_168_231_250')).toBe(
        '  neighbor 192.168.231.250 as 64999;\n  direct;\n',
      );
      birdParses(r.text);
    }
  });
});

describe('the role read back from BIRD', () => {
  it('comes from the protocol description and shows in the info column', () => {
    const text = [
      'BIRD 2.0.12 ready.',
      'Name       Proto      Table      State  Since         Info',
      'Node_192_168_231_3 BGP        ---        up     2026-11-22 06:20:01  Established   ',
      '  Description:    route reflector client',
      '  BGP state:          Established',
      '    Neighbor address: 192.168.231.3',
      '',
      'Node_192_168_231_1 BGP        ---        start  2026-11-22 06:20:01  Active',
      '  Description:    route reflector',
      '  BGP state:          Active',
      '    Neighbor address: 192.168.231.1',
      '',
      'Global_192_168_231_250 BGP        ---        up     2026-11-22 06:20:02  Established',
      '  BGP state:          Established',
      '',
    ].join('\n');
    expect(parseProtocols(text).map((s) => [s.name, s.type, s.role, s.info])).toEqual([
      ['Node_192_168_231_3', 'node', 'rr-client', 'Established (route reflector client)'],
      ['Node_192_168_231_1', 'node', 'reflector', 'Active (route reflector)'],
      ['Global_192_168_231_250', 'global', undefined, 'Established'],
    ]);
  });
});

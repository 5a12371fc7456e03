/**
 * The node's own traffic to remote pods: the kernel routes carry a `src` hint (the node's
 * underlay address) in every mode, and CrossSubnet encapsulates only across subnets.
 */
import { describe, expect, it } from 'vitest';
import {
  desiredKernelRoutes,
  desiredRoutes,
  diffKernelRoutes,
  parseKernelRoutes,
  type RouteInputs,
} from '../../src/agent/routes.js';

const inputs = (mode: 'Always' | 'CrossSubnet' | 'Never', peerAddress: string): RouteInputs => ({
  self: 'n0',
  nodes: [
    { name: 'n0', address: '192.168.1.1/24', alive: true },
    { name: 'n1', address: peerAddress, alive: true },
  ],
  blocks: [{ cidr: '10.0.0.64/26', affinity: 'n1', allocations: [] }],
  pools: [{ cidr: '10.0.0.0/16', ipipMode: mode, vxlanMode: 'Never' }],
});

describe('kernel routes for the node’s own traffic', () => {
  it('CrossSubnet: a peer in this subnet is routed plain (no MTU), one in another subnet in IPIP', () => {
    const same = desiredRoutes(inputs('CrossSubnet', '192.168.1.2/24'));
    const other = desiredRoutes(inputs('CrossSubnet', '192.168.2.2/24'));
    expect(same.map((r) => r.ipip)).toEqual([false]);
    expect(other.map((r) => r.ipip)).toEqual([true]);
    expect(desiredKernelRoutes(same, 'ul', undefined, '192.168.1.1')).toEqual([
      { cidr: '10.0.0.64/26', via: '192.168.1.2', dev: 'ul', mtu: undefined, src: '192.168.1.1' },
    ]);
    expect(desiredKernelRoutes(other, 'ul', undefined, '192.168.1.1')).toEqual([
      { cidr: '10.0.0.64/26', via: '192.168.2.2', dev: 'ul', mtu: 1480, src: '192.168.1.1' },
    ]);
  });

  it('Always and Never: IPIP with MTU, plain without; both with the node address as source', () => {
    for (const [mode, ipip] of [
      ['Always', true],
      ['Never', false],
    ] as const) {
      const r = desiredRoutes(inputs(mode, '192.168.1.2/24'));
      expect(r.map((x) => x.ipip)).toEqual([ipip]);
      expect(diffKernelRoutes([], desiredKernelRoutes(r, 'ul', undefined, '192.168.1.1'))).toEqual([
        `route replace 10.0.0.64/26 via 192.168.1.2 dev ul proto 177 src 192.168.1.1${ipip ? ' mtu 1480' : ''}`,
      ]);
    }
  });

  it('reads prefsrc back, so an equal route is left alone and one without the hint is replaced', () => {
    const present = parseKernelRoutes(
      '[{"dst":"10.0.0.64/26","gateway":"192.168.1.2","dev":"ul","protocol":"177","prefsrc":"192.168.1.1","flags":[]}]',
    );
    expect(present).toEqual([
      { cidr: '10.0.0.64/26', via: '192.168.1.2', dev: 'ul', mtu: undefined, src: '192.168.1.1' },
    ]);
    const want = desiredKernelRoutes(
      desiredRoutes(inputs('Never', '192.168.1.2/24')),
      'ul',
      undefined,
      '192.168.1.1',
    );
    expect(diffKernelRoutes(present, want)).toEqual([]);
    const old = parseKernelRoutes(
      '[{"dst":"10.0.0.64/26","gateway":"192.168.1.2","dev":"ul","flags":[]}]',
    );
    expect(diffKernelRoutes(old, want)).toEqual([
      'route replace 10.0.0.64/26 via 192.168.1.2 dev ul proto 177 src 192.168.1.1',
    ]);
  });
});

/**
 * The world of the tortie-vxlan-in tests (unit: the chain's rules judged in memory; e2e:
 * the same chain on a real kernel): no policy, and three VXLAN nodes on 192.0.2.0/24 whose
 * blocks include an address of n2's block borrowed by n3.
 */
import type { RouteInputs } from '../../src/agent/routes.js';
import type { World } from '../../src/policy/model.js';

export const EMPTY: World = {
  endpoints: [],
  namespaces: [],
  networkSets: [],
  tiers: [],
  policies: [],
  profiles: [],
};

export const inputs: RouteInputs = {
  self: 'n1',
  nodes: [
    { name: 'n1', address: '192.0.2.1/24', alive: true },
    { name: 'n2', address: '192.0.2.2/24', alive: true },
    { name: 'n3', address: '192.0.2.3/24', alive: true },
  ],
  blocks: [
    { cidr: '10.88.0.0/26', affinity: 'n1', allocations: [] },
    {
      cidr: '10.88.0.64/26',
      affinity: 'n2',
      allocations: [
        { ip: '10.88.0.65', node: 'n2' },
        { ip: '10.88.0.70', node: 'n3' },
      ],
    },
    { cidr: '10.88.0.128/26', affinity: 'n3', allocations: [] },
  ],
  pools: [{ cidr: '10.88.0.0/16', ipipMode: 'Never', vxlanMode: 'Always' }],
};

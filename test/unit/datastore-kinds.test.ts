/** The key layout other parts read, and the kind spellings the CLI accepts. */
import { describe, expect, it } from 'vitest';
import {
  KIND_NAMES,
  KINDS,
  PLURALS,
  cidrsOverlap,
  findKind,
  kindOfObject,
  parseResourceKey,
  resourceKey,
} from '../../src/datastore/index.js';
import { prefixEnd } from '../../src/datastore/txn.js';

describe('keys', () => {
  it('namespaced kinds live under <prefix>/resources/<plural>/<namespace>/<name>', () => {
    expect(resourceKey('NetworkPolicy', 'web', 'prod')).toBe(
      '/tortie/resources/networkpolicies/prod/web',
    );
    expect(resourceKey('WorkloadEndpoint', 'n1-k8s-pod-eth0', 'default', '/lab1')).toBe(
      '/lab1/resources/workloadendpoints/default/n1-k8s-pod-eth0',
    );
  });

  it('cluster kinds live under <prefix>/resources/<plural>/<name>', () => {
    expect(resourceKey('IPPool', 'default')).toBe('/tortie/resources/ippools/default');
    expect(resourceKey('K8sNetworkPolicy', 'deny', 'prod')).toBe(
      '/tortie/resources/k8snetworkpolicies/prod/deny',
    );
  });

  it('a namespaced kind without a namespace is a programming error', () => {
    expect(() => resourceKey('NetworkPolicy', 'web')).toThrow(/namespaced/);
  });

  it('the plural table is the one the design names', () => {
    expect(PLURALS).toEqual({
      IPPool: 'ippools',
      NetworkPolicy: 'networkpolicies',
      GlobalNetworkPolicy: 'globalnetworkpolicies',
      Tier: 'tiers',
      Profile: 'profiles',
      NetworkSet: 'networksets',
      GlobalNetworkSet: 'globalnetworksets',
      HostEndpoint: 'hostendpoints',
      WorkloadEndpoint: 'workloadendpoints',
      Node: 'nodes',
      BGPConfiguration: 'bgpconfigurations',
      BGPPeer: 'bgppeers',
      AgentConfiguration: 'agentconfigurations',
      K8sNetworkPolicy: 'k8snetworkpolicies',
      Namespace: 'namespaces',
      IPReservation: 'ipreservations',
      IPAMConfiguration: 'ipamconfigurations',
      BGPFilter: 'bgpfilters',
      FelixConfiguration: 'felixconfigurations',
      KubeControllersConfiguration: 'kubecontrollersconfigurations',
      ClusterInformation: 'clusterinformations',
      StagedNetworkPolicy: 'stagednetworkpolicies',
      StagedGlobalNetworkPolicy: 'stagedglobalnetworkpolicies',
      StagedKubernetesNetworkPolicy: 'stagedkubernetesnetworkpolicies',
    });
  });

  it('parseResourceKey inverts resourceKey for every kind, and rejects other keys', () => {
    for (const kind of KIND_NAMES) {
      const ns = KINDS[kind].namespaced ? 'prod' : undefined;
      expect(parseResourceKey(resourceKey(kind, 'x.y', ns, '/p'), '/p')).toEqual({
        kind,
        name: 'x.y',
        ...(ns ? { namespace: ns } : {}),
      });
    }
    expect(parseResourceKey('/p/resources/ippools/a/b', '/p')).toBeUndefined();
    expect(parseResourceKey('/p/resources/networkpolicies/a', '/p')).toBeUndefined();
    expect(parseResourceKey('/p/ipam/blocks/x', '/p')).toBeUndefined();
    expect(parseResourceKey('/other/resources/ippools/a', '/p')).toBeUndefined();
  });

  it('a prefix range ends right after its last possible key', () => {
    expect(prefixEnd('/a/').toString()).toBe('/a0');
    expect(prefixEnd('a').toString()).toBe('b');
  });
});

describe('kind spellings', () => {
  it.each([
    ['ippool', 'IPPool'],
    ['IPPools', 'IPPool'],
    ['pool', 'IPPool'],
    ['policy', 'NetworkPolicy'],
    ['networkpolicies', 'NetworkPolicy'],
    ['gnp', 'GlobalNetworkPolicy'],
    ['GlobalNetworkPolicy', 'GlobalNetworkPolicy'],
    ['hep', 'HostEndpoint'],
    ['wep', 'WorkloadEndpoint'],
    ['workloadendpoints', 'WorkloadEndpoint'],
    ['node', 'Node'],
    ['bgpconfig', 'BGPConfiguration'],
    ['bgppeers', 'BGPPeer'],
    ['agentconfiguration', 'AgentConfiguration'],
    ['networkpolicies.networking.k8s.io', 'K8sNetworkPolicy'],
    ['knp', 'K8sNetworkPolicy'],
    ['ns', 'Namespace'],
    ['gns', 'GlobalNetworkSet'],
    ['netsets', 'NetworkSet'],
    ['tier', 'Tier'],
    ['profiles', 'Profile'],
  ])('%s is %s', (spelling, kind) => {
    expect(findKind(spelling)?.name).toBe(kind);
  });

  it('unknown spellings find nothing', () => {
    expect(findKind('pods')).toBeUndefined();
  });

  it('objects are identified by apiVersion and kind together', () => {
    expect(kindOfObject('tortie.io/v1', 'NetworkPolicy')?.name).toBe('NetworkPolicy');
    expect(kindOfObject('networking.k8s.io/v1', 'NetworkPolicy')?.name).toBe('K8sNetworkPolicy');
    expect(kindOfObject('v1', 'Namespace')?.name).toBe('Namespace');
    expect(kindOfObject('v1', 'IPPool')).toBeUndefined();
  });
});

describe('pool overlap', () => {
  it.each([
    ['10.0.0.0/8', '10.1.0.0/16', true],
    ['10.1.0.0/16', '10.0.0.0/8', true],
    ['10.1.0.0/16', '10.1.0.0/16', true],
    ['10.1.0.0/16', '10.2.0.0/16', false],
    ['10.1.0.0/24', '10.1.1.0/24', false],
  ])('%s and %s overlap: %s', (a, b, overlap) => {
    expect(cidrsOverlap(a, b)).toBe(overlap);
  });
});

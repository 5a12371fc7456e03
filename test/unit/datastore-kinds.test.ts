/** The key layout other parts read, and the kind spellings the CLI accepts. */
import { describe, expect, it } from 'vitest';
import {
  KIND_NAMES,
  KINDS,
  PLURALS,
  cidrsOverlap,
  findKind,
  kindOfObject,
  legacyKindPrefix,
  parseLegacyResourceKey,
  parseResourceKey,
  resourceKey,
  shownName,
  storedName,
  tortieKeysPrefix,
} from '../../src/datastore/index.js';
import { prefixEnd } from '../../src/datastore/txn.js';

describe('keys', () => {
  it("namespaced Calico kinds live where Calico's etcd datastore keeps them", () => {
    expect(resourceKey('NetworkSet', 'web', 'prod')).toBe(
      '/calico/resources/v3/projectcalico.org/networksets/prod/web',
    );
    expect(resourceKey('WorkloadEndpoint', 'n1-k8s-pod-eth0', 'default', '/lab1')).toBe(
      '/lab1/resources/v3/projectcalico.org/workloadendpoints/default/n1-k8s-pod-eth0',
    );
  });

  it('cluster-wide Calico kinds live under <prefix>/resources/v3/projectcalico.org/<plural>/<name>', () => {
    expect(resourceKey('IPPool', 'default')).toBe(
      '/calico/resources/v3/projectcalico.org/ippools/default',
    );
  });

  it("tortie's own kinds live beside them under the tortie.io group", () => {
    expect(resourceKey('K8sNetworkPolicy', 'deny', 'prod')).toBe(
      '/calico/resources/v3/tortie.io/k8snetworkpolicies/prod/deny',
    );
    expect(resourceKey('AgentConfiguration', 'default')).toBe(
      '/calico/resources/v3/tortie.io/agentconfigurations/default',
    );
    expect(resourceKey('Namespace', 'prod')).toBe('/calico/resources/v3/tortie.io/namespaces/prod');
    expect(tortieKeysPrefix('/p/')).toBe('/p/tortie/');
  });

  it("policy names are stored as Calico's client stores them: default. in front, read back without", () => {
    expect(resourceKey('GlobalNetworkPolicy', 'allow-tcp-6379')).toBe(
      '/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.allow-tcp-6379',
    );
    expect(resourceKey('NetworkPolicy', 'allow-dns', 'prod')).toBe(
      '/calico/resources/v3/projectcalico.org/networkpolicies/prod/default.allow-dns',
    );
    expect(storedName('StagedGlobalNetworkPolicy', 'a.b')).toBe('default.a.b');
    // Kubernetes policies and Calico's own keep their names, as in Calico's client.
    expect(storedName('NetworkPolicy', 'knp.default.x')).toBe('knp.default.x');
    expect(storedName('GlobalNetworkPolicy', 'ossg.x')).toBe('ossg.x');
    // Other kinds are stored as named.
    expect(storedName('IPPool', 'default.x')).toBe('default.x');
    expect(shownName('GlobalNetworkPolicy', 'default.a.b')).toBe('a.b');
    // A name Calico 3.29+ stored in another tier is shown as stored.
    expect(shownName('GlobalNetworkPolicy', 'sec.a')).toBe('sec.a');
    expect(parseResourceKey(resourceKey('NetworkPolicy', 'web', 'prod'))).toEqual({
      kind: 'NetworkPolicy',
      namespace: 'prod',
      name: 'web',
    });
  });

  it("the layout before Calico's is still parsed (tortie datastore migrate reads it)", () => {
    expect(legacyKindPrefix('NetworkPolicy')).toBe('/tortie/resources/networkpolicies/');
    expect(parseLegacyResourceKey('/tortie/resources/networkpolicies/prod/web')).toEqual({
      kind: 'NetworkPolicy',
      namespace: 'prod',
      name: 'web',
    });
    expect(parseLegacyResourceKey('/old/resources/ippools/a', '/old')).toEqual({
      kind: 'IPPool',
      name: 'a',
    });
    expect(parseLegacyResourceKey('/tortie/resources/v3/projectcalico.org/ippools/a')).toBe(
      undefined,
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
    const calico = '/p/resources/v3/projectcalico.org';
    expect(parseResourceKey(`${calico}/ippools/a/b`, '/p')).toBeUndefined();
    expect(parseResourceKey(`${calico}/networkpolicies/a`, '/p')).toBeUndefined();
    // A kind of Calico's that tortie does not keep, and a kind in the wrong group.
    expect(parseResourceKey(`${calico}/blockaffinities/n1-10-0-0-0-26`, '/p')).toBeUndefined();
    expect(parseResourceKey('/p/resources/v3/tortie.io/ippools/a', '/p')).toBeUndefined();
    expect(parseResourceKey('/p/resources/ippools/a', '/p')).toBeUndefined();
    expect(parseResourceKey('/p/ipam/v2/handle/x', '/p')).toBeUndefined();
    expect(parseResourceKey('/other/resources/v3/projectcalico.org/ippools/a', '/p')).toBe(
      undefined,
    );
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

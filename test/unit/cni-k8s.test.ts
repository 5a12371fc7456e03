/**
 * The CNI plugin's Kubernetes side that needs no API server: the network config as
 * Calico's plugin reads it (datastore_type, kubernetes.kubeconfig, policy, Calico's ipam
 * fields), kubelet's CNI_ARGS and the endpoint name they give, and Calico's pod
 * annotations (ipAddrs, ipv4pools) as requests, refused in Calico's words when wrong.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../src/cni/cni-args.js';
import { parseNetworkConfig } from '../../src/cni/config.js';
import { CniCode, CniError } from '../../src/cni/errors.js';
import { workloadIdentity } from '../../src/cni/identity.js';
import { podAddressRequest, type PodFacts } from '../../src/cni/k8s-pod.js';
import { selectPools, type PoolSpec } from '../../src/cni/pools.js';

function cniError(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error('no error thrown');
}

const dir = mkdtempSync(join(tmpdir(), 'tortie-cni-k8s-'));
const kubeconfig = join(dir, 'tortie-kubeconfig');
writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A conflist entry as Calico's manifests write it, with tortie's type. */
const calicoStyle = {
  cniVersion: '1.0.0',
  name: 'k8s-pod-network',
  type: 'tortie',
  nodename: 'node-1',
  datastore_type: 'kubernetes',
  kubernetes: { kubeconfig },
  policy: { type: 'k8s' },
  ipam: { type: 'tortie-ipam', assign_ipv4: 'true', ipv4_pools: ['default-pool'] },
};

describe('network config on the Kubernetes datastore', () => {
  it("reads Calico's fields: datastore_type, kubernetes.kubeconfig, policy, ipam.ipv4_pools", () => {
    const c = parseNetworkConfig(calicoStyle, 'ADD');
    expect(c.datastoreType).toBe('kubernetes');
    expect(c.kubernetes).toEqual({ kubeconfig });
    expect(c.datastore).toEqual({ endpoints: [] });
    expect(c.pools).toEqual(['default-pool']);
  });

  it('keeps the key prefix of datastore.prefix', () => {
    const c = parseNetworkConfig({ ...calicoStyle, datastore: { prefix: '/run-7' } }, 'ADD');
    expect(c.datastore).toEqual({ endpoints: [], prefix: '/run-7' });
  });

  it('without kubernetes.kubeconfig: in-cluster (no kubeconfig)', () => {
    const { kubernetes: _k, ...rest } = calicoStyle;
    expect(parseNetworkConfig(rest, 'ADD').kubernetes).toEqual({});
  });

  it('etcdv3 stays the default, and needs its endpoints', () => {
    const { datastore_type: _d, kubernetes: _k, ...rest } = calicoStyle;
    const e = cniError(() => parseNetworkConfig(rest, 'ADD'));
    expect(e.code).toBe(CniCode.InvalidConfig);
    expect(e.details).toMatch(/etcd_endpoints is required/);
    const ok = parseNetworkConfig({ ...rest, etcd_endpoints: 'http://127.0.0.1:2379' }, 'ADD');
    expect(ok.datastoreType).toBe('etcdv3');
    expect(ok.kubernetes).toBeUndefined();
  });

  it('an unknown datastore_type is refused, naming the field', () => {
    const e = cniError(() => parseNetworkConfig({ ...calicoStyle, datastore_type: 'kdd' }, 'ADD'));
    expect(e.code).toBe(CniCode.InvalidConfig);
    expect(e.details).toMatch(/datastore_type: must be "etcdv3" \(the default\) or "kubernetes"/);
  });

  it('etcd settings with datastore_type kubernetes are refused, named', () => {
    const e = cniError(() =>
      parseNetworkConfig({ ...calicoStyle, etcd_endpoints: 'http://127.0.0.1:2379' }, 'ADD'),
    );
    expect(e.code).toBe(CniCode.InvalidConfig);
    expect(e.details).toMatch(/etcd_endpoints: etcd settings, but datastore_type is "kubernetes"/);
  });

  it('a kubeconfig that is missing, relative or given for etcdv3 is refused, named', () => {
    const missing = cniError(() =>
      parseNetworkConfig({ ...calicoStyle, kubernetes: { kubeconfig: join(dir, 'nope') } }, 'ADD'),
    );
    expect(missing.code).toBe(CniCode.InvalidConfig);
    expect(missing.details).toMatch(/kubernetes\.kubeconfig: .*nope does not exist/);
    const relative = cniError(() =>
      parseNetworkConfig({ ...calicoStyle, kubernetes: { kubeconfig: 'kc' } }, 'ADD'),
    );
    expect(relative.details).toMatch(/kubernetes\.kubeconfig: must be an absolute path/);
    const { datastore_type: _d, ...etcd } = calicoStyle;
    const mixed = cniError(() =>
      parseNetworkConfig({ ...etcd, etcd_endpoints: 'http://127.0.0.1:2379' }, 'ADD'),
    );
    expect(mixed.details).toMatch(/kubernetes\.kubeconfig is given but datastore_type is "etcdv3"/);
  });

  it('policy.type other than k8s is refused', () => {
    const e = cniError(() =>
      parseNetworkConfig({ ...calicoStyle, policy: { type: 'calico' } }, 'ADD'),
    );
    expect(e.code).toBe(CniCode.InvalidConfig);
    expect(e.details).toMatch(/policy\.type: must be "k8s"/);
  });

  it('ipam: calico-ipam names the built-in IPAM; assign_ipv4 false and assign_ipv6 true are unsupported (2); a non-boolean string is named', () => {
    const ipam = (extra: Record<string, unknown>) => ({
      ...calicoStyle,
      ipam: { type: 'calico-ipam', ...extra },
    });
    expect(parseNetworkConfig(ipam({}), 'ADD').pools).toBeUndefined();
    expect(cniError(() => parseNetworkConfig(ipam({ assign_ipv4: 'false' }), 'ADD'))).toMatchObject(
      {
        code: CniCode.UnsupportedField,
        details: expect.stringMatching(/ipam\.assign_ipv4="false"/),
      },
    );
    expect(cniError(() => parseNetworkConfig(ipam({ assign_ipv6: 'true' }), 'ADD'))).toMatchObject({
      code: CniCode.UnsupportedField,
      details: expect.stringMatching(
        /ipam\.assign_ipv6="true" is not supported: tortie pods are IPv4 only/,
      ),
    });
    expect(cniError(() => parseNetworkConfig(ipam({ assign_ipv4: 'yes' }), 'ADD'))).toMatchObject({
      code: CniCode.InvalidConfig,
      details: expect.stringMatching(/ipam\.assign_ipv4: must be "true" or "false"/),
    });
    expect(
      cniError(() => parseNetworkConfig(ipam({ pools: ['a'], ipv4_pools: ['b'] }), 'ADD')),
    ).toMatchObject({
      code: CniCode.InvalidConfig,
      details: expect.stringMatching(/either ipam\.pools or ipam\.ipv4_pools/),
    });
    expect(
      cniError(() => parseNetworkConfig({ ...calicoStyle, ipam: { type: 'host-local' } }, 'ADD')),
    ).toMatchObject({ code: CniCode.UnsupportedField });
  });
});

describe("kubelet's CNI_ARGS", () => {
  const raw =
    'IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=front-7d9f-x2;K8S_POD_INFRA_CONTAINER_ID=0a1b2c;K8S_POD_UID=5f3c-11';

  it('give the pod, its uid and the sandbox', () => {
    expect(parseCniArgs(raw)).toEqual({
      podNamespace: 'web',
      podName: 'front-7d9f-x2',
      infraContainerId: '0a1b2c',
      podUid: '5f3c-11',
    });
  });

  it("make a k8s endpoint named <node>-k8s-<pod>-<iface>, '-' doubled in each part", () => {
    const who = workloadIdentity({
      node: 'kind-worker-2',
      containerId: '0a1b2c',
      ifName: 'eth0',
      args: parseCniArgs(raw),
      overrides: { labels: {} },
    });
    expect(who).toMatchObject({
      orchestrator: 'k8s',
      namespace: 'web',
      workload: 'front-7d9f-x2',
      endpointName: 'kind--worker--2-k8s-front--7d9f--x2-eth0',
    });
  });
});

function pod(annotations: Record<string, string>, namespaceAnnotations = {}): PodFacts {
  return {
    namespace: 'web',
    name: 'front-0',
    annotations,
    namespaceAnnotations,
    endpoint: { labels: {}, profiles: ['kns.web'], ports: [] },
  };
}

describe("Calico's pod annotations", () => {
  const IP_ADDRS = 'cni.projectcalico.org/ipAddrs';
  const POOLS = 'cni.projectcalico.org/ipv4pools';

  it('none: allocate as the config says', () => {
    expect(podAddressRequest(pod({}))).toEqual({ kind: 'auto' });
  });

  it('ipAddrs: exactly that address', () => {
    expect(podAddressRequest(pod({ [IP_ADDRS]: '["10.65.0.7"]' }))).toEqual({
      kind: 'explicit',
      ip: '10.65.0.7',
    });
  });

  it("ipv4pools: the pod's, else its namespace's", () => {
    expect(
      podAddressRequest(pod({ [POOLS]: '["blue", "10.66.0.0/16"]' }, { [POOLS]: '["red"]' })),
    ).toEqual({
      kind: 'auto',
      pools: ['blue', '10.66.0.0/16'],
      poolsFrom: 'annotation cni.projectcalico.org/ipv4pools of pod web/front-0',
    });
    expect(podAddressRequest(pod({}, { [POOLS]: '["red"]' }))).toEqual({
      kind: 'auto',
      pools: ['red'],
      poolsFrom: 'annotation cni.projectcalico.org/ipv4pools of namespace web',
    });
  });

  it.each([
    [
      { [IP_ADDRS]: 'not json' },
      /^failed to parse IPs not json for annotation "cni\.projectcalico\.org\/ipAddrs" \(pod web\/front-0\): failed to parse 'not json' as JSON/,
    ],
    [{ [IP_ADDRS]: '[]' }, /^annotation "cni\.projectcalico\.org\/ipAddrs" specified but empty/],
    [{ [IP_ADDRS]: '["10.0.0.300"]' }, /^invalid IP format: 10\.0\.0\.300/],
    [
      { [IP_ADDRS]: '["10.0.0.1","10.0.0.2"]' },
      /^cannot have more than one IPv4 address for "cni\.projectcalico\.org\/ipAddrs" annotation/,
    ],
    [{ [IP_ADDRS]: '["fd00::1"]' }, /IPv6 address fd00::1, but tortie pods are IPv4 only/],
    [
      { [IP_ADDRS]: '["10.0.0.1"]', 'cni.projectcalico.org/ipAddrsNoIpam': '["10.0.0.1"]' },
      /^can't have both annotations: 'ipAddrs' and 'ipAddrsNoIpam' in use at the same time/,
    ],
    [
      { 'cni.projectcalico.org/ipAddrsNoIpam': '["10.0.0.1"]' },
      /^requested feature is not enabled: ip_addrs_no_ipam/,
    ],
    [
      { [POOLS]: '{"a":1}' },
      /ipv4pools of pod web\/front-0: failed to parse .* expected a list of strings/,
    ],
    [{ [POOLS]: '["fd00::/64"]' }, /"fd00::\/64" isn't a IPv4 address/],
  ])('%j is refused (7): %s', (annotations, message) => {
    const e = cniError(() => podAddressRequest(pod(annotations)));
    expect(e.code).toBe(CniCode.InvalidConfig);
    expect(e.details).toMatch(message);
  });

  it('pools named by the annotation are checked as ipam.pools are, and named by it', () => {
    const pools: PoolSpec[] = [{ name: 'blue', cidr: '10.66.0.0/16', blockSize: 26 }];
    const from = 'annotation cni.projectcalico.org/ipv4pools of pod web/front-0';
    expect(selectPools(pools, { name: 'n1', labels: {} }, ['10.66.0.0/16'], from)).toEqual(pools);
    const e = cniError(() => selectPools(pools, { name: 'n1', labels: {} }, ['red'], from));
    expect(e.code).toBe(CniCode.NoPool);
    expect(e.details).toBe(
      `${from}[0] "red" names no IPPool (by name or CIDR); known pools: blue (10.66.0.0/16)`,
    );
  });
});

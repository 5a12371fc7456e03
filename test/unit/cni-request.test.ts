/**
 * The parts of a CNI request that need no datastore: environment, CNI_ARGS, network
 * config, identity and endpoint names, pool selection, result shapes per version.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCniArgs } from '../../src/cni/cni-args.js';
import { decodeConfig, parseNetworkConfig } from '../../src/cni/config.js';
import { parseCniEnv } from '../../src/cni/env.js';
import { CniError } from '../../src/cni/errors.js';
import { endpointName, workloadIdentity } from '../../src/cni/identity.js';
import { selectPools, type PoolSpec } from '../../src/cni/pools.js';
import { buildAddResult, readPrevResult } from '../../src/cni/result.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/versions.js';

function cniError(fn: () => unknown): CniError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return err;
    throw err;
  }
  throw new Error('no error thrown');
}

const base = {
  cniVersion: '1.0.0',
  name: 'net1',
  type: 'tortie',
  etcd_endpoints: 'http://127.0.0.1:2379',
  nodename: 'node-1',
};

describe('CNI environment', () => {
  it('DEL accepts an empty CNI_NETNS (containerd sends it so)', () => {
    const env = parseCniEnv({
      CNI_COMMAND: 'DEL',
      CNI_CONTAINERID: 'c1',
      CNI_NETNS: '',
      CNI_IFNAME: 'eth0',
    });
    expect(env).toMatchObject({
      command: 'DEL',
      containerId: 'c1',
      netns: undefined,
      ifName: 'eth0',
    });
  });

  it('names every missing variable of an ADD in one error', () => {
    const err = cniError(() => parseCniEnv({ CNI_COMMAND: 'ADD' }));
    expect(err.code).toBe(4);
    expect(err.details).toMatch(
      /CNI_CONTAINERID is not set.*CNI_IFNAME is not set.*CNI_NETNS is not set/,
    );
  });

  it('VERSION, STATUS and GC need no attachment variables', () => {
    for (const command of ['VERSION', 'STATUS', 'GC']) {
      expect(parseCniEnv({ CNI_COMMAND: command, CNI_PATH: '/a:/b' })).toEqual({
        command,
        path: ['/a', '/b'],
      });
    }
  });
});

describe('CNI_ARGS', () => {
  it('reads the Kubernetes pod identity', () => {
    expect(
      parseCniArgs(
        'IgnoreUnknown=1;K8S_POD_NAMESPACE=web;K8S_POD_NAME=front-0;K8S_POD_INFRA_CONTAINER_ID=abc',
      ),
    ).toEqual({ podNamespace: 'web', podName: 'front-0', infraContainerId: 'abc' });
  });

  it('skips unknown keys only when IgnoreUnknown is true', () => {
    expect(parseCniArgs('IgnoreUnknown=true;FOO=bar;K8S_POD_NAME=x')).toEqual({ podName: 'x' });
    expect(cniError(() => parseCniArgs('FOO=bar')).details).toMatch(/unknown key FOO/);
    expect(cniError(() => parseCniArgs('IgnoreUnknown=0;FOO=bar')).code).toBe(4);
  });

  it('refuses a pair without "="', () => {
    const err = cniError(() => parseCniArgs('K8S_POD_NAME'));
    expect(err.code).toBe(4);
    expect(err.details).toMatch(/CNI_ARGS: "K8S_POD_NAME" is not a KEY=VALUE pair/);
  });
});

describe('network config', () => {
  it('takes datastore endpoints from etcd_endpoints (comma-separated) or datastore', () => {
    const a = parseNetworkConfig({ ...base, etcd_endpoints: 'http://a:1, http://b:2' }, 'ADD');
    expect(a.datastore).toEqual({ endpoints: ['http://a:1', 'http://b:2'] });
    const { etcd_endpoints: _unused, ...rest } = base;
    const b = parseNetworkConfig(
      { ...rest, datastore: { endpoints: ['http://c:3'], prefix: '/run-1' } },
      'ADD',
    );
    expect(b.datastore).toEqual({ endpoints: ['http://c:3'], prefix: '/run-1' });
  });

  describe("etcd TLS files (Calico's etcd_ca_cert_file, etcd_cert_file, etcd_key_file)", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tortie-cni-tls-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const [ca, cert, key] = ['ca.pem', 'cni.pem', 'cni-key.pem'].map((n) => {
      writeFileSync(join(dir, n), '-----BEGIN X-----\n');
      return join(dir, n);
    }) as [string, string, string];
    const tls = {
      ...base,
      etcd_endpoints: 'https://10.0.0.1:2379,https://10.0.0.2:2379',
      etcd_ca_cert_file: ca,
      etcd_cert_file: cert,
      etcd_key_file: key,
    };

    it('reach the datastore settings with https:// endpoints', () => {
      expect(parseNetworkConfig(tls, 'ADD').datastore).toEqual({
        endpoints: ['https://10.0.0.1:2379', 'https://10.0.0.2:2379'],
        tls: { ca, cert, key },
      });
      const { etcd_cert_file: _c, etcd_key_file: _k, ...caOnly } = tls;
      expect(parseNetworkConfig(caOnly, 'DEL').datastore.tls).toEqual({ ca });
    });

    it('without them there is no TLS setting at all', () => {
      expect(parseNetworkConfig(base, 'ADD').datastore).not.toHaveProperty('tls');
    });

    it('an http:// endpoint with TLS files is refused, naming the fields and the endpoint', () => {
      const err = cniError(() =>
        parseNetworkConfig(
          { ...tls, etcd_endpoints: 'https://10.0.0.1:2379,http://10.0.0.2:2379' },
          'ADD',
        ),
      );
      expect(err.code).toBe(7);
      expect(err.details).toBe(
        'network config: etcd_ca_cert_file, etcd_cert_file, etcd_key_file need https:// etcd endpoints, but etcd_endpoints has http://10.0.0.2:2379: use https:// (etcd serving TLS) or leave the TLS files out',
      );
    });

    it('a certificate without its key, or a key without its certificate, is refused', () => {
      const { etcd_key_file: _k, ...noKey } = tls;
      expect(cniError(() => parseNetworkConfig(noKey, 'ADD')).details).toMatch(
        /etcd_cert_file is given without etcd_key_file/,
      );
      const { etcd_cert_file: _c, ...noCert } = tls;
      expect(cniError(() => parseNetworkConfig(noCert, 'ADD')).details).toMatch(
        /etcd_key_file is given without etcd_cert_file/,
      );
    });

    it('a file that is missing, a directory or a relative path is named', () => {
      const missing = join(dir, 'nope.pem');
      const e1 = cniError(() => parseNetworkConfig({ ...tls, etcd_key_file: missing }, 'ADD'));
      expect(e1.code).toBe(7);
      expect(e1.details).toBe(`network config: etcd_key_file: ${missing} does not exist`);
      expect(
        cniError(() => parseNetworkConfig({ ...tls, etcd_ca_cert_file: dir }, 'ADD')).details,
      ).toBe(`network config: etcd_ca_cert_file: ${dir} is not a regular file`);
      expect(
        cniError(() => parseNetworkConfig({ ...tls, etcd_cert_file: 'cni.pem' }, 'ADD')).details,
      ).toMatch(/etcd_cert_file: must be an absolute path/);
    });
  });

  it('agent_wait_ms: default 10000, 0 turns the wait off, negative or fractional refused', () => {
    expect(parseNetworkConfig(base, 'ADD').agentWaitMs).toBe(10000);
    expect(parseNetworkConfig({ ...base, agent_wait_ms: 0 }, 'ADD').agentWaitMs).toBe(0);
    expect(parseNetworkConfig({ ...base, agent_wait_ms: 2500 }, 'ADD').agentWaitMs).toBe(2500);
    for (const bad of [-1, 1.5, '1000', 600_001]) {
      const err = cniError(() => parseNetworkConfig({ ...base, agent_wait_ms: bad }, 'ADD'));
      expect(err.code).toBe(7);
      expect(err.details).toMatch(/agent_wait_ms/);
    }
  });

  it('merges labels from args.cni.labels, args.tortie and runtimeConfig.tortie, last wins', () => {
    const c = parseNetworkConfig(
      {
        ...base,
        args: {
          cni: {
            labels: [
              { key: 'app', value: 'a' },
              { key: 'tier', value: 'web' },
            ],
          },
          tortie: { namespace: 'ns1', labels: { app: 'b' } },
        },
        runtimeConfig: { tortie: { name: 'pod-1', labels: { app: 'c' } } },
      },
      'ADD',
    );
    expect(c.identity).toEqual({
      namespace: 'ns1',
      name: 'pod-1',
      labels: { app: 'c', tier: 'web' },
    });
  });

  it("takes the pod's service account from args.tortie or runtimeConfig.tortie (the latter wins)", () => {
    const c = parseNetworkConfig(
      {
        ...base,
        args: { tortie: { serviceAccount: 'from-args' } },
        runtimeConfig: { tortie: { serviceAccount: 'frontend' } },
      },
      'ADD',
    );
    expect(c.identity).toEqual({ labels: {}, serviceAccount: 'frontend' });
    const err = cniError(() =>
      parseNetworkConfig({ ...base, args: { tortie: { serviceAccount: 'Not_A_Name' } } }, 'ADD'),
    );
    expect(err.code).toBe(7);
    expect(err.details).toMatch(/serviceAccount "Not_A_Name" is not a service account name/);
  });

  it('passes unknown top-level fields through (runtimes add their own)', () => {
    expect(() =>
      parseNetworkConfig({ ...base, capabilities: { portMappings: true } }, 'ADD'),
    ).not.toThrow();
  });

  it('defaults ipam to tortie-ipam and the node name to the hostname', () => {
    const { nodename: _n, ...rest } = base;
    const c = parseNetworkConfig(rest, 'ADD');
    expect(c.pools).toBeUndefined();
    expect(c.nodename.length).toBeGreaterThan(0);
  });

  it('a document that is not a JSON object is a decode failure (6)', () => {
    expect(cniError(() => decodeConfig('[1]')).code).toBe(6);
    expect(cniError(() => decodeConfig('{"a":')).code).toBe(6);
  });
});

describe('identity and endpoint name', () => {
  it('is k8s with namespace and pod name from CNI_ARGS, Calico-escaped', () => {
    const who = workloadIdentity({
      node: 'node-1',
      containerId: 'abc',
      ifName: 'eth0',
      args: { podNamespace: 'web', podName: 'front-0' },
      overrides: { labels: {} },
    });
    expect(who).toMatchObject({
      orchestrator: 'k8s',
      namespace: 'web',
      workload: 'front-0',
      endpointName: 'node--1-k8s-front--0-eth0',
    });
  });

  it('is cni in namespace default with the container name podman passes', () => {
    const who = workloadIdentity({
      node: 'n1',
      containerId: 'abc123',
      ifName: 'eth0',
      args: { podName: 'web' },
      overrides: { labels: {} },
    });
    expect(who).toMatchObject({
      orchestrator: 'cni',
      namespace: 'default',
      workload: 'web',
      endpointName: 'n1-cni-web-eth0',
    });
  });

  it('falls back to a hashed name when the Calico name is not a valid resource name', () => {
    const a = endpointName('n1', 'cni', 'default', 'My_Container', 'eth0');
    expect(a).toMatch(/^n1-cni-x[0-9a-f]{20}$/);
    expect(endpointName('n1', 'cni', 'default', 'My_Container', 'eth1')).not.toBe(a);
  });

  it('never gives two different workloads the same name', () => {
    expect(endpointName('a-b', 'k8s', 'ns', 'c', 'eth0')).not.toBe(
      endpointName('a', 'k8s', 'ns', 'b-c', 'eth0'),
    );
  });
});

describe('pool selection', () => {
  const pools: PoolSpec[] = [
    { name: 'b-pool', cidr: '10.2.0.0/16', blockSize: 26 },
    { name: 'a-pool', cidr: '10.1.0.0/16', blockSize: 26, nodeSelector: 'rack == "r1"' },
    { name: 'off', cidr: '10.3.0.0/16', blockSize: 26, disabled: true },
    { name: 'v6', cidr: 'fd00::/48', blockSize: 122 },
  ];
  const node = { name: 'n1', labels: { rack: 'r1' } };

  it('uses every enabled IPv4 pool selecting the node, by name', () => {
    expect(selectPools(pools, node).map((p) => p.name)).toEqual(['a-pool', 'b-pool']);
    expect(selectPools(pools, { name: 'n2', labels: {} }).map((p) => p.name)).toEqual(['b-pool']);
  });

  it('uses exactly the named pools, by name or CIDR, in the given order', () => {
    expect(selectPools(pools, node, ['10.2.0.0/16', 'a-pool']).map((p) => p.name)).toEqual([
      'b-pool',
      'a-pool',
    ]);
  });

  it('refuses a named pool that is unknown, disabled or not for this node (102)', () => {
    expect(cniError(() => selectPools(pools, node, ['nope'])).details).toMatch(
      /ipam.pools\[0\] "nope" names no IPPool/,
    );
    expect(cniError(() => selectPools(pools, node, ['off'])).details).toMatch(/off .* is disabled/);
    const other = cniError(() => selectPools(pools, { name: 'n2', labels: {} }, ['a-pool']));
    expect(other.code).toBe(102);
    expect(other.details).toMatch(/does not select node n2/);
  });

  it('says why no pool is usable', () => {
    const err = cniError(() => selectPools([pools[2] as PoolSpec, pools[3] as PoolSpec], node));
    expect(err.code).toBe(102);
    expect(err.details).toMatch(/off \(10.3.0.0\/16\) is disabled; v6 \(fd00::\/48\) is IPv6/);
    expect(cniError(() => selectPools([], node)).details).toMatch(/no IPPool exists/);
  });
});

describe('ADD result', () => {
  const attachment = {
    hostIfName: 'tor0123456789ab',
    podIfName: 'eth0',
    podMac: '02:00:00:00:00:01',
    sandbox: '/run/netns/p1',
    ip: '10.1.0.7',
    mtu: 1400,
    dns: { nameservers: ['10.96.0.10'] },
  };

  it.each(SUPPORTED_VERSIONS)(
    'has the %s shape: host veth, pod interface, /32 via 169.254.1.1',
    (version) => {
      const r = buildAddResult(version, attachment);
      const old = version.startsWith('0.');
      expect(r.cniVersion).toBe(version);
      expect(r.ips).toEqual([
        {
          ...(old ? { version: '4' } : {}),
          address: '10.1.0.7/32',
          gateway: '169.254.1.1',
          interface: 1,
        },
      ]);
      expect(r.routes).toEqual([{ dst: '0.0.0.0/0', gw: '169.254.1.1' }]);
      expect(r.interfaces[1]).toMatchObject({
        name: 'eth0',
        mac: '02:00:00:00:00:01',
        sandbox: '/run/netns/p1',
      });
      expect(r.interfaces[0]).not.toHaveProperty('sandbox');
      expect('mtu' in (r.interfaces[1] ?? {})).toBe(version === '1.1.0');
      expect(r.dns).toEqual({ nameservers: ['10.96.0.10'] });
    },
  );

  it('reads back as the attachment it describes, from every version', () => {
    for (const version of SUPPORTED_VERSIONS) {
      const prev = readPrevResult(buildAddResult(version, attachment), 'eth0', '/run/netns/p1');
      expect(prev.ips).toEqual(['10.1.0.7']);
      expect(prev.hostInterfaces.map((i) => i.name)).toEqual(['tor0123456789ab']);
    }
  });

  it('a prevResult without the interface is a check failure naming what it lists', () => {
    const err = cniError(() =>
      readPrevResult(buildAddResult('1.0.0', attachment), 'eth1', '/run/netns/p1'),
    );
    expect(err.code).toBe(105);
    expect(err.details).toMatch(
      /no interface eth1 .* lists: tor0123456789ab, eth0 in \/run\/netns\/p1/,
    );
  });
});

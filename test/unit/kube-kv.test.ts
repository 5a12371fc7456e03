/**
 * The Kubernetes datastore's pure parts: the CRD-backed mappings (keys ↔ object names,
 * stored values ↔ Calico's CRD shapes), 64-bit integers through JSON, the mapping table
 * (native ranges win), etcd's range answer (limit, more, count), and the CRD manifests.
 * The calls against a real API server are test/e2e/kube-datastore.test.ts.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseBigJson, stringifyBigJson } from '../../src/datastore/kubernetes/bigjson.js';
import {
  CRD_MAPPINGS,
  calicoUid,
  affinityName,
  cidrToName,
  crdManifests,
  statusObjectName,
} from '../../src/datastore/kubernetes/crds.js';
import { keyValue, rangeResponse, registerMappings } from '../../src/datastore/kubernetes/kv.js';
import type { KeyMapping, KubeObject } from '../../src/datastore/kubernetes/mapping.js';
import { encodeResource, resourceKey } from '../../src/datastore/index.js';
import { IpamKeys } from '../../src/ipam/index.js';
import { encodeBlock, newBlock, withAllocation } from '../../src/ipam/records.js';
import { parseCidr } from '../../src/ipam/ipv4.js';

const P = '/calico';

function mappingOf(key: string): KeyMapping {
  const m = registerMappings(P).find(
    (m) => key.startsWith(m.keyPrefix(P)) && m.objectRef(key, P) !== undefined,
  );
  if (!m) throw new Error(`no mapping for ${key}`);
  return m;
}

/** put → object as the API would store it → key and value read back. */
function roundTrip(
  key: string,
  value: string,
): { object: KubeObject; back: { key: string; value: string } } {
  const m = mappingOf(key);
  const w = m.fromPut(key, value, undefined, P);
  if (!('object' in w)) throw new Error(`not an object write: ${JSON.stringify(w)}`);
  const stored: KubeObject = {
    ...w.object,
    metadata: {
      ...w.object.metadata,
      resourceVersion: '42',
      uid: 'kube-uid',
      creationTimestamp: '2026-01-01T00:00:00Z',
    },
  };
  // The API server's JSON text, with its own key order, read back as the client reads it.
  const served = parseBigJson(stringifyBigJson(stored)) as KubeObject;
  const back = m.toKv(served, P);
  if (!back) throw new Error('toKv gave nothing');
  return { object: w.object, back };
}

describe('CRD-backed mappings', () => {
  it("an IPPool is a crd.projectcalico.org/v1 IPPool with Calico's metadata in its annotation (labels too, as calicoctl writes them), read back as stored", () => {
    const key = resourceKey('IPPool', 'pool-1', undefined, P);
    const value = encodeResource({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: {
        name: 'pool-1',
        uid: 'u-1',
        creationTimestamp: '2026-12-07T00:00:00Z',
        labels: { a: 'b', 'projectcalico.org/owned': 'x' },
        annotations: { note: 'n', 'operator.tigera.io/kept': 'k' },
      },
      spec: { cidr: '10.1.0.0/16', blockSize: 26 },
    });
    const { object, back } = roundTrip(key, value);
    expect(object).toMatchObject({
      apiVersion: 'crd.projectcalico.org/v1',
      kind: 'IPPool',
      // Only Calico's own keys in the object's metadata, as libcalico-go's KDD keeps them.
      metadata: { name: 'pool-1', labels: { 'projectcalico.org/owned': 'x' } },
      spec: { cidr: '10.1.0.0/16', blockSize: 26 },
    });
    expect(object.metadata.annotations!['operator.tigera.io/kept']).toBe('k');
    expect(object.metadata.annotations!['note']).toBeUndefined();
    expect(JSON.parse(object.metadata.annotations!['projectcalico.org/metadata']!)).toEqual({
      uid: 'u-1',
      creationTimestamp: '2026-12-07T00:00:00Z',
      labels: { a: 'b', 'projectcalico.org/owned': 'x' },
      annotations: { note: 'n', 'operator.tigera.io/kept': 'k' },
    });
    expect(back.key).toBe(key);
    expect(JSON.parse(back.value)).toEqual(JSON.parse(value));
  });

  it('reads an object calicoctl wrote (labels only in the annotation, no uid there) as Calico does, and one labelled with kubectl', () => {
    const m = mappingOf(resourceKey('GlobalNetworkSet', 'bad', undefined, P));
    const back = m.toKv(
      {
        apiVersion: 'crd.projectcalico.org/v1',
        kind: 'GlobalNetworkSet',
        metadata: {
          name: 'bad',
          uid: '14b4d8a5-ec59-4b92-8017-6868796d1f71',
          resourceVersion: '286',
          creationTimestamp: '2026-12-07T12:45:14Z',
          labels: { team: 'kubectl', deny: 'overridden' },
          annotations: {
            'projectcalico.org/metadata':
              '{"creationTimestamp":"2026-12-07T12:45:13Z","labels":{"deny":"yes"}}',
          },
        },
        spec: { nets: ['192.0.2.0/24'] },
      },
      P,
    )!;
    const v = JSON.parse(back.value) as { metadata: Record<string, unknown> };
    expect(v.metadata).toEqual({
      name: 'bad',
      // As calicoctl v3.28.5 shows this object (its bits reversed but version and variant).
      uid: '282d1ba5-379a-4b49-80e8-16169eb6f88e',
      creationTimestamp: '2026-12-07T12:45:13Z',
      labels: { team: 'kubectl', deny: 'yes' },
    });
  });

  it("calicoUid reverses each byte's bits but bytes 6 and 8, and is its own inverse", () => {
    const u = '14b4d8a5-ec59-4b92-8017-6868796d1f71';
    expect(calicoUid(u)).toBe('282d1ba5-379a-4b49-80e8-16169eb6f88e');
    expect(calicoUid(calicoUid(u))).toBe(u);
    expect(calicoUid('not-a-uuid')).toBe('not-a-uuid');
  });

  it('a namespaced policy keeps its tier-prefixed name and namespace', () => {
    const key = resourceKey('NetworkPolicy', 'allow-dns', 'prod', P);
    expect(key.endsWith('/prod/default.allow-dns')).toBe(true);
    const value = encodeResource({
      apiVersion: 'projectcalico.org/v3',
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-dns', namespace: 'prod', uid: 'u', creationTimestamp: 't' },
      spec: { selector: 'all()' },
    });
    const { object, back } = roundTrip(key, value);
    expect(object.metadata).toMatchObject({ name: 'default.allow-dns', namespace: 'prod' });
    expect(back.key).toBe(key);
  });

  it('a value naming another object than its key is refused', () => {
    const key = resourceKey('IPPool', 'pool-1', undefined, P);
    const w = mappingOf(key).fromPut(
      key,
      JSON.stringify({
        kind: 'IPPool',
        apiVersion: 'projectcalico.org/v3',
        metadata: { name: 'other' },
        spec: {},
      }),
      undefined,
      P,
    );
    expect(w).toHaveProperty('refused');
  });

  it('an IPAM block keeps its 64-bit sequence numbers digit for digit, named as Calico names it', () => {
    const keys = new IpamKeys(P);
    const cidr = parseCidr('10.65.0.64/26');
    const block = withAllocation(newBlock(cidr, 'node-1', new Date('2026-12-07T03:00:00Z')), 3, {
      handle: 'k8s-pod-network.c1',
      node: 'node-1',
      attrs: {},
      at: new Date('2026-12-07T03:00:01Z'),
    });
    const text = encodeBlock(block, cidr);
    expect(text).toMatch(/"sequenceNumber":\d{19}/);
    const { object, back } = roundTrip(keys.block(cidr), text);
    expect(object.metadata.name).toBe('10-65-0-64-26');
    expect(object).toMatchObject({
      kind: 'IPAMBlock',
      spec: { cidr: '10.65.0.64/26', affinity: 'host:node-1', strictAffinity: false },
    });
    expect(back.key).toBe(keys.block(cidr));
    const seq = /"sequenceNumber":(\d+)/.exec(text)![1];
    expect(back.value).toContain(`"sequenceNumber":${seq}`);
    expect(back.value).not.toContain('strictAffinity');
  });

  it("affinities, handles and the IPAM config as Calico's BlockAffinity, IPAMHandle and IPAMConfig", () => {
    const keys = new IpamKeys(P);
    const cidr = parseCidr('10.65.0.0/26');
    const aff = roundTrip(
      keys.affinity('node-1', cidr),
      JSON.stringify({ state: 'confirmed', deleted: false }),
    );
    expect(aff.object).toMatchObject({
      kind: 'BlockAffinity',
      metadata: { name: 'node-1-10-65-0-0-26' },
      spec: { state: 'confirmed', node: 'node-1', cidr: '10.65.0.0/26', deleted: 'false' },
    });
    expect(aff.back).toEqual({
      key: keys.affinity('node-1', cidr),
      value: '{"state":"confirmed","deleted":false}',
    });

    const h = roundTrip(
      keys.handle('K8s-Pod-Network.ABC'),
      JSON.stringify({ block: { '10.65.0.0/26': 1 }, deleted: false }),
    );
    expect(h.object).toMatchObject({
      kind: 'IPAMHandle',
      metadata: { name: 'k8s-pod-network.abc' },
      spec: { handleID: 'K8s-Pod-Network.ABC', block: { '10.65.0.0/26': 1 } },
    });
    expect(h.back.key).toBe(keys.handle('K8s-Pod-Network.ABC'));

    const c = roundTrip(
      keys.config,
      JSON.stringify({ strict_affinity: true, maxBlocksPerHost: 4 }),
    );
    expect(c.object).toMatchObject({
      kind: 'IPAMConfig',
      metadata: { name: 'default' },
      spec: { strictAffinity: true, autoAllocateBlocks: false, maxBlocksPerHost: 4 },
    });
    expect(JSON.parse(c.back.value)).toEqual({ strict_affinity: true, maxBlocksPerHost: 4 });
  });

  it('a handle that cannot be a Kubernetes name is refused with the reason', () => {
    const key = new IpamKeys(P).handle('net_with_underscore');
    const w = mappingOf(key).fromPut(key, '{"block":{}}', undefined, P);
    expect(w).toEqual({ refused: expect.stringMatching(/not a Kubernetes object name/) });
  });

  it('status records as tortiestatuses, readable names when unambiguous, hashed otherwise', () => {
    expect(statusObjectName('nodes/node-1')).toBe('node.node-1');
    expect(statusObjectName('endpoints/node-1/prod/node-1-k8s-web-eth0')).toBe(
      'endpoint.node-1.prod.node-1-k8s-web-eth0',
    );
    expect(statusObjectName('endpoints/n.1/prod/x')).toMatch(/^endpoint-[0-9a-f]{40}$/);
    expect(statusObjectName('endpoints/n/prod.x/y')).not.toBe(
      statusObjectName('endpoints/n.prod/x/y'),
    );
    const key = `${P}/tortie/status/endpoints/node-1/prod/wep-1`;
    const { object, back } = roundTrip(key, JSON.stringify({ programmed: true, revision: '7' }));
    expect(object).toMatchObject({
      apiVersion: 'tortie.io/v1',
      kind: 'TortieStatus',
      metadata: { labels: { 'tortie.io/node': 'node-1', 'tortie.io/status': 'endpoint' } },
      spec: { path: 'endpoints/node-1/prod/wep-1', data: { programmed: true, revision: '7' } },
    });
    expect(back.key).toBe(key);
  });

  it('names as Calico makes them: CIDRs dashed, long affinity names hashed under 253', () => {
    expect(cidrToName('10.65.0.0/26')).toBe('10-65-0-0-26');
    const long = affinityName('n'.repeat(260), '10.65.0.0/26');
    expect(long.length).toBeLessThan(253);
    expect(long).toMatch(/-10-65-0-0-26-[0-9a-f]{11}$/);
  });
});

describe('the mapping table', () => {
  it('has no CRD for the kinds that are Kubernetes objects, and native ranges win over CRD ones', () => {
    const plurals = CRD_MAPPINGS.map((m) => m.resource.plural);
    expect(plurals).not.toContain('workloadendpoints');
    expect(plurals).not.toContain('nodes');
    expect(plurals).toEqual(
      expect.arrayContaining([
        'ippools',
        'ipamblocks',
        'blockaffinities',
        'ipamhandles',
        'ipamconfigs',
        'agentconfigurations',
        'tortiestatuses',
      ]),
    );
    const native: KeyMapping = {
      ...CRD_MAPPINGS[0]!,
      resource: { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
      keyPrefix: CRD_MAPPINGS[0]!.keyPrefix.bind(CRD_MAPPINGS[0]),
    };
    const table = registerMappings(P, [native]);
    expect(table[0]).toBe(native);
    expect(table).not.toContain(CRD_MAPPINGS[0]);
    expect(table).toHaveLength(CRD_MAPPINGS.length);
  });

  it("crdManifests: one structural CRD per resource, Calico's group and scope", () => {
    const crds = crdManifests();
    const byName = new Map(crds.map((c) => [(c.metadata as { name: string }).name, c]));
    expect(byName.get('ipamblocks.crd.projectcalico.org')).toMatchObject({
      spec: {
        group: 'crd.projectcalico.org',
        scope: 'Cluster',
        names: { kind: 'IPAMBlock', plural: 'ipamblocks' },
      },
    });
    expect(byName.get('networkpolicies.crd.projectcalico.org')).toMatchObject({
      spec: { scope: 'Namespaced' },
    });
    expect(byName.get('tortiestatuses.tortie.io')).toMatchObject({
      spec: { group: 'tortie.io', scope: 'Cluster' },
    });
    expect(crds.length).toBe(new Set(CRD_MAPPINGS.map((m) => m.resource.plural)).size);
  });
});

describe('manifests/', () => {
  it("installs a CRD for every resource the datastore uses, with the mapping's group, kind and scope", () => {
    const installed = new Map<string, { group: string; scope: string; names: { kind: string } }>();
    for (const file of ['manifests/00-crds-calico.yaml', 'manifests/01-crds-tortie.yaml'])
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
        const o = doc.toJS() as { kind?: string; metadata?: { name: string }; spec?: never };
        if (o?.kind === 'CustomResourceDefinition' && o.metadata && o.spec)
          installed.set(o.metadata.name, o.spec);
      }
    for (const m of CRD_MAPPINGS) {
      const r = m.resource;
      expect(installed.get(`${r.plural}.${r.group}`), `${r.plural}.${r.group}`).toMatchObject({
        group: r.group,
        scope: r.namespaced ? 'Namespaced' : 'Cluster',
        names: { kind: r.kind },
      });
    }
  });
});

describe('etcd answers', () => {
  it('a range honours limit (more, count), keys_only and count_only', () => {
    const kvs = ['a', 'b', 'c'].map((k, i) => keyValue(k, `v${k}`, String(10 + i)));
    const limited = rangeResponse(kvs, '20', { key: Buffer.from('a'), limit: 2 });
    expect(limited.kvs.map((kv) => kv.key.toString())).toEqual(['a', 'b']);
    expect(limited).toMatchObject({ more: true, count: '3', header: { revision: '20' } });
    expect(
      rangeResponse(kvs, '20', { key: Buffer.from('a'), keys_only: true }).kvs[0]!.value.length,
    ).toBe(0);
    expect(rangeResponse(kvs, '20', { key: Buffer.from('a'), count_only: true })).toMatchObject({
      kvs: [],
      count: '3',
    });
  });

  it('64-bit integers survive JSON both ways; strings that look like numbers are left alone', () => {
    const text =
      '{"a":1733540400000000001,"b":"1733540400000000001","c":[12,-9223372036854775807],"d":1.5e+300}';
    const parsed = parseBigJson(text);
    expect(stringifyBigJson(parsed)).toBe(text);
  });
});

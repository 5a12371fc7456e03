/**
 * The stored form of objects, as Calico's client writes them (what test/e2e/calicoctl.test.ts
 * compares with calicoctl's own writes): pure, no etcd.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeKeyValue,
  encodeResource,
  resourceKey,
  storedSpec,
  validateObject,
  type StoredResource,
  type ValidObject,
} from '../../src/datastore/index.js';
import { planWrites } from '../../src/datastore/write-plan.js';

function valid(o: unknown): ValidObject {
  const r = validateObject(o);
  if (!r.ok) throw new Error(r.detail.message);
  return r.object;
}

const meta = { uid: 'u1', creationTimestamp: '2026-01-01T00:00:00Z' };

describe('the stored form', () => {
  it('fields in the order Calico encodes them, the policy name tier-prefixed', () => {
    const text = encodeResource({
      apiVersion: 'projectcalico.org/v3',
      kind: 'GlobalNetworkPolicy',
      metadata: { name: 'allow-dns', ...meta },
      spec: { selector: 'all()' },
    });
    expect(text).toBe(
      '{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.allow-dns","uid":"u1","creationTimestamp":"2026-01-01T00:00:00Z"},"spec":{"selector":"all()"}}',
    );
    const key = resourceKey('GlobalNetworkPolicy', 'allow-dns', undefined, '/p');
    const back = decodeKeyValue(
      { key: Buffer.from(key), value: Buffer.from(text), mod_revision: '3' },
      '/p',
    );
    expect(back.resource.metadata.name).toBe('allow-dns');
  });

  it("a policy's types and its rules' source and destination are filled in as Calico's client does", () => {
    expect(
      storedSpec('NetworkPolicy', {
        egress: [{ action: 'Allow', protocol: 'UDP', destination: { ports: [53] } }],
      }),
    ).toEqual({
      types: ['Egress'],
      egress: [{ action: 'Allow', protocol: 'UDP', source: {}, destination: { ports: [53] } }],
    });
    expect(storedSpec('GlobalNetworkPolicy', { ingress: [], egress: [] }).types).toEqual([
      'Ingress',
    ]);
    expect(
      storedSpec('GlobalNetworkPolicy', {
        ingress: [{ action: 'Deny' }],
        egress: [{ action: 'Allow' }],
      }).types,
    ).toEqual(['Ingress', 'Egress']);
    // Types given stay; kinds without rules are stored as given.
    expect(storedSpec('NetworkPolicy', { types: ['Egress'] })).toEqual({ types: ['Egress'] });
    expect(storedSpec('IPPool', { cidr: '10.0.0.0/16' })).toEqual({ cidr: '10.0.0.0/16' });
  });

  it('a new Node gets status {}, and a status Calico stored stays when tortie rewrites the object', () => {
    const node = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: 'n1' },
      spec: { bgp: { ipv4Address: '192.0.2.1/24' } },
    };
    const created = planWrites({
      mode: 'apply',
      objects: [valid(node)],
      current: [undefined],
      pools: [],
      now: meta.creationTimestamp,
      uids: ['u1'],
    }).writes[0]!;
    expect(JSON.parse(created.value).status).toEqual({});

    const calicos: StoredResource = {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: { name: 'n1', ...meta, resourceVersion: '7' },
      spec: { bgp: { ipv4Address: '192.0.2.1/24' } },
      status: { podCIDRs: ['10.0.0.0/24'] },
    };
    const relabelled = planWrites({
      mode: 'apply',
      objects: [valid({ ...node, metadata: { name: 'n1', labels: { zone: 'a' } } })],
      current: [calicos],
      pools: [],
      now: meta.creationTimestamp,
      uids: ['u2'],
    }).writes[0]!;
    expect(relabelled.action).toBe('updated');
    expect(JSON.parse(relabelled.value).status).toEqual({ podCIDRs: ['10.0.0.0/24'] });
  });
});

/**
 * Schemas at the edge: every malformed resource of the table is refused with its field
 * and reason named; one well-formed object of each kind passes, with defaults filled in
 * where the store keeps them.
 */
import { describe, expect, it } from 'vitest';
import { KIND_NAMES, validateObject } from '../../src/datastore/index.js';
import { INVALID_CASES, VALID_EXAMPLES } from './datastore-cases.js';

describe('malformed resources are refused, naming the field and the reason', () => {
  it('the table holds at least 50 cases with distinct names', () => {
    expect(INVALID_CASES.length).toBeGreaterThanOrEqual(50);
    expect(new Set(INVALID_CASES.map((c) => c.name)).size).toBe(INVALID_CASES.length);
  });

  it.each(INVALID_CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const result = validateObject(c.object);
    expect(result.ok, JSON.stringify(result)).toBe(false);
    if (result.ok) return;
    expect(result.detail.path).toBe(c.path);
    expect(result.detail.reason).toContain(c.reason);
    // The one-line message carries the object, the path and the reason.
    expect(result.detail.message).toContain(c.path === '' ? result.detail.reason : `${c.path}: `);
  });
});

describe('well-formed resources', () => {
  it('cover every kind', () => {
    const kinds = VALID_EXAMPLES.map((o) => {
      const r = validateObject(o);
      return r.ok ? r.object.info.name : undefined;
    });
    expect(new Set(kinds)).toEqual(new Set(KIND_NAMES));
  });

  it.each(
    VALID_EXAMPLES.map(
      (o) => [`${o.kind as string} ${(o.metadata as { name: string }).name}`, o] as const,
    ),
  )('%s is accepted', (_n, o) => {
    const r = validateObject(o);
    expect(r.ok, JSON.stringify(r)).toBe(true);
  });

  it('the message of a refused pool names kind, name, field and reason in one line', () => {
    const r = validateObject({
      apiVersion: 'tortie.io/v1',
      kind: 'IPPool',
      metadata: { name: 'default' },
      spec: { cidr: '10.0.0.0/16', blockSize: 33 },
    });
    expect(r.ok ? '' : r.detail.message).toBe(
      'IPPool default: spec.blockSize: 33 is out of range 20-32',
    );
  });

  it('an IPPool is stored with every default filled in', () => {
    const r = validateObject({
      apiVersion: 'tortie.io/v1',
      kind: 'IPPool',
      metadata: { name: 'p' },
      spec: { cidr: '10.0.0.0/16' },
    });
    expect(r.ok && r.object.spec).toEqual({
      cidr: '10.0.0.0/16',
      blockSize: 26,
      ipipMode: 'Never',
      vxlanMode: 'Never',
      natOutgoing: false,
      disabled: false,
      disableBGPExport: false,
      allowedUses: ['Workload', 'Tunnel'],
      assignmentMode: 'Automatic',
      nodeSelector: 'all()',
    });
  });

  it('the default BGPConfiguration gets AS 64512 and the node mesh; a per-node one gets nothing', () => {
    const d = validateObject({
      apiVersion: 'tortie.io/v1',
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
    });
    expect(d.ok && d.object.spec).toEqual({
      asNumber: 64512,
      nodeToNodeMeshEnabled: true,
      logSeverityScreen: 'Info',
    });
    const n = validateObject({
      apiVersion: 'tortie.io/v1',
      kind: 'BGPConfiguration',
      metadata: { name: 'node.n1' },
      spec: { listenPort: 1179 },
    });
    expect(n.ok && n.object.spec).toEqual({ listenPort: 1179 });
  });

  it('a workload endpoint keeps Calico defaults: endpoint eth0, MAC lower case, empty strings dropped', () => {
    const r = validateObject({
      apiVersion: 'tortie.io/v1',
      kind: 'WorkloadEndpoint',
      metadata: { name: 'w' },
      spec: {
        node: 'n1',
        interfaceName: 'tort1',
        mac: 'EE:EE:EE:EE:EE:01',
        workload: '',
        network: '',
      },
    });
    expect(r.ok && r.object.metadata.namespace).toBe('default');
    expect(r.ok && r.object.spec).toEqual({
      node: 'n1',
      endpoint: 'eth0',
      interfaceName: 'tort1',
      mac: 'ee:ee:ee:ee:ee:01',
      ipNetworks: [],
      profiles: [],
      ports: [],
    });
  });

  it('policy kinds keep the spec as written (the policy model converts it when read)', () => {
    const spec = { selector: "app == 'web'", ingress: [{ action: 'Allow', protocol: 'tcp' }] };
    const r = validateObject({
      apiVersion: 'tortie.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'web', namespace: 'prod' },
      spec,
    });
    expect(r.ok && r.object.spec).toEqual(spec);
  });

  it('metadata read back from the store (uid, resourceVersion, creationTimestamp) is accepted', () => {
    const r = validateObject({
      apiVersion: 'tortie.io/v1',
      kind: 'Tier',
      metadata: {
        name: 't',
        uid: 'u-1',
        resourceVersion: '42',
        creationTimestamp: '2024-01-01T00:00:00Z',
      },
    });
    expect(r.ok && r.object.metadata).toMatchObject({ uid: 'u-1', resourceVersion: '42' });
  });

  it('every kind may carry Kubernetes ObjectMeta fields; a field outside it is refused with the nearest name', () => {
    for (const apiVersion of ['v1', 'tortie.io/v1', 'projectcalico.org/v3']) {
      const kind = apiVersion === 'v1' ? 'Namespace' : 'Tier';
      const r = validateObject({
        apiVersion,
        kind,
        metadata: { name: 'p', generation: 2, finalizers: ['x'], selfLink: 's' },
      });
      expect(r.ok, JSON.stringify(r)).toBe(true);
    }
    const r = validateObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'Tier',
      metadata: { name: 't', lables: { a: 'b' } },
    });
    expect(r.ok ? '' : r.detail.message).toBe(
      'Tier t: metadata.lables: unknown field (did you mean labels?)',
    );
  });
});

/**
 * Calico's API as tortie reads it: every Calico kind under projectcalico.org/v3,
 * crd.projectcalico.org/v1 and tortie.io/v1; stored objects read back under the kind's
 * own apiVersion; an export applied to an empty store is created; every problem of an
 * object is reported, each unknown field with the nearest name.
 */
import { describe, expect, it } from 'vitest';
import { KIND_NAMES, KINDS, findKind, kindOfObject } from '../../src/datastore/kinds.js';
import { decodeKeyValue, encodeResource } from '../../src/datastore/codec.js';
import { validateObject, type ValidObject } from '../../src/datastore/schema/index.js';
import { planWrites } from '../../src/datastore/write-plan.js';
import { parseResource } from '../../src/policy/resources.js';
import { didYouMean, editDistance, nearest } from '../../src/util/nearest.js';
import { VALID_EXAMPLES } from './datastore-cases.js';

const CALICO_VERSIONS = ['projectcalico.org/v3', 'crd.projectcalico.org/v1', 'tortie.io/v1'];

function valid(o: unknown): ValidObject {
  const r = validateObject(o);
  if (!r.ok) throw new Error(r.detail.message);
  return r.object;
}

function problems(o: unknown): string[] {
  const r = validateObject(o);
  return r.ok ? [] : r.details.map((d) => d.message);
}

describe('apiVersion', () => {
  const calicoKinds = KIND_NAMES.filter((k) => KINDS[k].apiVersion === 'projectcalico.org/v3');

  it('every Calico kind is written and printed under projectcalico.org/v3; tortie keeps its own AgentConfiguration', () => {
    expect(calicoKinds).toHaveLength(21);
    expect(KINDS.AgentConfiguration.apiVersions).toEqual(['tortie.io/v1']);
    expect(KINDS.K8sNetworkPolicy.apiVersion).toBe('networking.k8s.io/v1');
  });

  it.each(
    VALID_EXAMPLES.filter(
      (o) => o.apiVersion === 'tortie.io/v1' && o.kind !== 'AgentConfiguration',
    ),
  )('$kind is accepted under each of Calico spellings', (example) => {
    for (const apiVersion of CALICO_VERSIONS) {
      const v = validateObject({ ...example, apiVersion });
      expect(v.ok, `${apiVersion}: ${JSON.stringify(v)}`).toBe(true);
      expect(v.ok && v.object.info.apiVersion).toBe('projectcalico.org/v3');
    }
  });

  it('AgentConfiguration is not a Calico kind', () => {
    expect(kindOfObject('projectcalico.org/v3', 'AgentConfiguration')).toBeUndefined();
    expect(kindOfObject('tortie.io/v1', 'AgentConfiguration')?.name).toBe('AgentConfiguration');
  });

  it('the policy parser the agent uses reads every spelling', () => {
    for (const apiVersion of CALICO_VERSIONS) {
      const r = parseResource({
        apiVersion,
        kind: 'GlobalNetworkPolicy',
        metadata: { name: 'p' },
        spec: { selector: 'all()', ingress: [{ action: 'Allow' }] },
      });
      expect(r.kind).toBe('GlobalNetworkPolicy');
    }
  });

  it('an object tortie stored as tortie.io/v1 reads back as projectcalico.org/v3, and applying it again changes nothing', () => {
    const old = {
      apiVersion: 'tortie.io/v1',
      kind: 'Tier',
      metadata: { name: 'sec', uid: 'u-1', creationTimestamp: '2024-01-01T00:00:00.000Z' },
      spec: { order: 10 },
    };
    const { kind, resource } = decodeKeyValue(
      {
        key: Buffer.from('/t/resources/tiers/sec'),
        value: Buffer.from(JSON.stringify(old)),
        mod_revision: '7',
      },
      '/t',
    );
    expect(kind).toBe('Tier');
    expect(resource.apiVersion).toBe('projectcalico.org/v3');
    const plan = planWrites({
      mode: 'apply',
      pools: [],
      now: '2025-01-01T00:00:00.000Z',
      uids: ['u-new'],
      objects: [valid({ ...old, apiVersion: 'tortie.io/v1', metadata: { name: 'sec' } })],
      current: [{ ...old, metadata: { ...old.metadata, resourceVersion: '7' } }],
    });
    expect(plan.writes.map((w) => w.action)).toEqual(['unchanged']);
    expect(JSON.parse(encodeResource(plan.writes[0]!.resource)).apiVersion).toBe(
      'projectcalico.org/v3',
    );
  });

  it('calicoctl spellings of the new kinds are found', () => {
    for (const s of ['ipreservations', 'ipamconfig', 'bgpfilters', 'felixconfig', 'kcc'])
      expect(findKind(s), s).toBeDefined();
  });

  it('an unknown apiVersion names the nearest one', () => {
    expect(
      problems({ apiVersion: 'projectcalico.org/v1', kind: 'IPPool', metadata: { name: 'p' } }),
    ).toEqual([
      expect.stringContaining(
        'unknown apiVersion "projectcalico.org/v1" (did you mean projectcalico.org/v3?)',
      ),
    ]);
  });
});

describe('resourceVersion, as calicoctl treats it', () => {
  const exported = {
    apiVersion: 'projectcalico.org/v3',
    kind: 'Tier',
    metadata: { name: 'sec', resourceVersion: '1234', uid: 'u-export', creationTimestamp: 'x' },
    spec: { order: 10 },
  };
  const base = { pools: [], now: '2025-01-01T00:00:00.000Z', uids: ['u-new'] };

  it('apply of an export into an empty store creates the object', () => {
    const plan = planWrites({
      ...base,
      mode: 'apply',
      objects: [valid(exported)],
      current: [undefined],
    });
    expect(plan.refusals).toEqual([]);
    expect(plan.writes.map((w) => [w.action, w.resource.metadata.uid])).toEqual([
      ['created', 'u-new'],
    ]);
  });

  it('replace of a missing object is still refused', () => {
    const plan = planWrites({
      ...base,
      mode: 'replace',
      objects: [valid(exported)],
      current: [undefined],
    });
    expect(plan.refusals.map((r) => r.kind)).toEqual(['not-found']);
  });
});

describe('every problem, with the nearest name', () => {
  it('an IPPool with three problems reports all three', () => {
    expect(
      problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        metadata: { name: 'p', lables: {} },
        spec: { cidr: '10.0.0.0/16', natOutgoin: true, blockSize: 33 },
      }),
    ).toEqual([
      'IPPool p: metadata.lables: unknown field (did you mean labels?)',
      'IPPool p: spec.blockSize: 33 is out of range 20-32',
      'IPPool p: spec.natOutgoin: unknown field (did you mean natOutgoing?)',
    ]);
  });

  it('a field spelt in another case is read as calicoctl reads it, with a warning naming the rewrite', () => {
    const v = validateObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      Metadata: { Name: 'p', labels: { Keep: 'As-Is' } },
      spec: { CIDR: '10.0.0.0/16', natOutGoing: true, ipipmode: 'Always' },
    });
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.object.metadata).toMatchObject({ name: 'p', labels: { Keep: 'As-Is' } });
    expect(v.object.spec).toMatchObject({
      cidr: '10.0.0.0/16',
      natOutgoing: true,
      ipipMode: 'Always',
    });
    expect(v.object.warnings).toEqual([
      "IPPool p: Metadata: read as metadata (calicoctl's decoder ignores the case of field names; stored as metadata)",
      "IPPool p: metadata.Name: read as name (calicoctl's decoder ignores the case of field names; stored as name)",
      "IPPool p: spec.CIDR: read as cidr (calicoctl's decoder ignores the case of field names; stored as cidr)",
      "IPPool p: spec.natOutGoing: read as natOutgoing (calicoctl's decoder ignores the case of field names; stored as natOutgoing)",
      "IPPool p: spec.ipipmode: read as ipipMode (calicoctl's decoder ignores the case of field names; stored as ipipMode)",
    ]);
  });

  it('field names inside rules are matched in any case too; label keys and values are kept', () => {
    const v = validateObject({
      apiVersion: 'projectcalico.org/v3',
      kind: 'GlobalNetworkPolicy',
      metadata: { name: 'g' },
      spec: {
        Ingress: [
          {
            Action: 'Allow',
            Source: { Selector: "App == 'X'", ServiceAccounts: { Names: ['api'] } },
          },
        ],
      },
    });
    expect(v.ok).toBe(true);
    if (!v.ok) return;
    expect(v.object.spec).toEqual({
      ingress: [
        {
          action: 'Allow',
          source: { selector: "App == 'X'", serviceAccounts: { names: ['api'] } },
        },
      ],
    });
    expect(v.object.warnings.map((w) => w.split(': ')[1])).toEqual([
      'spec.Ingress',
      'spec.ingress[0].Action',
      'spec.ingress[0].Source',
      'spec.ingress[0].source.Selector',
      'spec.ingress[0].source.ServiceAccounts',
      'spec.ingress[0].source.serviceAccounts.Names',
    ]);
  });

  it('Kubernetes ObjectMeta fields on Calico kinds are accepted and not stored', () => {
    const meta = {
      generateName: 'web-',
      ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'web-0', uid: 'u' }],
      finalizers: ['x/y'],
      managedFields: [{ manager: 'kubectl' }],
      deletionTimestamp: '2026-01-01T00:00:00Z',
      deletionGracePeriodSeconds: 30,
      generation: 3,
      selfLink: '/x',
      creationTimestamp: null,
    };
    for (const [kind, spec] of [
      ['GlobalNetworkPolicy', {}],
      ['IPPool', { cidr: '10.1.0.0/16' }],
    ] as const) {
      const v = validateObject({
        apiVersion: 'projectcalico.org/v3',
        kind,
        metadata: { name: 'o', ...meta },
        spec,
      });
      expect(v.ok, kind).toBe(true);
      if (v.ok)
        expect(Object.keys(v.object.metadata).sort(), kind).toEqual([
          'annotations',
          'labels',
          'name',
        ]);
    }
  });

  it('a field given twice in different cases, or in a kind calicoctl does not read, stays an error', () => {
    expect(
      problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'Tier',
        metadata: { name: 't' },
        spec: { Order: 1, ORDER: 2 },
      }),
    ).toEqual([
      'Tier t: spec.Order: unknown field (did you mean order?)',
      'Tier t: spec.ORDER: unknown field (did you mean order?)',
    ]);
    expect(
      problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'Tier',
        metadata: { name: 't' },
        spec: { order: 1, Order: 2 },
      }),
    ).toEqual(['Tier t: spec.Order: unknown field (did you mean order?)']);
    expect(
      problems({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'k' },
        spec: { PodSelector: {} },
      }).join('\n'),
    ).toMatch(/spec\.PodSelector: unknown field \(did you mean podSelector\?\)/);
  });

  it('a policy reports every bad rule', () => {
    expect(
      problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'NetworkPolicy',
        metadata: { name: 'p', namespace: 'prod' },
        spec: {
          selector: 'all()',
          ingress: [{ action: 'Alow' }, { action: 'Allow', destinaton: {} }],
          egres: [],
        },
      }),
    ).toEqual([
      expect.stringContaining(
        'NetworkPolicy prod/p: spec.ingress[0].action: unknown action "Alow"',
      ),
      'NetworkPolicy prod/p: spec.ingress[1].destinaton: unknown field (did you mean destination?)',
      'NetworkPolicy prod/p: spec.egres: unknown field (did you mean egress?)',
    ]);
  });

  it('a FelixConfiguration typo names the Felix field', () => {
    expect(
      problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'FelixConfiguration',
        metadata: { name: 'default' },
        spec: { bpfEnabled: true, logSeverityScren: 'Info' },
      }),
    ).toEqual([
      'FelixConfiguration default: spec.logSeverityScren: unknown field (did you mean logSeverityScreen?)',
    ]);
  });

  it('IPv6 is refused saying dual stack is not yet supported', () => {
    const msgs = [
      ...problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'Node',
        metadata: { name: 'n' },
        spec: { bgp: { ipv4Address: '10.0.0.1/24', ipv6Address: 'fd00::1/64' } },
      }),
      ...problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'IPPool',
        metadata: { name: 'v6' },
        spec: { cidr: 'fd00::/64' },
      }),
      ...problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'BGPFilter',
        metadata: { name: 'f' },
        spec: { exportV6: [{ action: 'Accept' }] },
      }),
    ];
    expect(msgs).toHaveLength(3);
    for (const m of msgs) expect(m).toMatch(/dual stack is not yet supported/);
  });

  it('http and services matches are refused with the reason; serviceAccounts are accepted', () => {
    const rule = (r: Record<string, unknown>) =>
      problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'GlobalNetworkPolicy',
        metadata: { name: 'g' },
        spec: { ingress: [{ action: 'Allow', ...r }] },
      });
    expect(rule({ http: { methods: ['GET'] } })[0]).toMatch(
      /http matches are not supported \(they need/,
    );
    expect(rule({ destination: { services: { name: 's' } } })[0]).toMatch(
      /services matches are not supported/,
    );
    expect(rule({ source: { services: { name: 's', namespace: 'n' } } })[0]).toMatch(
      /services matches are not supported/,
    );
    expect(rule({ source: { serviceAccounts: { names: ['a'], selector: "k == 'v'" } } })).toEqual(
      [],
    );
  });
});

describe('nearest', () => {
  it('measures edits, a swap of neighbours counting one', () => {
    expect(editDistance('natOutgoing', 'natOutgoing')).toBe(0);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('ipipMdoe', 'ipipMode')).toBe(1);
  });

  it('prefers a change of case, and says nothing when nothing is near', () => {
    expect(nearest('natOutGoing', ['natOutgoing', 'disabled', 'cidr'])).toBe('natOutgoing');
    expect(nearest('Order', ['order', 'defaultAction'])).toBe('order');
    expect(nearest('zzzzzz', ['order', 'defaultAction'])).toBeUndefined();
    expect(didYouMean('blocksize', ['blockSize', 'cidr'])).toBe(' (did you mean blockSize?)');
    expect(didYouMean('x', [])).toBe('');
  });
});

describe('the envelope', () => {
  it('an unknown top-level field of a policy is reported once, with the nearest name', () => {
    expect(
      problems({
        apiVersion: 'projectcalico.org/v3',
        kind: 'GlobalNetworkPolicy',
        metadata: { name: 'g' },
        specs: {},
      }),
    ).toEqual(['GlobalNetworkPolicy g: specs: unknown field (did you mean spec?)']);
  });

  it('status, written by Calico controllers, is accepted on every kind', () => {
    for (const kind of ['KubeControllersConfiguration', 'Tier', 'IPPool']) {
      const v = validateObject({
        apiVersion: 'projectcalico.org/v3',
        kind,
        metadata: { name: 'default' },
        spec: kind === 'IPPool' ? { cidr: '10.9.0.0/16' } : {},
        status: { environmentVars: { LOG_LEVEL: 'Info' } },
      });
      expect(v.ok, JSON.stringify(v)).toBe(true);
    }
  });
});

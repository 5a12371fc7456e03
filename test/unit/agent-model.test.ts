import { describe, expect, it } from 'vitest';
import { EndpointIds, resolveLocalEndpoints } from '../../src/agent/endpoints.js';
import {
  buildWorld,
  ClusterModel,
  wepToEndpoint,
  type WorkloadEndpoint,
} from '../../src/agent/model.js';
import type { KindName, StoredResource, WatchEvent } from '../../src/datastore/index.js';
import { evaluate } from '../../src/policy/evaluate.js';
import { storedResource } from '../helpers/stored.js';

let rev = 10;
function stored(
  apiVersion: string,
  kind: string,
  name: string,
  namespace: string | undefined,
  spec: object,
  labels?: Record<string, string>,
): StoredResource {
  return storedResource(
    { apiVersion, kind, name, namespace, labels, resourceVersion: rev++ },
    spec,
  );
}

function wep(
  name: string,
  node: string,
  ip: string | undefined,
  labels: Record<string, string> = {},
  extra: object = {},
): WorkloadEndpoint {
  return stored(
    'tortie.io/v1',
    'WorkloadEndpoint',
    name,
    'prod',
    {
      node,
      endpoint: 'eth0',
      interfaceName: `tor${name}`,
      ipNetworks: ip === undefined ? [] : [`${ip}/32`],
      profiles: [],
      ports: [],
      ...extra,
    },
    labels,
  ) as WorkloadEndpoint;
}

function put(kind: KindName, resource: StoredResource): WatchEvent {
  return {
    type: 'put',
    kind,
    resource,
    revision: resource.metadata.resourceVersion!,
    synthetic: false,
  };
}

describe('WorkloadEndpoint → policy Endpoint', () => {
  it('takes the first /32, the labels, the profiles (default: the namespace profile) and named ports', () => {
    const e = wepToEndpoint(
      wep(
        'web-0',
        'n1',
        '10.0.0.5',
        { app: 'web' },
        {
          ports: [
            { name: 'http', protocol: 'TCP', port: 80 },
            { name: 'dns', protocol: 'UDP', port: 53 },
            { name: 'sig', protocol: 'SCTP', port: 9 },
          ],
        },
      ),
    );
    expect(e).toEqual({
      key: 'prod/web-0',
      namespace: 'prod',
      name: 'web-0',
      ip: '10.0.0.5',
      labels: { app: 'web' },
      profiles: ['kns.prod'],
      ports: [
        { name: 'http', protocol: 6, port: 80 },
        { name: 'dns', protocol: 17, port: 53 },
        { name: 'sig', protocol: 132, port: 9 },
      ],
    });
    expect(
      wepToEndpoint(wep('x', 'n1', '10.0.0.6', {}, { profiles: ['kns.prod', 'extra'] }))!.profiles,
    ).toEqual(['kns.prod', 'extra']);
  });

  it('an endpoint without an IPv4 address is not an endpoint for policy', () => {
    expect(wepToEndpoint(wep('x', 'n1', undefined))).toBeUndefined();
  });
});

describe('the cluster model and the World built from it', () => {
  it("follows puts and deletes; the World holds every node's endpoints and the stored policies", () => {
    const m = new ClusterModel();
    m.apply(put('Namespace', stored('v1', 'Namespace', 'prod', undefined, {}, { team: 'a' })));
    m.apply(put('WorkloadEndpoint', wep('a', 'n1', '10.0.0.1', { app: 'a' })));
    m.apply(put('WorkloadEndpoint', wep('b', 'n2', '10.0.0.2', { app: 'b' })));
    m.apply(
      put(
        'K8sNetworkPolicy',
        stored('networking.k8s.io/v1', 'NetworkPolicy', 'deny-b', 'prod', {
          podSelector: { matchLabels: { app: 'b' } },
          policyTypes: ['Ingress'],
        }),
      ),
    );
    const { world, endpoints, problems } = buildWorld(m);
    expect(problems).toEqual([]);
    expect([...endpoints.keys()]).toEqual(['prod/a', 'prod/b']);
    expect(world.policies.map((p) => p.name)).toEqual(['knp.default.deny-b']);
    expect(world.namespaces[0]!.labels).toMatchObject({
      team: 'a',
      'kubernetes.io/metadata.name': 'prod',
    });
    const packet = { saddr: '10.0.0.1', daddr: '10.0.0.2', protocol: 6, dport: 80, sport: 1000 };
    const ingressOfB = (w: typeof world) =>
      evaluate(w, endpoints.get('prod/b')!.endpoint, 'ingress', packet).action;
    expect(ingressOfB(world)).toBe('deny');

    expect(
      m.apply({
        type: 'delete',
        kind: 'K8sNetworkPolicy',
        name: 'deny-b',
        namespace: 'prod',
        revision: '99',
        synthetic: false,
      }),
    ).toBe(true);
    expect(ingressOfB(buildWorld(m).world)).toBe('allow');
    expect(
      m.apply({
        type: 'delete',
        kind: 'K8sNetworkPolicy',
        name: 'deny-b',
        namespace: 'prod',
        revision: '100',
        synthetic: false,
      }),
    ).toBe(false);
  });

  it("a new version of a policy keeps the previous version's objects for its unchanged rules", () => {
    const m = new ClusterModel();
    const rule = (port: number) => ({
      action: 'Allow',
      protocol: 'TCP',
      destination: { ports: [port] },
    });
    const version = (ports: number[]) =>
      put(
        'NetworkPolicy',
        stored('projectcalico.org/v3', 'NetworkPolicy', 'p', 'prod', {
          selector: 'all()',
          ingress: ports.map(rule),
        }),
      );
    m.apply(version([1, 2, 3, 4]));
    const before = buildWorld(m).world.policies[0]!;
    m.apply(version([1, 2, 9, 3, 4])); // 9 inserted
    const after = buildWorld(m).world.policies[0]!;
    expect(after).not.toBe(before);
    expect(after.ingress.map((r) => before.ingress.indexOf(r))).toEqual([0, 1, -1, 2, 3]);
    expect(after.ingress[2]!.destination.ports).toEqual([{ kind: 'range', from: 9, to: 9 }]);
    m.apply(version([1, 2, 9, 3, 4])); // a new stored object, equal: the same policy
    expect(buildWorld(m).world.policies[0]).toBe(after);
    // Only the changed rules were converted, and the result is the whole conversion's.
    const whole = new ClusterModel();
    whole.apply(version([1, 2, 9, 3, 4]));
    expect(after).toEqual(buildWorld(whole).world.policies[0]);
    // A changed rule that does not convert is reported at its place in the whole list.
    m.apply(
      put(
        'NetworkPolicy',
        stored('projectcalico.org/v3', 'NetworkPolicy', 'p', 'prod', {
          selector: 'all()',
          ingress: [rule(1), rule(2), rule(9), { action: 'Allow', destination: { ports: [5] } }],
        }),
      ),
    );
    const { world, problems } = buildWorld(m);
    expect(world.policies).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toMatch(/ingress\[3\]/);
  });

  it('a stored resource that does not convert is left out and reported; the rest still works', () => {
    const m = new ClusterModel();
    m.apply(
      put(
        'NetworkPolicy',
        stored('tortie.io/v1', 'NetworkPolicy', 'bad', 'prod', { selector: 'app ==' }),
      ),
    );
    m.apply(
      put(
        'NetworkPolicy',
        stored('tortie.io/v1', 'NetworkPolicy', 'good', 'prod', { selector: 'all()' }),
      ),
    );
    const { world, problems } = buildWorld(m);
    expect(world.policies.map((p) => p.name)).toEqual(['good']);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.object).toBe('NetworkPolicy prod/bad');
  });

  it('a second endpoint claiming an address already taken is left out and reported', () => {
    const m = new ClusterModel();
    m.apply(put('WorkloadEndpoint', wep('a', 'n1', '10.0.0.1')));
    m.apply(put('WorkloadEndpoint', wep('b', 'n1', '10.0.0.1')));
    const { endpoints, problems } = buildWorld(m);
    expect([...endpoints.keys()]).toEqual(['prod/a']);
    expect(problems[0]!.message).toContain('10.0.0.1');
  });
});

describe('local endpoints and their ids', () => {
  const all = ['a', 'b', 'c'].map((n, i) => {
    const w = wep(n, i < 2 ? 'n1' : 'n2', `10.0.0.${i + 1}`);
    return { endpoint: wepToEndpoint(w)!, wep: w };
  });

  it("only this node's endpoints, matched to their interface; the missing ones are set apart", () => {
    const ids = new EndpointIds();
    const { locals, unresolved } = resolveLocalEndpoints('n1', all, new Map([['tora', 7]]), ids);
    expect(locals.map((l) => [l.endpoint.key, l.ifindex, l.id])).toEqual([['prod/a', 7, 1]]);
    expect(unresolved).toEqual([
      { key: 'prod/b', interfaceName: 'torb', reason: 'no interface torb' },
    ]);
  });

  it('ids are stable per endpoint, adopted from the pinned map after a restart, never reused', () => {
    const ids = new EndpointIds(new Map([[8, 42]]));
    const links = new Map([
      ['tora', 7],
      ['torb', 8],
    ]);
    const first = resolveLocalEndpoints('n1', all, links, ids).locals.map((l) => [
      l.endpoint.key,
      l.id,
    ]);
    expect(first).toEqual([
      ['prod/a', 43],
      ['prod/b', 42],
    ]);
    expect(
      resolveLocalEndpoints('n1', all, links, ids).locals.map((l) => [l.endpoint.key, l.id]),
    ).toEqual(first);
    ids.retain(new Set(['prod/b']));
    // a comes back (a new pod of the same name): a new id, not 43 again.
    expect(
      resolveLocalEndpoints('n1', all, links, ids).locals.map((l) => [l.endpoint.key, l.id]),
    ).toEqual([
      ['prod/a', 44],
      ['prod/b', 42],
    ]);
  });
});

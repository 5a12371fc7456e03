/**
 * Service accounts, profile labelsToApply and untracked / pre-DNAT policies, as Calico
 * gives them meaning (libcalico-go's update processors and Felix's label inheritance):
 * from stored resources (the agent's ClusterModel and buildWorld) to verdicts of the
 * reference evaluator, and the same verdicts from the compiled maps (soft dataplane).
 */
import { describe, expect, it } from 'vitest';
import {
  buildWorld,
  ClusterModel,
  wepToEndpoint,
  type WorkloadEndpoint,
} from '../../src/agent/model.js';
import type { KindName, StoredResource } from '../../src/datastore/index.js';
import { PolicyCompiler, type LocalEndpoint } from '../../src/policy/compile/index.js';
import { evaluate } from '../../src/policy/evaluate.js';
import type { Direction, Packet, World } from '../../src/policy/model.js';
import { parseResource, ResourceError } from '../../src/policy/resources.js';
import { prefixSelectorKeys } from '../../src/policy/selector.js';
import {
  endpointLabels,
  serviceAccountMatchSelector,
  serviceAccountOfProfile,
} from '../../src/policy/service-accounts.js';
import { judge } from '../helpers/softdataplane.js';
import { storedResource } from '../helpers/stored.js';

const CALICO = 'projectcalico.org/v3';

// --- the selectors Calico makes ---------------------------------------------------------

describe('service-account matches as selectors (libcalico-go parseServiceAccounts)', () => {
  it('names become an `in` set over projectcalico.org/serviceaccount', () => {
    expect(serviceAccountMatchSelector({ names: ['sa-2', 'sa-1'] })).toBe(
      'projectcalico.org/serviceaccount in {"sa-1", "sa-2"}',
    );
  });

  it("a selector's label keys get the pcsa. prefix", () => {
    expect(prefixSelectorKeys("role == 'db' && !has(tier) || k in {'a'}", 'pcsa.')).toBe(
      '((pcsa.role == "db" && !has(pcsa.tier)) || pcsa.k in {"a"})',
    );
    expect(prefixSelectorKeys('all()', 'pcsa.')).toBe('all()');
  });

  it('names and selector are ANDed; an empty match constrains nothing', () => {
    expect(serviceAccountMatchSelector({ names: ['api'], selector: "role == 'x'" })).toBe(
      '(pcsa.role == "x") && (projectcalico.org/serviceaccount in {"api"})',
    );
    expect(serviceAccountMatchSelector({})).toBeUndefined();
    expect(serviceAccountMatchSelector({ names: [], selector: '' })).toBeUndefined();
  });

  it('the ksa.<namespace>.<name> profile names its service account', () => {
    expect(serviceAccountOfProfile('ksa.web.front.end')).toEqual({
      namespace: 'web',
      name: 'front.end',
    });
    expect(serviceAccountOfProfile('kns.web')).toBeUndefined();
    expect(serviceAccountOfProfile('ksa.web')).toBeUndefined();
  });
});

describe("an endpoint's labels (Felix: own labels, then its profiles' labelsToApply)", () => {
  const profiles: Record<string, Record<string, string>> = {
    first: { tier: 'first', stage: 'one' },
    second: { tier: 'second', extra: 'two' },
    'ksa.web.api': { 'pcsa.role': 'api', 'pcsa.projectcalico.org/name': 'ignored' },
  };
  const labels = (own: Record<string, string>, list: string[], sa?: string) =>
    endpointLabels(
      { labels: own, profiles: list, ...(sa === undefined ? {} : { serviceAccountName: sa }) },
      (p) => profiles[p],
    );

  it('own labels win, then the first profile that has the key', () => {
    expect(labels({ stage: 'own' }, ['first', 'second'])).toEqual({
      stage: 'own',
      tier: 'first',
      extra: 'two',
    });
    expect(labels({}, ['second', 'first'])).toMatchObject({ tier: 'second' });
  });

  it('the service-account label comes from the spec; pcsa./pcns. own labels are dropped', () => {
    expect(
      labels(
        {
          'projectcalico.org/serviceaccount': 'forged',
          'pcsa.role': 'admin',
          'pcns.team': 'x',
          app: 'a',
        },
        ['ksa.web.api'],
        'api',
      ),
    ).toEqual({
      app: 'a',
      'projectcalico.org/serviceaccount': 'api',
      'pcsa.role': 'api',
      // As Calico's kube-controllers write it: the account's own name, whatever was stored.
      'pcsa.projectcalico.org/name': 'api',
    });
  });

  it('a missing profile gives nothing', () => {
    expect(labels({ a: 'b' }, ['absent'])).toEqual({ a: 'b' });
  });
});

// --- from stored resources to verdicts, in both dataplanes ------------------------------

let rev = 100;
function stored(
  kind: KindName,
  name: string,
  namespace: string | undefined,
  spec: object,
  labels?: Record<string, string>,
): StoredResource {
  return storedResource(
    { apiVersion: CALICO, kind, name, namespace, labels, resourceVersion: rev++ },
    spec,
  );
}

/** A pod's endpoint as Calico's CNI plugin writes it: kns. and ksa. profiles, the account in the spec. */
function pod(
  namespace: string,
  name: string,
  ip: string,
  labels: Record<string, string>,
  serviceAccount?: string,
): StoredResource {
  return stored(
    'WorkloadEndpoint',
    `node1-k8s-${name}-eth0`,
    namespace,
    {
      node: 'node1',
      orchestrator: 'k8s',
      pod: name,
      endpoint: 'eth0',
      interfaceName: `cali${name}`,
      ipNetworks: [`${ip}/32`],
      profiles:
        serviceAccount === undefined
          ? [`kns.${namespace}`]
          : [`kns.${namespace}`, `ksa.${namespace}.${serviceAccount}`],
      ...(serviceAccount === undefined ? {} : { serviceAccountName: serviceAccount }),
      ports: [],
    },
    labels,
  );
}

const IP = { api: '10.65.0.1', db: '10.65.0.2', web: '10.65.0.3', other: '10.65.0.4' };

/** Three pods in `web` with service accounts api, db, web; one in `other` with account api. */
function baseResources(): StoredResource[] {
  return [
    pod('web', 'api', IP.api, { app: 'api' }, 'api'),
    pod('web', 'db', IP.db, { app: 'db' }, 'db'),
    pod('web', 'web', IP.web, { app: 'web' }, 'web'),
    pod('other', 'api', IP.other, { app: 'api' }, 'api'),
    // The service accounts' labels, where Calico keeps them.
    stored('Profile', 'ksa.web.api', undefined, {
      labelsToApply: { 'pcsa.role': 'backend', 'pcsa.projectcalico.org/name': 'api' },
    }),
    stored('Profile', 'ksa.web.db', undefined, {
      labelsToApply: { 'pcsa.role': 'storage', 'pcsa.projectcalico.org/name': 'db' },
    }),
    stored('Profile', 'ksa.other.api', undefined, {
      labelsToApply: { 'pcsa.role': 'backend' },
    }),
  ];
}

function modelOf(resources: readonly StoredResource[]): ClusterModel {
  const model = new ClusterModel();
  for (const r of resources)
    model.apply({
      type: 'put',
      kind: r.kind as KindName,
      resource: r,
      revision: r.metadata.resourceVersion!,
      synthetic: false,
    });
  return model;
}

function tcp(from: string, to: string): Packet {
  return { saddr: from, daddr: to, protocol: 6, dport: 5432, sport: 40000 };
}

/**
 * Who may open TCP 5432 to `to`, as "allow"/"deny" per source pod, from the evaluator and
 * from the compiled maps; the two must agree.
 */
function reach(resources: readonly StoredResource[], to: keyof typeof IP): Record<string, string> {
  const built = buildWorld(modelOf(resources));
  expect(built.problems).toEqual([]);
  const world: World = built.world;
  const locals: LocalEndpoint[] = [...built.endpoints.values()].map((e, i) => ({
    endpoint: e.endpoint,
    ifindex: 10 + i,
    id: 1 + i,
  }));
  const { state } = new PolicyCompiler().update(world, locals);
  const target = locals.find((l) => l.endpoint.ip === IP[to])!;
  const out: Record<string, string> = {};
  for (const [from, ip] of Object.entries(IP)) {
    if (ip === IP[to]) continue;
    const direction: Direction = 'ingress';
    const want = evaluate(world, target.endpoint, direction, tcp(ip, IP[to]));
    const got = judge(state, target.ifindex, direction, tcp(ip, IP[to]));
    expect(got.ok ? got.verdict : got, `${from} -> ${to}: compiled vs evaluator`).toEqual(want);
    out[from] = want.action;
  }
  return out;
}

function gnp(name: string, spec: object): StoredResource {
  return stored('GlobalNetworkPolicy', name, undefined, spec);
}

describe('a WorkloadEndpoint as the policy model sees it', () => {
  it("carries its account's label and its profiles' labels; an unnamed host-port port is no named port", () => {
    const w = pod('web', 'api', IP.api, { app: 'api' }, 'api');
    const withPorts = {
      ...w,
      spec: {
        ...w.spec,
        ports: [
          { name: '', protocol: 'TCP', port: 8080, hostPort: 80, hostIP: '0.0.0.0' },
          { name: 'http', protocol: 'TCP', port: 8080 },
        ],
      },
    };
    const e = wepToEndpoint(withPorts as WorkloadEndpoint, (p) =>
      p === 'ksa.web.api' ? { 'pcsa.role': 'backend' } : undefined,
    )!;
    expect(e.labels).toEqual({
      app: 'api',
      'projectcalico.org/serviceaccount': 'api',
      'pcsa.role': 'backend',
      'pcsa.projectcalico.org/name': 'api',
    });
    expect(e.profiles).toEqual(['kns.web', 'ksa.web.api']);
    expect(e.ports).toEqual([{ name: 'http', protocol: 6, port: 8080 }]);
  });
});

describe('service accounts in policy: evaluator and compiled maps agree', () => {
  it('source.serviceAccounts.names admits the pods running as those accounts', () => {
    const resources = [
      ...baseResources(),
      gnp('db-from-api', {
        selector: "app == 'db'",
        ingress: [{ action: 'Allow', source: { serviceAccounts: { names: ['api'] } } }],
      }),
    ];
    // A global policy: account "api" of every namespace.
    expect(reach(resources, 'db')).toEqual({ api: 'allow', web: 'deny', other: 'allow' });
  });

  it('a namespaced policy sees its own namespace only, as with selectors', () => {
    const resources = [
      ...baseResources(),
      stored('NetworkPolicy', 'db-from-api', 'web', {
        selector: "app == 'db'",
        ingress: [{ action: 'Allow', source: { serviceAccounts: { names: ['api'] } } }],
      }),
    ];
    expect(reach(resources, 'db')).toEqual({ api: 'allow', web: 'deny', other: 'deny' });
  });

  it("serviceAccounts.selector matches the account's labels (its ksa. profile), ANDed with the rule's selector", () => {
    const bySelector = [
      ...baseResources(),
      gnp('db-from-backends', {
        selector: "app == 'db'",
        ingress: [
          { action: 'Allow', source: { serviceAccounts: { selector: "role == 'backend'" } } },
        ],
      }),
    ];
    expect(reach(bySelector, 'db')).toEqual({ api: 'allow', web: 'deny', other: 'allow' });

    const andSelector = [
      ...baseResources(),
      gnp('db-from-backends', {
        selector: "app == 'db'",
        ingress: [
          {
            action: 'Allow',
            source: {
              selector: "projectcalico.org/namespace == 'other'",
              serviceAccounts: { selector: "role == 'backend'" },
            },
          },
        ],
      }),
    ];
    expect(reach(andSelector, 'db')).toEqual({ api: 'deny', web: 'deny', other: 'allow' });

    const byName = [
      ...baseResources(),
      gnp('db-from-api-by-name-label', {
        selector: "app == 'db'",
        ingress: [
          {
            action: 'Allow',
            source: { serviceAccounts: { selector: "projectcalico.org/name == 'api'" } },
          },
        ],
      }),
    ];
    // ksa.other.api stores no name label: the account's name is applied all the same.
    expect(reach(byName, 'db')).toEqual({ api: 'allow', web: 'deny', other: 'allow' });
  });

  it("a policy's serviceAccountSelector picks the endpoints it applies to", () => {
    const resources = [
      ...baseResources(),
      gnp('storage-only-from-web', {
        serviceAccountSelector: "role == 'storage'",
        ingress: [{ action: 'Allow', source: { selector: "app == 'web'" } }],
      }),
    ];
    // db (account db, role storage) is selected: web only.
    expect(reach(resources, 'db')).toEqual({ api: 'deny', web: 'allow', other: 'deny' });
    // api (role backend) is not selected: its namespace profile allows everything.
    expect(reach(resources, 'api')).toEqual({ db: 'allow', web: 'allow', other: 'allow' });
  });

  it("a stored service-account label on the endpoint does not count: the spec's account does", () => {
    const resources = [
      ...baseResources().filter((r) => r.metadata.name !== 'node1-k8s-web-eth0'),
      pod('web', 'web', IP.web, { app: 'web', 'projectcalico.org/serviceaccount': 'api' }, 'web'),
      gnp('db-from-api', {
        selector: "app == 'db'",
        ingress: [{ action: 'Allow', source: { serviceAccounts: { names: ['api'] } } }],
      }),
    ];
    expect(reach(resources, 'db')).toMatchObject({ web: 'deny' });
  });
});

describe('Profile labelsToApply', () => {
  it('selectors of policies and rules see the labels a profile gives its endpoints', () => {
    const web = pod('web', 'web', IP.web, { app: 'web' }, 'web');
    const withProfile = [
      ...baseResources().filter((r) => r.metadata.name !== web.metadata.name),
      { ...web, spec: { ...web.spec, profiles: ['kns.web', 'dev-profile'] } },
      stored('Profile', 'dev-profile', undefined, {
        labelsToApply: { stage: 'development', app: 'not-the-own-label' },
      }),
      gnp('dev-to-db', {
        selector: "app == 'db'",
        ingress: [{ action: 'Allow', source: { selector: "stage == 'development'" } }],
      }),
      gnp('dev-isolated', {
        // Applies to the endpoint through the inherited label; its own app label still wins.
        selector: "stage == 'development' && app == 'web'",
        ingress: [{ action: 'Deny' }],
      }),
    ];
    expect(reach(withProfile, 'db')).toEqual({ api: 'deny', web: 'allow', other: 'deny' });
    expect(reach(withProfile, 'web')).toEqual({ api: 'deny', db: 'deny', other: 'deny' });
  });
});

describe('untracked and pre-DNAT policies (host endpoints only)', () => {
  const base = (extra: object) =>
    parseResource({
      apiVersion: CALICO,
      kind: 'GlobalNetworkPolicy',
      metadata: { name: 'host' },
      spec: { selector: 'all()', ...extra },
    });
  const refusal = (extra: object): string => {
    try {
      base(extra);
    } catch (e) {
      if (e instanceof ResourceError) return e.message;
      throw e;
    }
    return 'accepted';
  };

  it("are refused for Calico's reasons", () => {
    expect(refusal({ doNotTrack: true })).toMatch(
      /applyOnForward: applyOnForward must be true if either preDNAT or doNotTrack is true/,
    );
    expect(refusal({ preDNAT: true, doNotTrack: true, applyOnForward: true })).toMatch(
      /preDNAT: preDNAT and doNotTrack cannot both be true/,
    );
    expect(refusal({ preDNAT: true, applyOnForward: true, egress: [{ action: 'Allow' }] })).toMatch(
      /egress: preDNAT policy cannot have any egress rules/,
    );
    expect(refusal({ preDNAT: true, applyOnForward: true, types: ['Egress'] })).toMatch(
      /types: preDNAT policy cannot have 'Egress' type/,
    );
    expect(refusal({ doNotTrack: true, applyOnForward: true })).toBe('accepted');
    expect(refusal({ preDNAT: true, applyOnForward: true, ingress: [{ action: 'Deny' }] })).toBe(
      'accepted',
    );
    expect(refusal({ doNotTrack: false, preDNAT: false })).toBe('accepted');
  });

  it('never change what pods may do', () => {
    const policies = [
      gnp('untracked-deny', {
        order: 1,
        selector: 'all()',
        doNotTrack: true,
        applyOnForward: true,
        ingress: [{ action: 'Deny' }],
        egress: [{ action: 'Deny' }],
      }),
      gnp('prednat-deny', {
        order: 1,
        selector: 'all()',
        preDNAT: true,
        applyOnForward: true,
        ingress: [{ action: 'Deny' }],
      }),
    ];
    const without = reach(baseResources(), 'db');
    expect(without).toEqual({ api: 'allow', web: 'allow', other: 'allow' });
    expect(reach([...baseResources(), ...policies], 'db')).toEqual(without);
    expect(buildWorld(modelOf([...baseResources(), ...policies])).world.policies).toEqual([]);
  });
});

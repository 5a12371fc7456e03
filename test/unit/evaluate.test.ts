import { describe, expect, it } from 'vitest';
import { evaluate, judgePacket } from '../../src/policy/evaluate.js';
import { parseResource, worldFrom } from '../../src/policy/resources.js';
import type {
  Direction,
  Endpoint,
  EntityMatch,
  NamedPort,
  Namespace,
  NetworkSet,
  Packet,
  Policy,
  Profile,
  Rule,
  Tier,
  World,
} from '../../src/policy/model.js';

// --- building worlds ------------------------------------------------------------------

function endpoint(
  namespace: string,
  name: string,
  ip: string,
  labels: Record<string, string> = {},
  extra: { profiles?: string[]; ports?: NamedPort[] } = {},
): Endpoint {
  return {
    key: `${namespace}/${name}`,
    namespace,
    name,
    ip,
    labels,
    profiles: extra.profiles ?? [`kns.${namespace}`],
    ports: extra.ports ?? [],
  };
}

const allowAll: Rule = { action: 'Allow', source: {}, destination: {} };
const kns = (ns: string): Profile => ({
  name: `kns.${ns}`,
  ingress: [allowAll],
  egress: [allowAll],
});

function world(parts: Partial<World>): World {
  return {
    endpoints: parts.endpoints ?? [],
    namespaces: parts.namespaces ?? [],
    networkSets: parts.networkSets ?? [],
    tiers: parts.tiers ?? [],
    policies: parts.policies ?? [],
    profiles: parts.profiles ?? [kns('prod'), kns('dev'), kns('other')],
  };
}

function rule(action: Rule['action'], fields: Partial<Omit<Rule, 'action'>> = {}): Rule {
  return { action, source: {}, destination: {}, ...fields };
}

function policy(name: string, fields: Partial<Policy> = {}): Policy {
  return {
    name,
    namespace: 'prod',
    tier: 'default',
    selector: 'all()',
    types: ['Ingress', 'Egress'],
    ingress: [],
    egress: [],
    ...fields,
  };
}

function globalPolicy(name: string, fields: Partial<Policy> = {}): Policy {
  const { namespace: _dropped, ...rest } = policy(name, fields);
  return rest;
}

const tcp = (saddr: string, daddr: string, dport = 80): Packet => ({
  saddr,
  daddr,
  protocol: 6,
  dport,
  sport: 40000,
});
const udp = (saddr: string, daddr: string, dport = 53): Packet => ({
  saddr,
  daddr,
  protocol: 17,
  dport,
  sport: 40000,
});
const icmp = (saddr: string, daddr: string, icmpType: number, icmpCode = 0): Packet => ({
  saddr,
  daddr,
  protocol: 1,
  dport: 0,
  sport: 0,
  icmpType,
  icmpCode,
});

/** Ingress verdict at `to` for a TCP packet from `from` (an address). */
const ingressAt = (w: World, to: Endpoint, packet: Packet) => evaluate(w, to, 'ingress', packet);
const egressAt = (w: World, from: Endpoint, packet: Packet) => evaluate(w, from, 'egress', packet);

// A small cluster: prod (team=a) and dev (team=b) namespaces.
const web = endpoint(
  'prod',
  'web',
  '10.0.0.1',
  { app: 'web' },
  { ports: [{ name: 'http', protocol: 6, port: 8080 }] },
);
const db = endpoint('prod', 'db', '10.0.0.2', { app: 'db' });
const devWeb = endpoint(
  'dev',
  'web',
  '10.0.1.1',
  { app: 'web' },
  { ports: [{ name: 'http', protocol: 6, port: 9090 }] },
);
const devClient = endpoint('dev', 'client', '10.0.1.2', { app: 'client' });
const namespaces: Namespace[] = [
  { name: 'prod', labels: { team: 'a' } },
  { name: 'dev', labels: { team: 'b' } },
];
const endpoints = [web, db, devWeb, devClient];
const OUTSIDE = '192.0.2.7';

/** A world built from user resources, exactly as the agent would. */
function k8sWorld(...specs: { name: string; namespace?: string; spec: unknown }[]): World {
  const resources = [
    ...namespaces.map((n) => parseResource({ apiVersion: 'v1', kind: 'Namespace', metadata: n })),
    ...specs.map((s) =>
      parseResource({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: s.name, namespace: s.namespace ?? 'prod' },
        spec: s.spec,
      }),
    ),
  ];
  return worldFrom(resources, endpoints);
}

// --- Kubernetes NetworkPolicy ---------------------------------------------------------

describe('Kubernetes NetworkPolicy semantics', () => {
  it('a pod selected by no policy is not isolated: its namespace profile allows it', () => {
    const w = k8sWorld();
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip))).toEqual({
      action: 'allow',
      rule: 'profile/kns.prod/ingress/0',
      logged: false,
    });
    expect(egressAt(w, web, tcp(web.ip, OUTSIDE))).toMatchObject({
      action: 'allow',
      rule: 'profile/kns.prod/egress/0',
    });
  });

  it('isolation is per direction: an ingress-only policy leaves egress open', () => {
    const w = k8sWorld({ name: 'deny-in', spec: { podSelector: { matchLabels: { app: 'web' } } } });
    expect(ingressAt(w, web, tcp(db.ip, web.ip))).toEqual({
      action: 'deny',
      rule: 'tier/default/default/ingress',
      logged: false,
    });
    expect(egressAt(w, web, tcp(web.ip, db.ip)).action).toBe('allow');
    // db is not selected: still open both ways.
    expect(ingressAt(w, db, tcp(web.ip, db.ip)).action).toBe('allow');
  });

  it('an egress policy type isolates egress only', () => {
    const w = k8sWorld({ name: 'deny-out', spec: { podSelector: {}, policyTypes: ['Egress'] } });
    expect(egressAt(w, web, tcp(web.ip, OUTSIDE))).toMatchObject({
      action: 'deny',
      rule: 'tier/default/default/egress',
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).action).toBe('allow');
  });

  it('egress rules without policyTypes isolate both directions', () => {
    const w = k8sWorld({
      name: 'out-dns',
      spec: { podSelector: {}, egress: [{ ports: [{ protocol: 'UDP', port: 53 }] }] },
    });
    expect(egressAt(w, web, udp(web.ip, OUTSIDE, 53))).toMatchObject({
      action: 'allow',
      rule: 'policy/default/prod/knp.default.out-dns/egress/0',
    });
    expect(egressAt(w, web, tcp(web.ip, OUTSIDE, 53)).action).toBe('deny');
    expect(ingressAt(w, web, tcp(db.ip, web.ip)).action).toBe('deny');
  });

  it('allow-union: a packet allowed by any selecting policy is allowed', () => {
    const w = k8sWorld(
      {
        name: 'from-db',
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          ingress: [{ from: [{ podSelector: { matchLabels: { app: 'db' } } }] }],
        },
      },
      {
        name: 'from-outside',
        spec: { podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '192.0.2.0/24' } }] }] },
      },
    );
    expect(ingressAt(w, web, tcp(db.ip, web.ip)).action).toBe('allow');
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).action).toBe('allow');
    expect(ingressAt(w, web, tcp(devClient.ip, web.ip)).action).toBe('deny');
    // db is selected by from-outside only.
    expect(ingressAt(w, db, tcp(web.ip, db.ip)).action).toBe('deny');
  });

  it('a podSelector peer only sees pods of the policy namespace', () => {
    const w = k8sWorld({
      name: 'from-web',
      namespace: 'dev',
      spec: {
        podSelector: {},
        ingress: [{ from: [{ podSelector: { matchLabels: { app: 'web' } } }] }],
      },
    });
    expect(ingressAt(w, devClient, tcp(devWeb.ip, devClient.ip)).action).toBe('allow');
    expect(ingressAt(w, devClient, tcp(web.ip, devClient.ip)).action).toBe('deny');
  });

  it('a namespaceSelector peer admits every pod of the matching namespaces', () => {
    const w = k8sWorld({
      name: 'from-b',
      spec: {
        podSelector: {},
        ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: 'b' } } }] }],
      },
    });
    expect(ingressAt(w, web, tcp(devClient.ip, web.ip)).action).toBe('allow');
    expect(ingressAt(w, web, tcp(devWeb.ip, web.ip)).action).toBe('allow');
    expect(ingressAt(w, web, tcp(db.ip, web.ip)).action).toBe('deny');
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).action).toBe('deny');
  });

  it('namespaceSelector and podSelector in one peer both have to match', () => {
    const w = k8sWorld({
      name: 'web-from-b',
      spec: {
        podSelector: {},
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchLabels: { team: 'b' } },
                podSelector: { matchLabels: { app: 'web' } },
              },
            ],
          },
        ],
      },
    });
    expect(ingressAt(w, db, tcp(devWeb.ip, db.ip)).action).toBe('allow'); // app=web in team=b
    expect(ingressAt(w, db, tcp(devClient.ip, db.ip)).action).toBe('deny'); // team=b but not app=web
    expect(ingressAt(w, db, tcp(web.ip, db.ip)).action).toBe('deny'); // app=web but team=a
  });

  it('the namespace name label of Kubernetes selects a namespace by name', () => {
    const w = k8sWorld({
      name: 'from-dev',
      spec: {
        podSelector: {},
        ingress: [
          {
            from: [
              { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'dev' } } },
            ],
          },
        ],
      },
    });
    expect(ingressAt(w, web, tcp(devClient.ip, web.ip)).action).toBe('allow');
    expect(ingressAt(w, web, tcp(db.ip, web.ip)).action).toBe('deny');
  });

  it('ipBlock admits its cidr except the excepted ranges', () => {
    const w = k8sWorld({
      name: 'block',
      spec: {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '192.0.2.0/24', except: ['192.0.2.0/28'] } }] }],
      },
    });
    expect(ingressAt(w, web, tcp('192.0.2.100', web.ip)).action).toBe('allow');
    expect(ingressAt(w, web, tcp('192.0.2.15', web.ip)).action).toBe('deny');
    expect(ingressAt(w, web, tcp('192.0.2.16', web.ip)).action).toBe('allow');
    expect(ingressAt(w, web, tcp('192.0.3.1', web.ip)).action).toBe('deny');
  });

  it('ports restrict protocol and port; endPort makes an inclusive range', () => {
    const w = k8sWorld({
      name: 'ports',
      spec: {
        podSelector: {},
        ingress: [{ ports: [{ port: 80 }, { protocol: 'UDP', port: 5000, endPort: 5010 }] }],
      },
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip, 80)).action).toBe('allow');
    expect(ingressAt(w, web, udp(OUTSIDE, web.ip, 80)).action).toBe('deny');
    expect(ingressAt(w, web, udp(OUTSIDE, web.ip, 5000)).action).toBe('allow');
    expect(ingressAt(w, web, udp(OUTSIDE, web.ip, 5010)).action).toBe('allow');
    expect(ingressAt(w, web, udp(OUTSIDE, web.ip, 5011)).action).toBe('deny');
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip, 5005)).action).toBe('deny');
  });

  it('a port entry with only a protocol admits every port of that protocol', () => {
    const w = k8sWorld({
      name: 'udp',
      spec: { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP' }] }] },
    });
    expect(ingressAt(w, web, udp(OUTSIDE, web.ip, 1)).action).toBe('allow');
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip, 1)).action).toBe('deny');
    expect(ingressAt(w, web, icmp(OUTSIDE, web.ip, 8)).action).toBe('deny');
  });

  it('an ingress named port is resolved on the receiving pod', () => {
    const w = k8sWorld({
      name: 'http',
      spec: { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] },
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip, 8080)).action).toBe('allow');
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip, 9090)).action).toBe('deny');
    expect(ingressAt(w, web, udp(OUTSIDE, web.ip, 8080)).action).toBe('deny'); // http is a TCP port
    expect(ingressAt(w, db, tcp(OUTSIDE, db.ip, 8080)).action).toBe('deny'); // db has no port "http"
  });

  it('a named port only matches when its protocol is the packet protocol', () => {
    const w = k8sWorld({
      name: 'udp-http',
      spec: { podSelector: {}, ingress: [{ ports: [{ protocol: 'UDP', port: 'http' }] }] },
    });
    expect(ingressAt(w, web, udp(OUTSIDE, web.ip, 8080)).action).toBe('deny'); // web's "http" is TCP 8080
  });

  it('an egress named port is resolved on the destination pod, wherever it runs', () => {
    const w = k8sWorld({
      name: 'to-http',
      spec: {
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [{ to: [{ namespaceSelector: {} }], ports: [{ port: 'http' }] }],
      },
    });
    expect(egressAt(w, db, tcp(db.ip, web.ip, 8080)).action).toBe('allow');
    expect(egressAt(w, db, tcp(db.ip, devWeb.ip, 9090)).action).toBe('allow');
    expect(egressAt(w, db, tcp(db.ip, devWeb.ip, 8080)).action).toBe('deny');
  });

  it('an address that is no endpoint has no named ports', () => {
    const w = k8sWorld({
      name: 'to-http',
      spec: { podSelector: {}, policyTypes: ['Egress'], egress: [{ ports: [{ port: 'http' }] }] },
    });
    expect(egressAt(w, db, tcp(db.ip, web.ip, 8080)).action).toBe('allow');
    expect(egressAt(w, db, tcp(db.ip, OUTSIDE, 8080)).action).toBe('deny');
  });

  it('an empty from admits everybody; an empty ingress list admits nobody', () => {
    const open = k8sWorld({ name: 'open', spec: { podSelector: {}, ingress: [{ from: [] }] } });
    expect(ingressAt(open, web, tcp(OUTSIDE, web.ip, 1234)).action).toBe('allow');
    const closed = k8sWorld({ name: 'closed', spec: { podSelector: {}, ingress: [] } });
    expect(ingressAt(closed, web, tcp(db.ip, web.ip)).action).toBe('deny');
  });
});

// --- tortie (Calico-shaped) policy ----------------------------------------------------

describe('tiers, order and actions', () => {
  const base = { endpoints, namespaces };

  it('returns the deciding rule as policy/<tier>/<namespace>/<name>/<direction>/<index>', () => {
    const w = world({
      ...base,
      policies: [policy('p', { ingress: [rule('Deny', { protocol: 17 }), rule('Allow')] })],
    });
    expect(ingressAt(w, web, tcp(db.ip, web.ip))).toEqual({
      action: 'allow',
      rule: 'policy/default/prod/p/ingress/1',
      logged: false,
    });
    expect(ingressAt(w, web, udp(db.ip, web.ip))).toEqual({
      action: 'deny',
      rule: 'policy/default/prod/p/ingress/0',
      logged: false,
    });
  });

  it('names a global policy by its name alone in the rule ref', () => {
    const w = world({ ...base, policies: [globalPolicy('g', { egress: [rule('Allow')] })] });
    expect(egressAt(w, web, tcp(web.ip, OUTSIDE)).rule).toBe('policy/default/g/egress/0');
  });

  it('a policy only applies to endpoints of its own namespace that its selector matches', () => {
    const w = world({
      ...base,
      policies: [policy('p', { selector: 'app == "web"', ingress: [rule('Deny')] })],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('policy/default/prod/p/ingress/0');
    expect(ingressAt(w, db, tcp(OUTSIDE, db.ip)).rule).toBe('profile/kns.prod/ingress/0');
    expect(ingressAt(w, devWeb, tcp(OUTSIDE, devWeb.ip)).rule).toBe('profile/kns.dev/ingress/0');
  });

  it('selectors see the implicit projectcalico.org/namespace label', () => {
    const w = world({
      ...base,
      policies: [
        globalPolicy('g', {
          selector: 'projectcalico.org/namespace == "dev"',
          ingress: [rule('Deny')],
        }),
      ],
    });
    expect(ingressAt(w, devWeb, tcp(OUTSIDE, devWeb.ip)).action).toBe('deny');
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).action).toBe('allow');
  });

  it('rules of a direction missing from types are ignored', () => {
    const w = world({
      ...base,
      policies: [
        policy('p', { types: ['Ingress'], ingress: [rule('Allow')], egress: [rule('Deny')] }),
      ],
    });
    expect(egressAt(w, web, tcp(web.ip, OUTSIDE)).rule).toBe('profile/kns.prod/egress/0');
  });

  it('policies run by ascending order, absent order last', () => {
    const w = world({
      ...base,
      policies: [
        policy('none', { ingress: [rule('Deny')] }),
        policy('ten', { order: 10, ingress: [rule('Deny')] }),
        policy('five', { order: 5, ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('policy/default/prod/five/ingress/0');
  });

  it('policies of equal order run by name', () => {
    const w = world({
      ...base,
      policies: [
        policy('b', { order: 1, ingress: [rule('Deny')] }),
        policy('a', { order: 1, ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('policy/default/prod/a/ingress/0');
    const unordered = world({
      ...base,
      policies: [
        policy('z', { ingress: [rule('Deny')] }),
        policy('y', { ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(unordered, web, tcp(OUTSIDE, web.ip)).rule).toBe(
      'policy/default/prod/y/ingress/0',
    );
  });

  it('order is numeric, not textual, and may be fractional', () => {
    const w = world({
      ...base,
      policies: [
        policy('a', { order: 100, ingress: [rule('Deny')] }),
        policy('b', { order: 9.5, ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('policy/default/prod/b/ingress/0');
  });

  it('a policy without a matching rule falls through to the next policy of the tier', () => {
    const w = world({
      ...base,
      policies: [
        policy('first', { order: 1, ingress: [rule('Deny', { protocol: 17 })] }),
        policy('second', { order: 2, ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe(
      'policy/default/prod/second/ingress/0',
    );
  });

  it('tiers run by ascending order, before the default tier', () => {
    const tiers: Tier[] = [
      { name: 'late', order: 200, defaultAction: 'Deny' },
      { name: 'early', order: 100, defaultAction: 'Deny' },
    ];
    const w = world({
      ...base,
      tiers,
      policies: [
        policy('d', { ingress: [rule('Deny')] }),
        policy('l', { tier: 'late', ingress: [rule('Deny')] }),
        policy('e', { tier: 'early', ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('policy/early/prod/e/ingress/0');
  });

  it('a tier without order runs after the default tier, and such tiers run by name', () => {
    const tiers: Tier[] = [
      { name: 'zz', defaultAction: 'Deny' },
      { name: 'aa', defaultAction: 'Pass' },
    ];
    const w = world({
      ...base,
      tiers,
      policies: [
        policy('d', { ingress: [rule('Pass')] }),
        policy('z', { tier: 'zz', ingress: [rule('Allow')] }),
        policy('a', { tier: 'aa', ingress: [rule('Pass')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('policy/zz/prod/z/ingress/0');
  });

  it('Pass leaves the tier at once and continues with the next tier', () => {
    const w = world({
      ...base,
      tiers: [{ name: 'sec', order: 1, defaultAction: 'Deny' }],
      policies: [
        policy('pass', { tier: 'sec', order: 1, ingress: [rule('Pass')] }),
        policy('deny', { tier: 'sec', order: 2, ingress: [rule('Deny')] }),
        policy('app', { ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('policy/default/prod/app/ingress/0');
  });

  it("a tier's Deny default applies when none of its rules match", () => {
    const w = world({
      ...base,
      tiers: [{ name: 'sec', order: 1, defaultAction: 'Deny' }],
      policies: [
        policy('udp-only', { tier: 'sec', ingress: [rule('Allow', { protocol: 17 })] }),
        policy('app', { ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip))).toEqual({
      action: 'deny',
      rule: 'tier/sec/default/ingress',
      logged: false,
    });
  });

  it('a tier with defaultAction Pass hands unmatched packets to the next tier', () => {
    const w = world({
      ...base,
      tiers: [{ name: 'sec', order: 1, defaultAction: 'Pass' }],
      policies: [
        policy('udp-only', { tier: 'sec', ingress: [rule('Deny', { protocol: 17 })] }),
        policy('app', { ingress: [rule('Allow')] }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('policy/default/prod/app/ingress/0');
    expect(ingressAt(w, web, udp(OUTSIDE, web.ip)).rule).toBe('policy/sec/prod/udp-only/ingress/0');
  });

  it('a tier that applies to no policy of the endpoint is skipped, default action and all', () => {
    const w = world({
      ...base,
      tiers: [{ name: 'sec', order: 1, defaultAction: 'Deny' }],
      policies: [
        policy('only-db', {
          tier: 'sec',
          selector: 'app == "db"',
          ingress: [rule('Allow', { protocol: 17 })],
        }),
      ],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('profile/kns.prod/ingress/0');
    expect(ingressAt(w, db, tcp(OUTSIDE, db.ip)).rule).toBe('tier/sec/default/ingress');
  });

  it('Log notes the packet and walking continues to the deciding rule', () => {
    const w = world({ ...base, policies: [policy('p', { ingress: [rule('Log'), rule('Deny')] })] });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip))).toEqual({
      action: 'deny',
      rule: 'policy/default/prod/p/ingress/1',
      logged: true,
    });
  });

  it('a Log in an earlier tier stays noted through Pass and into the profiles', () => {
    const w = world({
      ...base,
      tiers: [{ name: 'sec', order: 1, defaultAction: 'Pass' }],
      policies: [policy('log', { tier: 'sec', ingress: [rule('Log')] })],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip))).toEqual({
      action: 'allow',
      rule: 'profile/kns.prod/ingress/0',
      logged: true,
    });
  });

  it('a Log that does not match notes nothing', () => {
    const w = world({
      ...base,
      policies: [policy('p', { ingress: [rule('Log', { protocol: 17 }), rule('Allow')] })],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).logged).toBe(false);
  });

  it('a global policy with namespaceSelector applies only in matching namespaces', () => {
    const w = world({
      ...base,
      policies: [
        globalPolicy('team-b', { namespaceSelector: 'team == "b"', ingress: [rule('Deny')] }),
      ],
    });
    expect(ingressAt(w, devWeb, tcp(OUTSIDE, devWeb.ip)).rule).toBe(
      'policy/default/team-b/ingress/0',
    );
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('profile/kns.prod/ingress/0');
  });

  it('a namespace missing from the world has no labels for namespaceSelectors', () => {
    const lost = endpoint('lost', 'pod', '10.0.9.9', {}, { profiles: [] });
    const w = world({
      endpoints: [...endpoints, lost],
      namespaces,
      policies: [
        globalPolicy('has-team', {
          order: 1,
          namespaceSelector: 'has(team)',
          ingress: [rule('Allow')],
        }),
        globalPolicy('no-team', {
          order: 2,
          namespaceSelector: '!has(team)',
          ingress: [rule('Deny')],
        }),
      ],
    });
    expect(ingressAt(w, lost, tcp(OUTSIDE, lost.ip)).rule).toBe('policy/default/no-team/ingress/0');
  });
});

describe('profiles', () => {
  const base = { endpoints, namespaces };

  it('profiles decide after every tier passed', () => {
    const w = world({
      ...base,
      tiers: [{ name: 'sec', order: 1, defaultAction: 'Deny' }],
      policies: [policy('pass', { tier: 'sec', ingress: [rule('Pass')] })],
    });
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).rule).toBe('profile/kns.prod/ingress/0');
  });

  it('an endpoint without profiles and without policy is denied', () => {
    const bare = endpoint('prod', 'bare', '10.0.0.9', {}, { profiles: [] });
    const w = world({ ...base, endpoints: [...endpoints, bare] });
    expect(ingressAt(w, bare, tcp(OUTSIDE, bare.ip))).toEqual({
      action: 'deny',
      rule: 'profiles/default/ingress',
      logged: false,
    });
    expect(egressAt(w, bare, tcp(bare.ip, OUTSIDE)).rule).toBe('profiles/default/egress');
  });

  it('profiles run in the endpoint order and the first matching rule decides', () => {
    const p1: Profile = { name: 'p1', ingress: [rule('Deny', { protocol: 17 })], egress: [] };
    const p2: Profile = { name: 'p2', ingress: [rule('Allow')], egress: [] };
    const ep = endpoint('prod', 'x', '10.0.0.9', {}, { profiles: ['p1', 'p2'] });
    const w = world({ ...base, endpoints: [...endpoints, ep], profiles: [p2, p1] });
    expect(ingressAt(w, ep, udp(OUTSIDE, ep.ip)).rule).toBe('profile/p1/ingress/0');
    expect(ingressAt(w, ep, tcp(OUTSIDE, ep.ip)).rule).toBe('profile/p2/ingress/0');
  });

  it('no matching profile rule means deny', () => {
    const p1: Profile = { name: 'p1', ingress: [rule('Allow', { protocol: 17 })], egress: [] };
    const ep = endpoint('prod', 'x', '10.0.0.9', {}, { profiles: ['p1'] });
    const w = world({ ...base, endpoints: [...endpoints, ep], profiles: [p1] });
    expect(ingressAt(w, ep, tcp(OUTSIDE, ep.ip)).rule).toBe('profiles/default/ingress');
  });

  it('Pass in a profile ends profile evaluation as a deny', () => {
    const p1: Profile = { name: 'p1', ingress: [rule('Pass')], egress: [] };
    const p2: Profile = { name: 'p2', ingress: [rule('Allow')], egress: [] };
    const ep = endpoint('prod', 'x', '10.0.0.9', {}, { profiles: ['p1', 'p2'] });
    const w = world({ ...base, endpoints: [...endpoints, ep], profiles: [p1, p2] });
    expect(ingressAt(w, ep, tcp(OUTSIDE, ep.ip))).toEqual({
      action: 'deny',
      rule: 'profiles/default/ingress',
      logged: false,
    });
  });

  it('Log in a profile notes and continues', () => {
    const p1: Profile = { name: 'p1', ingress: [rule('Log'), rule('Allow')], egress: [] };
    const ep = endpoint('prod', 'x', '10.0.0.9', {}, { profiles: ['p1'] });
    const w = world({ ...base, endpoints: [...endpoints, ep], profiles: [p1] });
    expect(ingressAt(w, ep, tcp(OUTSIDE, ep.ip))).toEqual({
      action: 'allow',
      rule: 'profile/p1/ingress/1',
      logged: true,
    });
  });

  it("a profile rule's selector sees endpoints of every namespace", () => {
    const p1: Profile = {
      name: 'p1',
      ingress: [rule('Allow', { source: { selector: 'app == "client"' } })],
      egress: [],
    };
    const ep = endpoint('prod', 'x', '10.0.0.9', {}, { profiles: ['p1'] });
    const w = world({ ...base, endpoints: [...endpoints, ep], profiles: [p1] });
    expect(ingressAt(w, ep, tcp(devClient.ip, ep.ip)).action).toBe('allow');
    expect(ingressAt(w, ep, tcp(web.ip, ep.ip)).action).toBe('deny');
  });
});

describe('rule matching', () => {
  const base = { endpoints, namespaces };
  /** The ingress verdict at web for `packet` under one policy with `rules` then a Deny. */
  const withIngress = (rules: Rule[], extra: Partial<World> = {}) =>
    world({ ...base, ...extra, policies: [policy('p', { ingress: [...rules, rule('Deny')] })] });
  const decidedBy = (w: World, packet: Packet, at: Endpoint = web, d: Direction = 'ingress') =>
    evaluate(w, at, d, packet).rule;
  const FIRST = 'policy/default/prod/p/ingress/0';

  it('protocol matches by number, whatever its name', () => {
    const w = withIngress([rule('Allow', { protocol: 47 })]);
    expect(decidedBy(w, { saddr: OUTSIDE, daddr: web.ip, protocol: 47, dport: 0, sport: 0 })).toBe(
      FIRST,
    );
    expect(decidedBy(w, tcp(OUTSIDE, web.ip))).not.toBe(FIRST);
  });

  it('notProtocol matches every other protocol', () => {
    const w = withIngress([rule('Allow', { notProtocol: 6 })]);
    expect(decidedBy(w, udp(OUTSIDE, web.ip))).toBe(FIRST);
    expect(decidedBy(w, tcp(OUTSIDE, web.ip))).not.toBe(FIRST);
  });

  it('icmp matches type, and code when given', () => {
    const w = withIngress([
      rule('Allow', { protocol: 1, icmp: { type: 3, code: 4 } }),
      rule('Allow', { protocol: 1, icmp: { type: 8 } }),
    ]);
    expect(decidedBy(w, icmp(OUTSIDE, web.ip, 3, 4))).toBe(FIRST);
    expect(decidedBy(w, icmp(OUTSIDE, web.ip, 3, 1))).toBe('policy/default/prod/p/ingress/2');
    expect(decidedBy(w, icmp(OUTSIDE, web.ip, 8, 0))).toBe('policy/default/prod/p/ingress/1');
    expect(decidedBy(w, icmp(OUTSIDE, web.ip, 8, 9))).toBe('policy/default/prod/p/ingress/1');
  });

  it('notICMP matches ICMP packets of any other type or code', () => {
    const w = withIngress([rule('Allow', { protocol: 1, notICMP: { type: 8, code: 0 } })]);
    expect(decidedBy(w, icmp(OUTSIDE, web.ip, 0, 0))).toBe(FIRST);
    expect(decidedBy(w, icmp(OUTSIDE, web.ip, 8, 1))).toBe(FIRST);
    expect(decidedBy(w, icmp(OUTSIDE, web.ip, 8, 0))).not.toBe(FIRST);
  });

  it('ports match numbers and inclusive ranges; notPorts matches when none does', () => {
    const ports: EntityMatch['ports'] = [
      { kind: 'range', from: 80, to: 80 },
      { kind: 'range', from: 1000, to: 1002 },
    ];
    const w = withIngress([rule('Allow', { protocol: 6, destination: { ports } })]);
    for (const p of [80, 1000, 1002]) expect(decidedBy(w, tcp(OUTSIDE, web.ip, p))).toBe(FIRST);
    for (const p of [81, 999, 1003]) expect(decidedBy(w, tcp(OUTSIDE, web.ip, p))).not.toBe(FIRST);
    const not = withIngress([rule('Allow', { protocol: 6, destination: { notPorts: ports } })]);
    for (const p of [80, 1000, 1002])
      expect(decidedBy(not, tcp(OUTSIDE, web.ip, p))).not.toBe(FIRST);
    for (const p of [81, 999, 1003]) expect(decidedBy(not, tcp(OUTSIDE, web.ip, p))).toBe(FIRST);
  });

  it('notPorts with a named port excludes the port the name resolves to', () => {
    const w = withIngress([
      rule('Allow', { protocol: 6, destination: { notPorts: [{ kind: 'named', name: 'http' }] } }),
    ]);
    expect(decidedBy(w, tcp(OUTSIDE, web.ip, 8080))).not.toBe(FIRST);
    expect(decidedBy(w, tcp(OUTSIDE, web.ip, 9090))).toBe(FIRST);
  });

  it('nets match the peer address; notNets match when no net holds it', () => {
    const w = withIngress([rule('Allow', { source: { nets: ['192.0.2.0/24', '198.51.100.1'] } })]);
    expect(decidedBy(w, tcp('192.0.2.200', web.ip))).toBe(FIRST);
    expect(decidedBy(w, tcp('198.51.100.1', web.ip))).toBe(FIRST);
    expect(decidedBy(w, tcp('198.51.100.2', web.ip))).not.toBe(FIRST);
    const not = withIngress([rule('Allow', { source: { notNets: ['10.0.0.0/8'] } })]);
    expect(decidedBy(not, tcp(OUTSIDE, web.ip))).toBe(FIRST);
    expect(decidedBy(not, tcp(db.ip, web.ip))).not.toBe(FIRST);
  });

  it('a net with host bits set is taken as its network', () => {
    const w = withIngress([rule('Allow', { source: { nets: ['192.0.2.77/24'] } })]);
    expect(decidedBy(w, tcp('192.0.2.1', web.ip))).toBe(FIRST);
  });

  it('0.0.0.0/0 holds every address', () => {
    const w = withIngress([rule('Allow', { source: { nets: ['0.0.0.0/0'] } })]);
    expect(decidedBy(w, tcp('255.255.255.255', web.ip))).toBe(FIRST);
  });

  it("a namespaced policy's rule selector sees only its own namespace", () => {
    const w = withIngress([rule('Allow', { source: { selector: 'app == "web"' } })]);
    expect(decidedBy(w, tcp(devWeb.ip, db.ip), db)).not.toBe(FIRST);
    expect(decidedBy(w, tcp(web.ip, db.ip), db)).toBe(FIRST);
  });

  it('a rule namespaceSelector widens the scope to the matching namespaces only', () => {
    const w = withIngress([
      rule('Allow', { source: { selector: 'app == "web"', namespaceSelector: 'team == "b"' } }),
    ]);
    expect(decidedBy(w, tcp(devWeb.ip, db.ip), db)).toBe(FIRST);
    expect(decidedBy(w, tcp(web.ip, db.ip), db)).not.toBe(FIRST);
  });

  it('notSelector matches peers that are no in-scope endpoint it selects', () => {
    const w = withIngress([rule('Allow', { source: { notSelector: 'app == "web"' } })]);
    expect(decidedBy(w, tcp(web.ip, db.ip), db)).not.toBe(FIRST);
    expect(decidedBy(w, tcp(devWeb.ip, db.ip), db)).toBe(FIRST); // out of scope
    expect(decidedBy(w, tcp(OUTSIDE, db.ip), db)).toBe(FIRST);
  });

  it('namespaceSelector with notSelector: an endpoint of those namespaces that notSelector does not select', () => {
    const w = withIngress([
      rule('Allow', { source: { namespaceSelector: 'team == "b"', notSelector: 'app == "web"' } }),
    ]);
    expect(decidedBy(w, tcp(devClient.ip, db.ip), db)).toBe(FIRST);
    expect(decidedBy(w, tcp(devWeb.ip, db.ip), db)).not.toBe(FIRST);
    expect(decidedBy(w, tcp(OUTSIDE, db.ip), db)).not.toBe(FIRST);
  });

  it('local-side fields test the endpoint itself', () => {
    const w = withIngress([
      rule('Allow', {
        destination: {
          selector: 'app == "db"',
          nets: ['10.0.0.2/32'],
          namespaceSelector: 'team == "a"',
        },
      }),
    ]);
    expect(decidedBy(w, tcp(OUTSIDE, db.ip), db)).toBe(FIRST);
    expect(decidedBy(w, tcp(OUTSIDE, web.ip), web)).not.toBe(FIRST);
    const not = withIngress([rule('Allow', { destination: { notSelector: 'app == "db"' } })]);
    expect(decidedBy(not, tcp(OUTSIDE, db.ip), db)).not.toBe(FIRST);
    expect(decidedBy(not, tcp(OUTSIDE, web.ip), web)).toBe(FIRST);
  });

  it('an egress rule matches the peer on the destination side and the endpoint on the source side', () => {
    const w = world({
      ...base,
      policies: [
        policy('p', {
          egress: [
            rule('Allow', {
              source: { selector: 'app == "web"' },
              destination: { selector: 'app == "db"' },
            }),
            rule('Deny'),
          ],
        }),
      ],
    });
    expect(decidedBy(w, tcp(web.ip, db.ip), web, 'egress')).toBe('policy/default/prod/p/egress/0');
    expect(decidedBy(w, tcp(db.ip, web.ip), db, 'egress')).toBe('policy/default/prod/p/egress/1');
  });

  it('all fields of a rule must match', () => {
    const w = withIngress([
      rule('Allow', {
        protocol: 6,
        source: { nets: ['192.0.2.0/24'] },
        destination: { ports: [{ kind: 'range', from: 80, to: 80 }] },
      }),
    ]);
    expect(decidedBy(w, tcp(OUTSIDE, web.ip, 80))).toBe(FIRST);
    expect(decidedBy(w, tcp(OUTSIDE, web.ip, 81))).not.toBe(FIRST);
    expect(decidedBy(w, udp(OUTSIDE, web.ip, 80))).not.toBe(FIRST);
    expect(decidedBy(w, tcp(db.ip, web.ip, 80))).not.toBe(FIRST);
  });
});

describe('network sets', () => {
  const base = { endpoints, namespaces };
  const prodSet: NetworkSet = {
    name: 'partners',
    namespace: 'prod',
    labels: { role: 'partner' },
    nets: ['198.51.100.0/24'],
  };
  const globalSet: NetworkSet = {
    name: 'scanners',
    labels: { role: 'scanner' },
    nets: ['203.0.113.0/24', '203.0.114.5'],
  };
  const sets = [prodSet, globalSet];

  it('a namespaced policy rule selector matches the nets of its namespace network sets', () => {
    const w = world({
      ...base,
      networkSets: sets,
      policies: [
        policy('p', { ingress: [rule('Allow', { source: { selector: 'role == "partner"' } })] }),
      ],
    });
    expect(ingressAt(w, web, tcp('198.51.100.9', web.ip)).action).toBe('allow');
    expect(ingressAt(w, web, tcp('198.51.101.9', web.ip)).action).toBe('deny');
  });

  it('a namespaced policy does not see global network sets or other namespaces sets', () => {
    const devSet: NetworkSet = { ...prodSet, namespace: 'dev' };
    const w = world({
      ...base,
      networkSets: [devSet, globalSet],
      policies: [policy('p', { ingress: [rule('Allow', { source: { selector: 'has(role)' } })] })],
    });
    expect(ingressAt(w, web, tcp('198.51.100.9', web.ip)).action).toBe('deny');
    expect(ingressAt(w, web, tcp('203.0.113.1', web.ip)).action).toBe('deny');
  });

  it('a global policy rule selector sees global network sets but not namespaced ones', () => {
    const w = world({
      ...base,
      networkSets: sets,
      policies: [
        globalPolicy('g', { ingress: [rule('Deny', { source: { selector: 'has(role)' } })] }),
      ],
    });
    expect(ingressAt(w, web, tcp('203.0.113.1', web.ip)).rule).toBe('policy/default/g/ingress/0');
    expect(ingressAt(w, web, tcp('203.0.114.5', web.ip)).rule).toBe('policy/default/g/ingress/0');
    expect(ingressAt(w, web, tcp('198.51.100.9', web.ip)).rule).toBe(
      'tier/default/default/ingress',
    );
  });

  it('a rule namespaceSelector brings in the namespaced sets of the matching namespaces', () => {
    const w = world({
      ...base,
      networkSets: sets,
      policies: [
        globalPolicy('g', {
          ingress: [
            rule('Allow', { source: { namespaceSelector: 'team == "a"', selector: 'has(role)' } }),
          ],
        }),
      ],
    });
    expect(ingressAt(w, devWeb, tcp('198.51.100.9', devWeb.ip)).action).toBe('allow');
    expect(ingressAt(w, devWeb, tcp('203.0.113.1', devWeb.ip)).action).toBe('deny');
  });

  it('notSelector refuses addresses inside a selected network set', () => {
    const w = world({
      ...base,
      networkSets: sets,
      policies: [
        globalPolicy('g', {
          ingress: [rule('Allow', { source: { notSelector: 'role == "scanner"' } })],
        }),
      ],
    });
    expect(ingressAt(w, web, tcp('203.0.113.1', web.ip)).action).toBe('deny');
    expect(ingressAt(w, web, tcp(OUTSIDE, web.ip)).action).toBe('allow');
  });
});

describe('judgePacket', () => {
  const w = world({
    endpoints,
    namespaces,
    policies: [
      policy('web-out', {
        selector: 'app == "web"',
        types: ['Egress'],
        egress: [rule('Allow', { destination: { selector: 'app == "db"' } })],
      }),
      policy('db-in', {
        selector: 'app == "db"',
        types: ['Ingress'],
        ingress: [
          rule('Allow', {
            protocol: 6,
            destination: { ports: [{ kind: 'range', from: 5432, to: 5432 }] },
          }),
        ],
      }),
    ],
  });

  it('allows a packet only when the sender egress and the receiver ingress both allow it', () => {
    const ok = judgePacket(w, tcp(web.ip, db.ip, 5432), { sender: web, receiver: db });
    expect(ok.allowed).toBe(true);
    expect(ok.egress?.rule).toBe('policy/default/prod/web-out/egress/0');
    expect(ok.ingress?.rule).toBe('policy/default/prod/db-in/ingress/0');
    const wrongPort = judgePacket(w, tcp(web.ip, db.ip, 80), { sender: web, receiver: db });
    expect(wrongPort).toMatchObject({
      allowed: false,
      egress: { action: 'allow' },
      ingress: { action: 'deny' },
    });
    const wrongPeer = judgePacket(w, tcp(web.ip, devWeb.ip, 5432), {
      sender: web,
      receiver: devWeb,
    });
    expect(wrongPeer).toMatchObject({
      allowed: false,
      egress: { action: 'deny' },
      ingress: { action: 'allow' },
    });
  });

  it('judges only the local ends', () => {
    const fromOutside = judgePacket(w, tcp(OUTSIDE, db.ip, 5432), { receiver: db });
    expect(fromOutside.allowed).toBe(true);
    expect(fromOutside.egress).toBeUndefined();
    const toOutside = judgePacket(w, tcp(web.ip, OUTSIDE, 5432), { sender: web });
    expect(toOutside.allowed).toBe(false);
    expect(toOutside.ingress).toBeUndefined();
  });

  it("a pod's packet to its own node: egress first, then the endpoint-to-host action", () => {
    const NODE = '192.168.7.1';
    const toNode = (sender: Endpoint, toHost: 'Drop' | 'Accept' | 'Return') =>
      judgePacket(w, tcp(sender.ip, NODE, 22), { sender, toHost });
    // devWeb: no policy selects it, its namespace profile allows all egress.
    expect(toNode(devWeb, 'Drop')).toMatchObject({
      allowed: false,
      egress: { action: 'allow' },
      toHost: 'Drop',
    });
    expect(toNode(devWeb, 'Accept')).toMatchObject({ allowed: true, toHost: 'Accept' });
    expect(toNode(devWeb, 'Return')).toMatchObject({ allowed: true, toHost: 'Return' });
    // web's egress allows only db: the policy decides, the action never gets a say.
    const denied = toNode(web, 'Accept');
    expect(denied).toMatchObject({ allowed: false, egress: { action: 'deny' } });
    expect(denied.toHost).toBeUndefined();
    expect(() => judgePacket(w, tcp(web.ip, db.ip, 1), { receiver: db, toHost: 'Drop' })).toThrow(
      /toHost needs a sender/,
    );
  });
});

describe('scale', () => {
  // How fast is for the benchmarks; here: it gets through, and the judgements are mixed.
  it('judges 2,500 endpoint pairs against 10,000 rules', () => {
    const eps = Array.from({ length: 50 }, (_, i) =>
      endpoint(i % 2 === 0 ? 'prod' : 'dev', `pod${i}`, `10.1.0.${i + 1}`, {
        app: `a${i % 7}`,
        idx: String(i),
      }),
    );
    const policies = Array.from({ length: 100 }, (_, p) =>
      policy(`p${p}`, {
        namespace: p % 2 === 0 ? 'prod' : 'dev',
        order: p,
        selector: `app == "a${p % 7}"`,
        ingress: Array.from({ length: 50 }, (_, r) =>
          rule(r % 10 === 9 ? 'Allow' : 'Deny', {
            protocol: 6,
            source: { selector: `idx == "${(p * 50 + r) % 60}"` },
            destination: { ports: [{ kind: 'range', from: 1000 + r, to: 1000 + r }] },
          }),
        ),
        egress: Array.from({ length: 50 }, (_, r) =>
          rule('Allow', { destination: { nets: [`10.1.0.${r}/32`] } }),
        ),
      }),
    );
    const w = world({ endpoints: eps, namespaces, policies });
    let allowed = 0;
    for (const a of eps)
      for (const b of eps)
        if (judgePacket(w, tcp(a.ip, b.ip, 1009), { sender: a, receiver: b }).allowed) allowed++;
    expect(allowed).toBeGreaterThan(0);
    expect(allowed).toBeLessThan(eps.length * eps.length);
  });
});

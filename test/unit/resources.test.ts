import { describe, expect, it } from 'vitest';
import {
  parseResource,
  ResourceError,
  worldFrom,
  type Resource,
} from '../../src/policy/resources.js';
import type { Endpoint, Policy, Rule } from '../../src/policy/model.js';

// --- builders -------------------------------------------------------------------------

const meta = (extra: Record<string, unknown> = {}) => ({ name: 'p', namespace: 'prod', ...extra });
const tnp = (spec: unknown, metadata: Record<string, unknown> = meta()) => ({
  apiVersion: 'tortie.io/v1',
  kind: 'NetworkPolicy',
  metadata,
  spec,
});
const gnp = (spec: unknown, metadata: Record<string, unknown> = { name: 'g' }) => ({
  apiVersion: 'tortie.io/v1',
  kind: 'GlobalNetworkPolicy',
  metadata,
  spec,
});
const knp = (
  spec: unknown,
  metadata: Record<string, unknown> = { name: 'web', namespace: 'prod' },
) => ({
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata,
  spec,
});
const tortie = (kind: string, metadata: Record<string, unknown>, spec?: unknown) => ({
  apiVersion: 'tortie.io/v1',
  kind,
  metadata,
  ...(spec === undefined ? {} : { spec }),
});
/** A tortie NetworkPolicy with one ingress rule. */
const ingressRule = (r: Record<string, unknown>) => tnp({ ingress: [{ action: 'Allow', ...r }] });

function refusal(obj: unknown): ResourceError {
  try {
    parseResource(obj);
  } catch (err) {
    if (err instanceof ResourceError) return err;
    throw err;
  }
  throw new Error(`accepted, but should have been refused: ${JSON.stringify(obj)}`);
}

function policyOf(obj: unknown): Policy {
  const r = parseResource(obj);
  if (!('policy' in r)) throw new Error(`${r.kind} is not a policy`);
  return r.policy;
}

const allow = (fields: Partial<Rule> = {}): Rule => ({
  action: 'Allow',
  source: {},
  destination: {},
  ...fields,
});

// --- refusals -------------------------------------------------------------------------

describe('parseResource refuses invalid objects, naming the field', () => {
  it.each<[string, unknown, string, RegExp]>([
    // envelope
    ['a non-object', 'NetworkPolicy', '', /expected an object/],
    [
      'an unknown apiVersion',
      { apiVersion: 'projectcalico.org/v9', kind: 'NetworkPolicy' },
      'apiVersion',
      /unknown apiVersion/,
    ],
    [
      'an unknown kind',
      { apiVersion: 'tortie.io/v1', kind: 'HostEndpoint', metadata: { name: 'x' } },
      'kind',
      /unknown kind "HostEndpoint"/,
    ],
    ['an unknown top-level field', { ...tnp({}), specs: {} }, 'specs', /unknown field/],
    // metadata
    [
      'a name that is not a DNS name',
      tnp({}, meta({ name: 'My_Policy' })),
      'metadata.name',
      /"My_Policy" is not a valid name/,
    ],
    [
      'a missing name',
      tnp({}, { namespace: 'prod' }),
      'metadata.name',
      /required field is missing/,
    ],
    [
      'a namespace that is not a DNS label',
      tnp({}, meta({ namespace: 'Prod' })),
      'metadata.namespace',
      /not a DNS label/,
    ],
    [
      'a namespace on a GlobalNetworkPolicy',
      gnp({}, { name: 'g', namespace: 'prod' }),
      'metadata.namespace',
      /cluster-scoped/,
    ],
    [
      'a tortie policy name reserved for Kubernetes policies',
      tnp({}, meta({ name: 'knp.default.web' })),
      'metadata.name',
      /reserved/,
    ],
    [
      'a profile name reserved for namespace profiles',
      tortie('Profile', { name: 'kns.prod' }),
      'metadata.name',
      /reserved/,
    ],
    [
      'a bad label key',
      tortie('GlobalNetworkSet', { name: 'g', labels: { 'bad key': 'x' } }),
      'metadata.labels["bad key"]',
      /not a qualified name/,
    ],
    [
      'a bad label value',
      tortie('GlobalNetworkSet', { name: 'g', labels: { role: 'a b' } }),
      'metadata.labels.role',
      /label value "a b"/,
    ],
    // policy spec
    ['an unknown spec field', tnp({ selectr: 'all()' }), 'spec.selectr', /unknown field/],
    [
      'a namespaceSelector on a namespaced policy',
      tnp({ namespaceSelector: 'all()' }),
      'spec.namespaceSelector',
      /unknown field/,
    ],
    [
      'an invalid policy selector',
      tnp({ selector: 'app = "web"' }),
      'spec.selector',
      /selector "app = \\"web\\"": .* at position 4/,
    ],
    [
      'an invalid global namespaceSelector',
      gnp({ namespaceSelector: 'has(' }),
      'spec.namespaceSelector',
      /at position 4/,
    ],
    [
      'a tier name that is not a DNS label',
      tnp({ tier: 'Security' }),
      'spec.tier',
      /"Security" is not a DNS label/,
    ],
    [
      'an order that is not a number',
      tnp({ order: 'first' }),
      'spec.order',
      /order must be a finite number/,
    ],
    [
      'an unknown type',
      tnp({ types: ['Forward'] }),
      'spec.types[0]',
      /"Forward" is not one of Ingress, Egress/,
    ],
    ['a repeated type', tnp({ types: ['Ingress', 'Ingress'] }), 'spec.types[1]', /listed twice/],
    [
      'rules that are not a list',
      tnp({ ingress: { action: 'Allow' } }),
      'spec.ingress',
      /expected array, got object/,
    ],
    // rules
    [
      'an unknown action',
      tnp({ egress: [{ action: 'allow' }] }),
      'spec.egress[0].action',
      /unknown action "allow"/,
    ],
    [
      'a missing action',
      tnp({ ingress: [{ protocol: 'TCP' }] }),
      'spec.ingress[0].action',
      /action is required/,
    ],
    [
      'an unknown rule field',
      ingressRule({ destinaton: {} }),
      'spec.ingress[0].destinaton',
      /^unknown field \(did you mean destination\?\)$/,
    ],
    [
      'an http match',
      ingressRule({ http: { methods: ['GET'] } }),
      'spec.ingress[0].http',
      /http matches are not supported/,
    ],
    [
      'a service account name that is not a name',
      ingressRule({ source: { serviceAccounts: { names: ['Not_A_Name'] } } }),
      'spec.ingress[0].source.serviceAccounts.names[0]',
      /is not a valid name/,
    ],
    [
      'ipVersion 6',
      ingressRule({ ipVersion: 6 }),
      'spec.ingress[0].ipVersion',
      /ipVersion 6: dual stack is not yet supported/,
    ],
    [
      'an unknown protocol name',
      ingressRule({ protocol: 'GRE' }),
      'spec.ingress[0].protocol',
      /unknown protocol "GRE"/,
    ],
    [
      'a protocol number out of range',
      ingressRule({ notProtocol: 256 }),
      'spec.ingress[0].notProtocol',
      /protocol 256 is out of range 1-255/,
    ],
    ['ICMPv6', ingressRule({ protocol: 'ICMPv6' }), 'spec.ingress[0].protocol', /IPv4 only/],
    [
      'icmp without protocol ICMP',
      ingressRule({ protocol: 'TCP', icmp: { type: 8 } }),
      'spec.ingress[0].icmp',
      /icmp needs protocol ICMP/,
    ],
    [
      'notICMP without a protocol',
      ingressRule({ notICMP: { type: 8 } }),
      'spec.ingress[0].notICMP',
      /notICMP needs protocol ICMP/,
    ],
    [
      'an icmp type out of range',
      ingressRule({ protocol: 'ICMP', icmp: { type: 255 } }),
      'spec.ingress[0].icmp.type',
      /icmp type 255 is out of range 0-254/,
    ],
    [
      'an icmp code out of range',
      ingressRule({ protocol: 'ICMP', icmp: { type: 3, code: 256 } }),
      'spec.ingress[0].icmp.code',
      /icmp code 256 is out of range 0-255/,
    ],
    [
      'an icmp code without type',
      ingressRule({ protocol: 'ICMP', icmp: { code: 1 } }),
      'spec.ingress[0].icmp.type',
      /icmp type is required/,
    ],
    [
      'an unknown entity field',
      ingressRule({ source: { net: '10.0.0.0/8' } }),
      'spec.ingress[0].source.net',
      /unknown field/,
    ],
    [
      'a port out of range',
      ingressRule({ protocol: 'TCP', destination: { ports: [80, 70000] } }),
      'spec.ingress[0].destination.ports[1]',
      /^port 70000 is out of range 1-65535$/,
    ],
    [
      'port 0',
      ingressRule({ protocol: 'TCP', destination: { ports: ['0'] } }),
      'spec.ingress[0].destination.ports[0]',
      /port 0 is out of range/,
    ],
    [
      'a range that runs backwards',
      ingressRule({ protocol: 'UDP', destination: { ports: ['90:80'] } }),
      'spec.ingress[0].destination.ports[0]',
      /runs backwards/,
    ],
    [
      'a range end out of range',
      ingressRule({ protocol: 'UDP', destination: { ports: ['80:65536'] } }),
      'spec.ingress[0].destination.ports[0]',
      /port 65536 is out of range/,
    ],
    [
      'an invalid port name',
      ingressRule({ protocol: 'TCP', destination: { ports: ['HTTP!'] } }),
      'spec.ingress[0].destination.ports[0]',
      /port name "HTTP!" is not valid/,
    ],
    [
      'a fractional port',
      ingressRule({ protocol: 'TCP', destination: { ports: [80.5] } }),
      'spec.ingress[0].destination.ports[0]',
      /not an integer/,
    ],
    [
      'ports without a protocol',
      ingressRule({ destination: { ports: [80] } }),
      'spec.ingress[0].destination.ports',
      /need protocol TCP, UDP, SCTP or UDPLite/,
    ],
    [
      'ports with protocol ICMP',
      ingressRule({ protocol: 'ICMP', destination: { ports: [80] } }),
      'spec.ingress[0].destination.ports',
      /need protocol/,
    ],
    [
      'notPorts with only notProtocol',
      ingressRule({ notProtocol: 'UDP', destination: { notPorts: [80] } }),
      'spec.ingress[0].destination.notPorts',
      /need protocol/,
    ],
    [
      'source ports without a protocol',
      ingressRule({ source: { ports: [1234] } }),
      'spec.ingress[0].source.ports',
      /need protocol TCP, UDP, SCTP or UDPLite/,
    ],
    [
      'source notPorts with protocol ICMP',
      tnp({ egress: [{ action: 'Deny', protocol: 'ICMP', source: { notPorts: ['1:1023'] } }] }),
      'spec.egress[0].source.notPorts',
      /need protocol/,
    ],
    [
      'a CIDR with a prefix over 32',
      ingressRule({ source: { nets: ['10.0.0.0/33'] } }),
      'spec.ingress[0].source.nets[0]',
      /prefix length "33"/,
    ],
    [
      'an address that is not IPv4',
      ingressRule({ destination: { notNets: ['10.0.0'] } }),
      'spec.ingress[0].destination.notNets[0]',
      /not an IPv4 address/,
    ],
    [
      'an IPv6 CIDR',
      ingressRule({ source: { nets: ['fd00::/8'] } }),
      'spec.ingress[0].source.nets[0]',
      /IPv4 only/,
    ],
    [
      'an invalid rule selector',
      ingressRule({ source: { selector: 'role in {"a"' } }),
      'spec.ingress[0].source.selector',
      /selector "role in {\\"a\\"": expected "," or "}"/,
    ],
    [
      'an invalid rule notSelector',
      ingressRule({ destination: { notSelector: '!' } }),
      'spec.ingress[0].destination.notSelector',
      /at position 1/,
    ],
    [
      'an invalid rule namespaceSelector',
      ingressRule({ source: { namespaceSelector: 'team ==' } }),
      'spec.ingress[0].source.namespaceSelector',
      /expected a quoted value/,
    ],
    // tiers, profiles, sets
    [
      'a tier name that is not a DNS label',
      tortie('Tier', { name: 'sec.ops' }),
      'metadata.name',
      /not a DNS label/,
    ],
    [
      'an unknown tier defaultAction',
      tortie('Tier', { name: 'sec' }, { defaultAction: 'Allow' }),
      'spec.defaultAction',
      /"Allow" is not one of Deny, Pass/,
    ],
    [
      'a default tier with another order',
      tortie('Tier', { name: 'default' }, { order: 5 }),
      'spec.order',
      /fixed at 1000000/,
    ],
    [
      'a profile rule with an unknown action',
      tortie('Profile', { name: 'p' }, { egress: [{ action: 'Drop' }] }),
      'spec.egress[0].action',
      /unknown action "Drop"/,
    ],
    [
      'a network set net that is not a CIDR',
      tortie('NetworkSet', meta(), { nets: ['10.0.0.0/8', 'example.com'] }),
      'spec.nets[1]',
      /not an IPv4 address/,
    ],
    [
      'a global network set field that does not exist',
      tortie('GlobalNetworkSet', { name: 'g' }, { allowedEgressDomains: [] }),
      'spec.allowedEgressDomains',
      /unknown field/,
    ],
    [
      'a namespace name with dots',
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a.b' } },
      'metadata.name',
      /not a DNS label/,
    ],
    // Kubernetes NetworkPolicy
    [
      'a Kubernetes policy without podSelector',
      knp({ ingress: [] }),
      'spec.podSelector',
      /required field is missing/,
    ],
    [
      'a Kubernetes policy without spec',
      { ...knp({}), spec: undefined },
      'spec',
      /required field is missing/,
    ],
    [
      'an unknown Kubernetes spec field',
      knp({ podSelector: {}, ingres: [] }),
      'spec.ingres',
      /unknown field/,
    ],
    [
      'an unknown policyType',
      knp({ podSelector: {}, policyTypes: ['Ingres'] }),
      'spec.policyTypes[0]',
      /"Ingres" is not one of/,
    ],
    [
      'an unknown selector operator',
      knp({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Equals', values: ['x'] }] } }),
      'spec.podSelector.matchExpressions[0].operator',
      /"Equals" is not one of In, NotIn, Exists, DoesNotExist/,
    ],
    [
      'In without values',
      knp({ podSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] } }),
      'spec.podSelector.matchExpressions[0].values',
      /needs at least one value/,
    ],
    [
      'Exists with values',
      knp({ podSelector: { matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] } }),
      'spec.podSelector.matchExpressions[0].values',
      /takes no values/,
    ],
    [
      'a bad matchLabels key',
      knp({ podSelector: { matchLabels: { '-a': 'x' } } }),
      'spec.podSelector.matchLabels["-a"]',
      /not a qualified name/,
    ],
    [
      'a peer with nothing in it',
      knp({ podSelector: {}, ingress: [{ from: [{}] }] }),
      'spec.ingress[0].from[0]',
      /needs podSelector, namespaceSelector or ipBlock/,
    ],
    [
      'ipBlock with a podSelector',
      knp({
        podSelector: {},
        egress: [{ to: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }],
      }),
      'spec.egress[0].to[0].ipBlock',
      /cannot be combined/,
    ],
    [
      'an except outside the cidr',
      knp({
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.1.0.0/24'] } }] }],
      }),
      'spec.ingress[0].from[0].ipBlock.except[0]',
      /not a strict subset of cidr 10.0.0.0\/16/,
    ],
    [
      'an except equal to the cidr',
      knp({
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/16', except: ['10.0.0.0/16'] } }] }],
      }),
      'spec.ingress[0].from[0].ipBlock.except[0]',
      /strict subset/,
    ],
    [
      'an invalid ipBlock cidr',
      knp({ podSelector: {}, ingress: [{ from: [{ ipBlock: { cidr: '300.0.0.0/8' } }] }] }),
      'spec.ingress[0].from[0].ipBlock.cidr',
      /not an IPv4 address/,
    ],
    [
      'a port protocol Kubernetes does not know',
      knp({ podSelector: {}, ingress: [{ ports: [{ protocol: 'ICMP' }] }] }),
      'spec.ingress[0].ports[0].protocol',
      /"ICMP" is not one of TCP, UDP, SCTP/,
    ],
    [
      'a Kubernetes port out of range',
      knp({ podSelector: {}, ingress: [{ ports: [{ port: 0 }] }] }),
      'spec.ingress[0].ports[0].port',
      /port 0 is out of range 1-65535/,
    ],
    [
      'a numeric string as a named port',
      knp({ podSelector: {}, ingress: [{ ports: [{ port: '80' }] }] }),
      'spec.ingress[0].ports[0].port',
      /port name "80" is not valid/,
    ],
    [
      'endPort with a named port',
      knp({ podSelector: {}, ingress: [{ ports: [{ port: 'http', endPort: 90 }] }] }),
      'spec.ingress[0].ports[0].endPort',
      /not a named one/,
    ],
    [
      'endPort without a port',
      knp({ podSelector: {}, egress: [{ ports: [{ endPort: 90 }] }] }),
      'spec.egress[0].ports[0].endPort',
      /needs a numeric port/,
    ],
    [
      'endPort below port',
      knp({ podSelector: {}, egress: [{ ports: [{ port: 90, endPort: 80 }] }] }),
      'spec.egress[0].ports[0].endPort',
      /endPort 80 is below port 90/,
    ],
    [
      'endPort out of range',
      knp({ podSelector: {}, egress: [{ ports: [{ port: 90, endPort: 65536 }] }] }),
      'spec.egress[0].ports[0].endPort',
      /endPort 65536 is out of range/,
    ],
  ])('refuses %s', (_what, obj, path, reason) => {
    const err = refusal(obj);
    expect(err.path).toBe(path);
    expect(err.reason).toMatch(reason);
    expect(err.message).toBe(`${path === '' ? 'resource' : path}: ${err.reason}`);
  });
});

// --- Kubernetes NetworkPolicy conversion ----------------------------------------------

describe('Kubernetes NetworkPolicy conversion', () => {
  it('becomes policy knp.default.<name> in tier default, order 1000, selecting by podSelector', () => {
    const p = policyOf(knp({ podSelector: { matchLabels: { app: 'web' } } }));
    expect(p).toEqual({
      name: 'knp.default.web',
      namespace: 'prod',
      tier: 'default',
      order: 1000,
      selector: 'app == "web"',
      types: ['Ingress'],
      ingress: [],
      egress: [],
    });
  });

  it('keeps the resource metadata and defaults the namespace to "default"', () => {
    const r = parseResource(knp({ podSelector: {} }, { name: 'web', labels: { owner: 'me' } }));
    expect(r.metadata).toEqual({ name: 'web', namespace: 'default', labels: { owner: 'me' } });
    expect(r.kind === 'NetworkPolicy' && r.policy.namespace).toBe('default');
  });

  it('infers policyTypes: Ingress, plus Egress only when there are egress rules', () => {
    expect(policyOf(knp({ podSelector: {} })).types).toEqual(['Ingress']);
    expect(policyOf(knp({ podSelector: {}, egress: [] })).types).toEqual(['Ingress']);
    expect(policyOf(knp({ podSelector: {}, egress: [{}] })).types).toEqual(['Ingress', 'Egress']);
    expect(
      policyOf(knp({ podSelector: {}, policyTypes: ['Egress'], ingress: [{}] })).types,
    ).toEqual(['Egress']);
  });

  it('turns matchLabels and matchExpressions into one selector', () => {
    const p = policyOf(
      knp({
        podSelector: {
          matchLabels: { app: 'web' },
          matchExpressions: [
            { key: 'env', operator: 'NotIn', values: ['dev', 'test'] },
            { key: 'canary', operator: 'DoesNotExist' },
          ],
        },
      }),
    );
    expect(p.selector).toBe('!has(canary) && app == "web" && env not in {"dev", "test"}');
  });

  it('an absent or empty from, and absent ports, give one allow-everything rule', () => {
    expect(policyOf(knp({ podSelector: {}, ingress: [{}] })).ingress).toEqual([allow()]);
    expect(policyOf(knp({ podSelector: {}, ingress: [{ from: [], ports: [] }] })).ingress).toEqual([
      allow(),
    ]);
  });

  it('maps podSelector, namespaceSelector and both to selector / namespaceSelector', () => {
    const p = policyOf(
      knp({
        podSelector: {},
        ingress: [
          {
            from: [
              { podSelector: { matchLabels: { app: 'db' } } },
              { namespaceSelector: { matchLabels: { team: 'a' } } },
              { namespaceSelector: {}, podSelector: { matchLabels: { app: 'mon' } } },
            ],
          },
        ],
      }),
    );
    expect(p.ingress).toEqual([
      allow({ source: { selector: 'app == "db"' } }),
      allow({ source: { namespaceSelector: 'team == "a"' } }),
      allow({ source: { selector: 'app == "mon"', namespaceSelector: 'all()' } }),
    ]);
  });

  it('maps ipBlock to nets and except to notNets, masking host bits', () => {
    const p = policyOf(
      knp({
        podSelector: {},
        policyTypes: ['Egress'],
        egress: [
          { to: [{ ipBlock: { cidr: '172.16.5.4/12', except: ['172.17.0.0/16', '172.18.0.1'] } }] },
        ],
      }),
    );
    expect(p.egress).toEqual([
      allow({
        destination: { nets: ['172.16.0.0/12'], notNets: ['172.17.0.0/16', '172.18.0.1/32'] },
      }),
    ]);
  });

  it('groups ports by protocol (TCP by default), one rule per peer and protocol', () => {
    const p = policyOf(
      knp({
        podSelector: {},
        ingress: [
          {
            from: [
              { podSelector: { matchLabels: { a: '1' } } },
              { ipBlock: { cidr: '10.0.0.0/8' } },
            ],
            ports: [
              { port: 80 },
              { protocol: 'UDP', port: 53 },
              { protocol: 'TCP', port: 8000, endPort: 8080 },
              { port: 'metrics' },
            ],
          },
        ],
      }),
    );
    const tcpPorts = [
      { kind: 'range', from: 80, to: 80 },
      { kind: 'range', from: 8000, to: 8080 },
      { kind: 'named', name: 'metrics' },
    ] as const;
    const udpPorts = [{ kind: 'range', from: 53, to: 53 }] as const;
    expect(p.ingress).toEqual([
      allow({
        protocol: 6,
        source: { selector: 'a == "1"' },
        destination: { ports: [...tcpPorts] },
      }),
      allow({
        protocol: 17,
        source: { selector: 'a == "1"' },
        destination: { ports: [...udpPorts] },
      }),
      allow({
        protocol: 6,
        source: { nets: ['10.0.0.0/8'] },
        destination: { ports: [...tcpPorts] },
      }),
      allow({
        protocol: 17,
        source: { nets: ['10.0.0.0/8'] },
        destination: { ports: [...udpPorts] },
      }),
    ]);
  });

  it('a port entry without a port opens its whole protocol', () => {
    const p = policyOf(
      knp({
        podSelector: {},
        ingress: [{ ports: [{ protocol: 'SCTP', port: 9 }, { protocol: 'SCTP' }, { port: 22 }] }],
      }),
    );
    expect(p.ingress).toEqual([
      allow({ protocol: 132 }),
      allow({ protocol: 6, destination: { ports: [{ kind: 'range', from: 22, to: 22 }] } }),
    ]);
  });

  it('puts egress peers and ports together on the destination side', () => {
    const p = policyOf(
      knp({
        podSelector: {},
        egress: [
          {
            to: [{ namespaceSelector: { matchLabels: { team: 'a' } } }],
            ports: [{ protocol: 'UDP', port: 53 }],
          },
        ],
      }),
    );
    expect(p.egress).toEqual([
      allow({
        protocol: 17,
        destination: {
          namespaceSelector: 'team == "a"',
          ports: [{ kind: 'range', from: 53, to: 53 }],
        },
      }),
    ]);
  });

  it('accepts the status field and unknown metadata that Kubernetes objects carry', () => {
    const obj = {
      ...knp(
        { podSelector: {} },
        { name: 'web', namespace: 'prod', uid: 'x', resourceVersion: '7' },
      ),
      status: {},
    };
    expect(parseResource(obj).metadata).toEqual({ name: 'web', namespace: 'prod', labels: {} });
  });
});

// --- tortie resources -----------------------------------------------------------------

describe('tortie resources', () => {
  it('converts a NetworkPolicy with every rule field', () => {
    const p = policyOf(
      tnp(
        {
          tier: 'security',
          order: 10.5,
          selector: "role=='db'",
          types: ['Ingress'],
          ingress: [
            {
              action: 'Allow',
              ipVersion: 4,
              protocol: 'tcp',
              source: {
                nets: ['10.1.2.3/16'],
                notNets: ['10.1.9.0/24'],
                selector: 'app  ==  "web"',
                notSelector: 'has(canary)',
                namespaceSelector: "team == 'a'",
              },
              destination: { ports: [5432, '6000:6010', 'metrics', '7000'], notPorts: ['6005'] },
            },
            {
              action: 'Log',
              protocol: 1,
              icmp: { type: 8, code: 0 },
              notICMP: { type: 8, code: 1 },
            },
            { action: 'Pass', notProtocol: 'UDPLite' },
            { action: 'Deny', protocol: 47 },
          ],
        },
        meta({ name: 'db-in' }),
      ),
    );
    expect(p).toEqual({
      name: 'db-in',
      namespace: 'prod',
      tier: 'security',
      order: 10.5,
      selector: 'role == "db"',
      types: ['Ingress'],
      ingress: [
        allow({
          protocol: 6,
          source: {
            nets: ['10.1.0.0/16'],
            notNets: ['10.1.9.0/24'],
            selector: 'app == "web"',
            notSelector: 'has(canary)',
            namespaceSelector: 'team == "a"',
          },
          destination: {
            ports: [
              { kind: 'range', from: 5432, to: 5432 },
              { kind: 'range', from: 6000, to: 6010 },
              { kind: 'named', name: 'metrics' },
              { kind: 'range', from: 7000, to: 7000 },
            ],
            notPorts: [{ kind: 'range', from: 6005, to: 6005 }],
          },
        }),
        {
          action: 'Log',
          protocol: 1,
          icmp: { type: 8, code: 0 },
          notICMP: { type: 8, code: 1 },
          source: {},
          destination: {},
        },
        { action: 'Pass', notProtocol: 136, source: {}, destination: {} },
        { action: 'Deny', protocol: 47, source: {}, destination: {} },
      ],
      egress: [],
    });
  });

  it('fills in NetworkPolicy defaults: tier default, selector all(), no order, namespace default', () => {
    const p = policyOf(tnp({ egress: [{ action: 'Allow' }] }, { name: 'p' }));
    expect(p).toEqual({
      name: 'p',
      namespace: 'default',
      tier: 'default',
      selector: 'all()',
      types: ['Egress'],
      ingress: [],
      egress: [allow()],
    });
    expect(policyOf(tnp(undefined, { name: 'empty' })).types).toEqual(['Ingress']);
  });

  it('defaults types as Calico: Egress alone for egress rules only, both for both', () => {
    expect(policyOf(tnp({ egress: [{ action: 'Allow' }] })).types).toEqual(['Egress']);
    expect(policyOf(tnp({ ingress: [{ action: 'Allow' }] })).types).toEqual(['Ingress']);
    expect(
      policyOf(tnp({ ingress: [{ action: 'Allow' }], egress: [{ action: 'Allow' }] })).types,
    ).toEqual(['Ingress', 'Egress']);
  });

  it('treats an empty types list like an absent one', () => {
    expect(policyOf(tnp({ types: [], egress: [{ action: 'Deny' }] })).types).toEqual(['Egress']);
  });

  it('drops empty lists from rules: they constrain nothing', () => {
    const p = policyOf(
      ingressRule({ source: { nets: [], selector: 'all()' }, destination: { notNets: [] } }),
    );
    expect(p.ingress[0]).toEqual(allow({ source: { selector: 'all()' } }));
  });

  it('accepts source ports and notPorts (numbers, ranges, names) with a port protocol', () => {
    const p = policyOf(
      ingressRule({
        protocol: 'UDP',
        source: { ports: [53, '1000:2000', 'dns'], notPorts: [1500] },
        destination: { ports: [53] },
      }),
    );
    expect(p.ingress[0]!.source).toEqual({
      ports: [
        { kind: 'range', from: 53, to: 53 },
        { kind: 'range', from: 1000, to: 2000 },
        { kind: 'named', name: 'dns' },
      ],
      notPorts: [{ kind: 'range', from: 1500, to: 1500 }],
    });
  });

  it('converts a GlobalNetworkPolicy with a namespaceSelector, without namespace', () => {
    const r = parseResource(
      gnp({
        order: 1,
        namespaceSelector: 'has(team)',
        selector: '',
        ingress: [{ action: 'Deny' }],
      }),
    );
    expect(r.kind).toBe('GlobalNetworkPolicy');
    expect(r.metadata).toEqual({ name: 'g', labels: {} });
    const p = (r as Extract<Resource, { kind: 'GlobalNetworkPolicy' }>).policy;
    expect(p).toEqual({
      name: 'g',
      tier: 'default',
      order: 1,
      selector: 'all()',
      namespaceSelector: 'has(team)',
      types: ['Ingress'],
      ingress: [{ action: 'Deny', source: {}, destination: {} }],
      egress: [],
    });
    expect('namespace' in p).toBe(false);
  });

  it('accepts protocol names in any case and protocols by number', () => {
    const protocols = ['TCP', 'udp', 'Icmp', 'SCTP', 'udplite', 50].map(
      (protocol) => policyOf(ingressRule({ protocol })).ingress[0]!.protocol,
    );
    expect(protocols).toEqual([6, 17, 1, 132, 136, 50]);
  });

  it('converts a Tier, Deny by default', () => {
    const tierOf = (obj: unknown) =>
      (parseResource(obj) as Extract<Resource, { kind: 'Tier' }>).tier;
    expect(tierOf(tortie('Tier', { name: 'security' }, { order: 100 }))).toEqual({
      name: 'security',
      order: 100,
      defaultAction: 'Deny',
    });
    expect(tierOf(tortie('Tier', { name: 'baseline' }, { defaultAction: 'Pass' }))).toEqual({
      name: 'baseline',
      defaultAction: 'Pass',
    });
    expect(tierOf(tortie('Tier', { name: 'default' }))).toEqual({
      name: 'default',
      order: 1_000_000,
      defaultAction: 'Deny',
    });
  });

  it('converts a Profile with its rules', () => {
    const r = parseResource(
      tortie(
        'Profile',
        { name: 'allow-dns' },
        { egress: [{ action: 'Allow', protocol: 'UDP', destination: { ports: [53] } }] },
      ),
    );
    expect(r).toMatchObject({
      kind: 'Profile',
      profile: {
        name: 'allow-dns',
        ingress: [],
        egress: [
          allow({ protocol: 17, destination: { ports: [{ kind: 'range', from: 53, to: 53 }] } }),
        ],
      },
    });
  });

  it('converts network sets, labels from metadata, nets normalised', () => {
    const ns = parseResource(
      tortie(
        'NetworkSet',
        { name: 'partners', labels: { role: 'partner' } },
        { nets: ['198.51.100.7/24', '203.0.113.9'] },
      ),
    );
    expect(ns).toMatchObject({
      kind: 'NetworkSet',
      networkSet: {
        name: 'partners',
        namespace: 'default',
        labels: { role: 'partner' },
        nets: ['198.51.100.0/24', '203.0.113.9/32'],
      },
    });
    const g = parseResource(tortie('GlobalNetworkSet', { name: 'any' }));
    expect(g.kind === 'GlobalNetworkSet' && g.networkSet).toEqual({
      name: 'any',
      labels: {},
      nets: [],
    });
  });

  it('converts a Namespace, adding the kubernetes.io/metadata.name label', () => {
    const r = parseResource({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'prod', labels: { team: 'a' } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
    expect(r.kind === 'Namespace' && r.namespace).toEqual({
      name: 'prod',
      labels: { team: 'a', 'kubernetes.io/metadata.name': 'prod' },
    });
  });
});

// --- worldFrom ------------------------------------------------------------------------

describe('worldFrom', () => {
  const ep = (namespace: string, name: string, ip: string): Endpoint => ({
    key: `${namespace}/${name}`,
    namespace,
    name,
    ip,
    labels: {},
    profiles: [`kns.${namespace}`],
    ports: [],
  });

  it('collects every kind, with a kns profile per namespace', () => {
    const resources = [
      tnp({ ingress: [{ action: 'Allow' }] }),
      knp({ podSelector: {} }),
      gnp({}),
      tortie('Tier', { name: 'sec' }, { order: 1 }),
      tortie('Profile', { name: 'extra' }),
      tortie('NetworkSet', meta({ name: 'set' }), { nets: ['10.0.0.0/8'] }),
      tortie('GlobalNetworkSet', { name: 'gset' }),
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod' } },
    ].map(parseResource);
    const w = worldFrom(resources, [ep('dev', 'a', '10.0.0.1')]);
    expect(w.policies.map((p) => `${p.namespace ?? '-'}/${p.name}`)).toEqual([
      'prod/p',
      'prod/knp.default.web',
      '-/g',
    ]);
    expect(w.tiers).toEqual([{ name: 'sec', order: 1, defaultAction: 'Deny' }]);
    expect(w.profiles.map((p) => p.name)).toEqual(['extra', 'kns.dev', 'kns.prod']);
    expect(w.profiles.find((p) => p.name === 'kns.prod')).toEqual({
      name: 'kns.prod',
      ingress: [allow()],
      egress: [allow()],
    });
    expect(w.networkSets.map((s) => s.name)).toEqual(['set', 'gset']);
    expect(w.namespaces.map((n) => n.name)).toEqual(['prod']);
    expect(w.endpoints.map((e) => e.key)).toEqual(['dev/a']);
  });

  it('refuses two resources with the same identity', () => {
    const twice = [tnp({}), tnp({ order: 2 })].map(parseResource);
    expect(() => worldFrom(twice, [])).toThrow(/duplicate policy prod\/p/);
  });

  it('keeps a Kubernetes and a tortie policy of the same name apart', () => {
    const both = [tnp({}, meta({ name: 'web' })), knp({ podSelector: {} })].map(parseResource);
    expect(worldFrom(both, []).policies.map((p) => p.name)).toEqual(['web', 'knp.default.web']);
  });
});

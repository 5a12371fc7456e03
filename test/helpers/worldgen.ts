/**
 * Random worlds and packets for differential tests, seeded and reproducible.
 *
 * Worlds are small on purpose — 2-3 namespaces, a handful of endpoints, network sets,
 * tiers, policies and profiles drawn from small pools of labels, selectors, CIDRs and
 * ports — so that random rules overlap, shadow and pass to each other often. Optionally
 * one policy carries 10,000 rules. Packets pick their peer among endpoint addresses,
 * addresses inside the pooled CIDRs (edges included) and random addresses.
 *
 * `randomCase(seed, opts)` is the plain entry point (the BPF tests reuse it); the
 * arbitraries are exported for fast-check properties (with shrinking).
 */
import fc from 'fast-check';
import type {
  Direction,
  Endpoint,
  EntityMatch,
  IcmpMatch,
  NamedPort,
  Namespace,
  NetworkSet,
  Packet,
  Policy,
  PortMatch,
  Profile,
  Rule,
  Tier,
  World,
} from '../../src/policy/model.js';

export interface LocalEndpointCase {
  readonly endpoint: Endpoint;
  readonly ifindex: number;
  readonly id: number;
}

export interface PacketCase {
  /** The local endpoint judging the packet. */
  readonly ifindex: number;
  readonly direction: Direction;
  readonly packet: Packet;
}

export interface WorldCase {
  readonly world: World;
  readonly locals: readonly LocalEndpointCase[];
  readonly packets: readonly PacketCase[];
}

export interface WorldGenOptions {
  /** Chance that one extra policy has `bigPolicyRules` rules (default 0). */
  readonly bigPolicyChance?: number;
  /** Rules of the big policy (default 10,000). */
  readonly bigPolicyRules?: number;
  /** Packets per case (default 24). */
  readonly packets?: number;
}

// --- pools --------------------------------------------------------------------------

export const NAMESPACES = ['ns-a', 'ns-b', 'ns-c'] as const;

const ENDPOINT_IPS = [
  ...Array.from({ length: 12 }, (_, i) => `10.0.0.${i + 1}`),
  '10.0.0.16',
  '10.0.0.17',
  '10.0.0.255',
  ...Array.from({ length: 6 }, (_, i) => `10.0.1.${i + 1}`),
  '10.1.0.1',
  '10.1.0.2',
  '192.168.1.10',
  '192.168.1.11',
];

export const CIDRS = [
  '0.0.0.0/0',
  '0.0.0.0/1',
  '128.0.0.0/1',
  '10.0.0.0/8',
  '10.0.0.0/16',
  '10.0.0.0/24',
  '10.0.0.0/28',
  '10.0.0.8/29',
  '10.0.0.16/30',
  '10.0.0.4/31',
  '10.0.0.5/32',
  '10.0.0.7',
  '10.0.1.0/24',
  '10.0.1.3/32',
  '10.0.1.0/29',
  '10.1.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '192.168.1.11/32',
  '255.255.255.255/32',
  '10.0.0.1/16', // host bits set: masked
];

const SELECTORS = [
  "app == 'web'",
  "app == 'db'",
  "app in {'web', 'cache'}",
  "app != 'db'",
  'has(tier)',
  '!has(tier)',
  "tier == 'fe' && app != 'db'",
  "app == 'web' || kind == 'int'",
  "kind == 'ext'",
  'has(kind)',
  "projectcalico.org/namespace == 'ns-b'",
  'all()',
  '',
];

const NAMESPACE_SELECTORS = [
  "env == 'prod'",
  "env != 'prod'",
  'has(team)',
  "team == 'x'",
  'all()',
  '!has(env)',
];

const PORT_NAMES = ['http', 'dns', 'metrics', 'none'];
const POLICY_NAMES = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'kilo'];
const NAMED_PORTS: readonly NamedPort[] = [
  { name: 'http', protocol: 6, port: 80 },
  { name: 'http', protocol: 6, port: 8080 },
  { name: 'dns', protocol: 17, port: 53 },
  { name: 'dns', protocol: 6, port: 53 },
  { name: 'metrics', protocol: 6, port: 9090 },
  { name: 'metrics', protocol: 132, port: 9090 },
  { name: 'metrics', protocol: 136, port: 9091 },
];
const PORTS = [0, 1, 22, 53, 80, 443, 8080, 9090, 9091, 65535];
const PORT_RANGES: readonly [number, number][] = [
  [80, 90],
  [1000, 2000],
  [0, 1023],
  [1024, 65535],
  [8080, 8080],
  [0, 65535],
  [53, 54],
];
const RULE_PROTOCOLS = [6, 17, 132, 136, 1, 47];
const PORT_PROTOCOL_LIST = [6, 17, 132, 136];
const ICMP_TYPES = [0, 3, 8, 11];
const ICMP_CODES = [0, 1, 4];
const PACKET_PROTOCOLS = [6, 17, 132, 136, 1, 47, 0, 255];

// --- small pieces -------------------------------------------------------------------

/** Present with probability `p` (percent), else undefined: rule fields are sparse, as in real policies. */
function sometimes<T>(arb: fc.Arbitrary<T>, p: number): fc.Arbitrary<T | undefined> {
  return fc.oneof(
    { weight: 100 - p, arbitrary: fc.constant(undefined) },
    { weight: p, arbitrary: arb },
  );
}

const labelsArb: fc.Arbitrary<Record<string, string>> = fc
  .record(
    {
      app: fc.constantFrom('web', 'db', 'cache'),
      tier: fc.constantFrom('fe', 'be'),
      kind: fc.constantFrom('ext', 'int'),
    },
    { requiredKeys: [] },
  )
  .map((r) => ({ ...r }) as Record<string, string>);

const namespaceLabelsArb = fc
  .record(
    { env: fc.constantFrom('prod', 'dev'), team: fc.constantFrom('x', 'y') },
    { requiredKeys: [] },
  )
  .map((r) => ({ ...r }) as Record<string, string>);

const cidrListArb = fc.uniqueArray(fc.constantFrom(...CIDRS), { minLength: 0, maxLength: 3 });

const portMatchArb: fc.Arbitrary<PortMatch> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(...PORTS).map((p): PortMatch => ({ kind: 'range', from: p, to: p })),
  },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(...PORT_RANGES)
      .map(([from, to]): PortMatch => ({ kind: 'range', from, to })),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(...PORT_NAMES).map((name): PortMatch => ({ kind: 'named', name })),
  },
);

const portListArb = fc.array(portMatchArb, { minLength: 1, maxLength: 3 });

const icmpArb: fc.Arbitrary<IcmpMatch> = fc.record(
  { type: fc.constantFrom(...ICMP_TYPES), code: fc.constantFrom(...ICMP_CODES) },
  { requiredKeys: ['type'] },
);

/** `ports` and `notPorts`: how often (percent) each is present. */
function entityArb(ports: number, notPorts: number): fc.Arbitrary<EntityMatch> {
  return fc
    .record({
      nets: sometimes(cidrListArb, 20),
      notNets: sometimes(cidrListArb, 8),
      selector: sometimes(fc.constantFrom(...SELECTORS), 20),
      notSelector: sometimes(fc.constantFrom(...SELECTORS), 8),
      namespaceSelector: sometimes(fc.constantFrom(...NAMESPACE_SELECTORS), 10),
      ports: sometimes(portListArb, ports),
      notPorts: sometimes(portListArb, notPorts),
    })
    .map(compact);
}

/** Drops undefined fields, so worlds print and compare cleanly. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

export const ruleArb: fc.Arbitrary<Rule> = fc
  .record({
    action: fc.oneof(
      { weight: 4, arbitrary: fc.constant('Allow' as const) },
      { weight: 3, arbitrary: fc.constant('Deny' as const) },
      { weight: 2, arbitrary: fc.constant('Pass' as const) },
      { weight: 2, arbitrary: fc.constant('Log' as const) },
    ),
    protocol: sometimes(fc.constantFrom(...RULE_PROTOCOLS), 50),
    notProtocol: sometimes(fc.constantFrom(...RULE_PROTOCOLS), 10),
    icmp: sometimes(icmpArb, 50),
    notICMP: sometimes(icmpArb, 25),
    destinationWithPorts: entityArb(50, 20),
    sourceWithPorts: entityArb(25, 10),
  })
  .map(({ destinationWithPorts, sourceWithPorts, icmp, notICMP, ...r }) => {
    // As validation demands: ports only with a port-carrying protocol, ICMP fields only with ICMP.
    const portProtocol = r.protocol !== undefined && PORT_PROTOCOL_LIST.includes(r.protocol);
    const { ports, notPorts, ...destination } = destinationWithPorts;
    const { ports: sports, notPorts: notSports, ...source } = sourceWithPorts;
    return compact({
      ...r,
      icmp: r.protocol === 1 ? icmp : undefined,
      notICMP: r.protocol === 1 ? notICMP : undefined,
      source: portProtocol ? compact({ ...source, ports: sports, notPorts: notSports }) : source,
      destination: portProtocol ? compact({ ...destination, ports, notPorts }) : destination,
    }) as Rule;
  });

const endpointArb = fc.record({
  namespace: fc.constantFrom(...NAMESPACES),
  ip: fc.constantFrom(...ENDPOINT_IPS),
  labels: labelsArb,
  profiles: fc.shuffledSubarray(['kns', 'prof-x', 'prof-y', 'missing'], {
    minLength: 0,
    maxLength: 3,
  }),
  ports: fc.subarray([...NAMED_PORTS], { minLength: 0, maxLength: 3 }),
});

const tierArb = fc.record({
  order: sometimes(fc.constantFrom(10, 100, 100, 2_000_000), 75),
  defaultAction: fc.constantFrom('Deny' as const, 'Pass' as const),
});

const policyArb = fc.record({
  namespace: sometimes(fc.constantFrom(...NAMESPACES), 40),
  tier: fc.constantFrom('default', 'default', 'security', 'platform', 'ghost'),
  order: sometimes(fc.constantFrom(1, 5, 5, 100, 1000), 70),
  selector: fc.constantFrom(...SELECTORS),
  namespaceSelector: sometimes(fc.constantFrom(...NAMESPACE_SELECTORS), 25),
  types: fc.constantFrom(
    ['Ingress'],
    ['Egress'],
    ['Ingress', 'Egress'],
    ['Ingress', 'Egress'],
    ['Ingress', 'Egress'],
    [],
  ),
  ingress: fc.array(ruleArb, { maxLength: 5 }),
  egress: fc.array(ruleArb, { maxLength: 5 }),
});

const networkSetArb = fc.record({
  namespace: sometimes(fc.constantFrom(...NAMESPACES), 50),
  labels: labelsArb,
  nets: fc.uniqueArray(fc.constantFrom(...CIDRS.filter((c) => !c.startsWith('0.0.0.0/0'))), {
    minLength: 1,
    maxLength: 3,
  }),
});

// --- worlds -------------------------------------------------------------------------

export interface GeneratedWorld {
  readonly world: World;
  readonly locals: readonly LocalEndpointCase[];
}

export function worldArb(opts: WorldGenOptions = {}): fc.Arbitrary<GeneratedWorld> {
  const bigChance = opts.bigPolicyChance ?? 0;
  const bigRules = opts.bigPolicyRules ?? 10_000;
  return fc
    .record({
      namespaces: fc.subarray([...NAMESPACES], { minLength: 0 }),
      nsLabels: fc.array(namespaceLabelsArb, { minLength: 3, maxLength: 3 }),
      endpoints: fc.uniqueArray(endpointArb, { minLength: 1, maxLength: 8, selector: (e) => e.ip }),
      localMask: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
      networkSets: fc.array(networkSetArb, { maxLength: 3 }),
      tiers: fc.record({
        security: sometimes(tierArb, 50),
        platform: sometimes(tierArb, 50),
        default: sometimes(tierArb, 25),
      }),
      policies: fc.array(fc.tuple(policyArb, fc.constantFrom(...POLICY_NAMES)), { maxLength: 8 }),
      profX: fc.record({
        ingress: fc.array(ruleArb, { maxLength: 3 }),
        egress: fc.array(ruleArb, { maxLength: 3 }),
      }),
      profY: fc.record({
        ingress: fc.array(ruleArb, { maxLength: 2 }),
        egress: fc.array(ruleArb, { maxLength: 2 }),
      }),
      knsMissing: fc.constantFrom(...NAMESPACES, 'none', 'none'),
      big:
        bigChance > 0
          ? fc.double({ min: 0, max: 1, noNaN: true }).map((x) => x < bigChance)
          : fc.constant(false),
      bigSeed: fc.integer(),
    })
    .map((g) => {
      const namespaces: Namespace[] = g.namespaces.map((name) => ({
        name,
        labels: g.nsLabels[NAMESPACES.indexOf(name as (typeof NAMESPACES)[number])]!,
      }));
      const endpoints: Endpoint[] = g.endpoints.map((e, i) => ({
        key: `${e.namespace}/pod-${i}`,
        namespace: e.namespace,
        name: `pod-${i}`,
        ip: e.ip,
        labels: e.labels,
        profiles: e.profiles.map((p) => (p === 'kns' ? `kns.${e.namespace}` : p)),
        ports: e.ports,
      }));
      const networkSets: NetworkSet[] = g.networkSets.map((s, i) =>
        compact({ name: `set-${i}`, ...s }),
      );
      const tiers: Tier[] = [];
      for (const name of ['security', 'platform', 'default'] as const) {
        const t = g.tiers[name];
        if (t !== undefined) tiers.push(compact({ name, ...t }));
      }
      // Names from a small pool, in no particular order, so that ties on order are broken
      // by name and, for a global and a namespaced policy of one name, by key.
      const taken = new Set<string>();
      const policies: Policy[] = g.policies.map(([p, pooled]) => {
        let name = pooled;
        while (taken.has(`${p.namespace ?? ''}/${name}`)) name = `${name}x`;
        taken.add(`${p.namespace ?? ''}/${name}`);
        return compact({
          name,
          ...p,
          namespaceSelector: p.namespace === undefined ? p.namespaceSelector : undefined,
          types: p.types as Policy['types'],
        });
      });
      if (g.big) policies.push(bigPolicy(g.bigSeed, bigRules));
      const profiles: Profile[] = [
        ...NAMESPACES.filter((ns) => ns !== g.knsMissing).map((ns) => ({
          name: `kns.${ns}`,
          ingress: [allowAll],
          egress: [allowAll],
        })),
        { name: 'prof-x', ...g.profX },
        { name: 'prof-y', ...g.profY },
      ];
      const locals = endpoints
        .map((endpoint, i) => ({
          endpoint,
          ifindex: 100 + i,
          id: 1 + i,
          local: g.localMask[i] ?? false,
        }))
        .filter((l, i) => l.local || i === 0)
        .map(({ endpoint, ifindex, id }) => ({ endpoint, ifindex, id }));
      const world: World = { endpoints, namespaces, networkSets, tiers, policies, profiles };
      return { world, locals };
    });
}

const allowAll: Rule = { action: 'Allow', source: {}, destination: {} };

// --- the big policy -----------------------------------------------------------------

/** A small deterministic PRNG (mulberry32) for the big policy, which fast-check need not shrink. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pick<T>(rand: () => number, items: readonly T[]): T {
  return items[Math.floor(rand() * items.length)]!;
}

/**
 * A global policy with `count` rules in the shape of a generated allow-list: most rules
 * admit one peer (a /32 or a /24 outside the pod ranges) to one service port or
 * named port; some use the pooled selectors and CIDRs; one in a thousand constrains no
 * peer at all; a few deny, log or pass, and a few use an odd port.
 *
 * (Every peer a rule singles out gets its own class — the verdict names the deciding
 * rule — and each class repeats the port decisions of the rules that constrain no peer:
 * classes × those ports entries, the two-stage layout's cost. Few such rules keep the big
 * world the size of a real one.)
 */
export function bigPolicy(seed: number, count: number): Policy {
  const rand = prng(seed);
  const servicePorts = [22, 53, 80, 443, 5432, 8080, 9090];
  const rule = (): Rule => {
    const r = rand();
    const action = r < 0.85 ? 'Allow' : r < 0.93 ? 'Deny' : r < 0.98 ? 'Log' : 'Pass';
    const protocol = pick(rand, [6, 6, 6, 17, 132]);
    const q = rand();
    const ports: PortMatch[] =
      q < 0.8
        ? [pick(rand, servicePorts)].map((port): PortMatch => ({
            kind: 'range',
            from: port,
            to: port,
          }))
        : q < 0.9
          ? [{ kind: 'named', name: pick(rand, PORT_NAMES) }]
          : q < 0.97
            ? [pick(rand, PORT_RANGES)].map(([from, to]): PortMatch => ({
                kind: 'range',
                from,
                to,
              }))
            : [Math.floor(rand() * 65536)].map((port): PortMatch => ({
                kind: 'range',
                from: port,
                to: port,
              }));
    let peer: EntityMatch;
    const p = rand();
    const octet = (): number => Math.floor(rand() * 256);
    // Outside every pooled CIDR and pod range (100.64.0.0/10, 198.18.0.0/15), like
    // partners and on-premises hosts on an allow-list.
    if (p < 0.7) peer = { nets: [`100.${64 + Math.floor(rand() * 64)}.${octet()}.${octet()}/32`] };
    else if (p < 0.9) peer = { nets: [`198.${18 + Math.floor(rand() * 2)}.${octet()}.0/24`] };
    else if (p < 0.95)
      peer = {
        selector: pick(
          rand,
          SELECTORS.filter((sel) => sel !== '' && sel !== 'all()'),
        ),
      };
    else if (p < 0.999)
      peer = {
        nets: [
          pick(
            rand,
            CIDRS.filter((c) => !/\/[01]$/.test(c)),
          ),
        ],
      };
    else peer = {};
    return { action, protocol, source: peer, destination: { ports } };
  };
  const ingress = Array.from({ length: count }, rule);
  const egress = Array.from({ length: Math.floor(count / 10) }, () => {
    const r = rule();
    return { ...r, source: {}, destination: { ...r.source, ...r.destination } };
  });
  return {
    name: 'big',
    tier: 'default',
    order: 500,
    selector: "app == 'web' || app == 'db'",
    types: ['Ingress', 'Egress'],
    ingress,
    egress,
  };
}

// --- packets ------------------------------------------------------------------------

function cidrRange(cidr: string): [number, number] {
  const [addr = '', bitsText = '32'] = cidr.split('/');
  const bits = Number(bitsText);
  const value = addr.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
  const size = 2 ** (32 - bits);
  const base = Math.floor(value / size) * size;
  return [base, base + size - 1];
}

function dotted(value: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(value / 2 ** s) % 256).join('.');
}

/** Peers: endpoint addresses, addresses in (and at the edges of) pooled and set CIDRs, random ones. */
function peerArb(world: World): fc.Arbitrary<string> {
  const nets = [...CIDRS, ...world.networkSets.flatMap((s) => s.nets), ...bigPolicyNets(world)];
  const inNet = fc
    .tuple(
      fc.constantFrom(...nets),
      fc.constantFrom('first', 'last', 'any', 'before', 'after'),
      fc.double({ min: 0, max: 1, noNaN: true }),
    )
    .map(([net, where, x]) => {
      const [lo, hi] = cidrRange(net);
      const v =
        where === 'first'
          ? lo
          : where === 'last'
            ? hi
            : where === 'before'
              ? lo - 1
              : where === 'after'
                ? hi + 1
                : lo + Math.floor(x * (hi - lo + 1));
      return dotted(Math.min(Math.max(v, 0), 2 ** 32 - 1));
    });
  return fc.oneof(
    { weight: 5, arbitrary: fc.constantFrom(...world.endpoints.map((e) => e.ip)) },
    { weight: 4, arbitrary: inNet },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 ** 32 - 1 }).map(dotted) },
  );
}

/** A sample of the big policy's peers, so packets hit its rules. */
function bigPolicyNets(world: World): string[] {
  const big = world.policies.find((p) => p.name === 'big');
  if (big === undefined) return [];
  return big.ingress.slice(0, 400).flatMap((r) => r.source.nets ?? []);
}

const l4Arb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      protocol: fc.constantFrom(...PORT_PROTOCOL_LIST),
      dport: fc.oneof(
        fc.constantFrom(...PORTS, 53, 79, 81, 90, 91, 999, 1000, 1023, 1024, 2000, 2001),
        fc.integer({ min: 0, max: 65535 }),
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(
        fc.oneof(fc.constantFrom(...ICMP_TYPES, 5), fc.integer({ min: 0, max: 255 })),
        fc.oneof(fc.constantFrom(...ICMP_CODES), fc.integer({ min: 0, max: 255 })),
      )
      .map(([icmpType, icmpCode]) => ({ protocol: 1, dport: 0, icmpType, icmpCode })),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom(...PACKET_PROTOCOLS.filter((p) => p !== 1 && !PORT_PROTOCOL_LIST.includes(p)))
      .map((protocol) => ({ protocol, dport: 0 })),
  },
  {
    weight: 1,
    arbitrary: fc
      .integer({ min: 0, max: 255 })
      .filter((p) => p !== 1 && !PORT_PROTOCOL_LIST.includes(p))
      .map((protocol) => ({ protocol, dport: 0 })),
  },
);

/** Protocols and ports the world's rules mention, so that packets hit rules often. */
function ruleL4Arb(
  world: World,
): fc.Arbitrary<{ protocol: number; dport: number; icmpType?: number; icmpCode?: number }> {
  const rules = [...world.policies.slice(0, 50), ...world.profiles].flatMap((p) => [
    ...p.ingress.slice(0, 200),
    ...p.egress.slice(0, 200),
  ]);
  const choices: { protocol: number; dport: number; icmpType?: number; icmpCode?: number }[] = [];
  for (const r of rules) {
    const protocols = r.protocol !== undefined ? [r.protocol] : PORT_PROTOCOL_LIST;
    for (const protocol of protocols) {
      if (protocol === 1) {
        for (const m of [r.icmp, r.notICMP]) {
          if (m !== undefined)
            choices.push({ protocol, dport: 0, icmpType: m.type, icmpCode: m.code ?? 0 });
        }
        continue;
      }
      if (!PORT_PROTOCOL_LIST.includes(protocol)) {
        choices.push({ protocol, dport: 0 });
        continue;
      }
      for (const m of [...(r.destination.ports ?? []), ...(r.destination.notPorts ?? [])]) {
        if (m.kind === 'range') {
          for (const dport of new Set([
            m.from,
            m.to,
            Math.min(m.to + 1, 65535),
            Math.max(m.from - 1, 0),
          ]))
            choices.push({ protocol, dport });
        } else {
          for (const np of NAMED_PORTS)
            if (np.name === m.name) choices.push({ protocol: np.protocol, dport: np.port });
        }
      }
    }
  }
  return choices.length === 0 ? l4Arb : fc.constantFrom(...choices);
}

/** Source ports the world's rules mention (range edges and named ports), so that they are hit often. */
function ruleSportArb(world: World): fc.Arbitrary<number> {
  const rules = [...world.policies.slice(0, 50), ...world.profiles].flatMap((p) => [
    ...p.ingress.slice(0, 200),
    ...p.egress.slice(0, 200),
  ]);
  const choices = new Set<number>();
  for (const r of rules) {
    for (const m of [...(r.source.ports ?? []), ...(r.source.notPorts ?? [])]) {
      if (m.kind === 'range') {
        for (const p of [m.from, m.to, Math.min(m.to + 1, 65535), Math.max(m.from - 1, 0)])
          choices.add(p);
      } else for (const np of NAMED_PORTS) if (np.name === m.name) choices.add(np.port);
    }
  }
  const any = fc.integer({ min: 0, max: 65535 });
  return choices.size === 0
    ? any
    : fc.oneof(
        { weight: 1, arbitrary: any },
        { weight: 3, arbitrary: fc.constantFrom(...choices) },
      );
}

export function packetArb(generated: GeneratedWorld): fc.Arbitrary<PacketCase> {
  const { world, locals } = generated;
  return fc
    .record({
      local: fc.constantFrom(...locals),
      direction: fc.constantFrom('ingress' as const, 'egress' as const),
      peer: peerArb(world),
      l4: fc.oneof(l4Arb, ruleL4Arb(world)),
      sport: ruleSportArb(world),
    })
    .map(({ local, direction, peer, l4, sport }) => {
      const own = local.endpoint.ip;
      const packet: Packet = {
        saddr: direction === 'ingress' ? peer : own,
        daddr: direction === 'ingress' ? own : peer,
        sport: PORT_PROTOCOL_LIST.includes(l4.protocol) ? sport : 0,
        ...l4,
      };
      return { ifindex: local.ifindex, direction, packet };
    });
}

export function worldCaseArb(opts: WorldGenOptions = {}): fc.Arbitrary<WorldCase> {
  return worldArb(opts).chain((generated) =>
    fc
      .array(packetArb(generated), { minLength: opts.packets ?? 24, maxLength: opts.packets ?? 24 })
      .map((packets) => ({ ...generated, packets })),
  );
}

/** One reproducible case: the same seed and options give the same world and packets. */
export function randomCase(seed: number, opts: WorldGenOptions = {}): WorldCase {
  return fc.sample(worldCaseArb(opts), { seed, numRuns: 1 })[0]!;
}

// --- edits --------------------------------------------------------------------------

/** One small edit of a world: a policy added, removed or replaced, an endpoint relabelled, a set changed. */
export function editArb(world: World): fc.Arbitrary<World> {
  const edits: fc.Arbitrary<World>[] = [
    fc.tuple(policyArb, fc.constantFrom(...POLICY_NAMES)).map(([p, pooled]) => {
      let name = pooled;
      while (world.policies.some((q) => q.name === name && q.namespace === p.namespace))
        name = `${name}x`;
      const added = compact({
        name,
        ...p,
        namespaceSelector: p.namespace === undefined ? p.namespaceSelector : undefined,
        types: p.types as Policy['types'],
      });
      return { ...world, policies: [...world.policies, added] };
    }),
    labelsArb.chain((labels) =>
      fc.nat({ max: world.endpoints.length - 1 }).map((i) => ({
        ...world,
        endpoints: world.endpoints.map((e, j) => (j === i ? { ...e, labels } : e)),
      })),
    ),
    fc.array(networkSetArb, { maxLength: 3 }).map((sets) => ({
      ...world,
      networkSets: sets.map((s, i) => compact({ name: `set-${i}`, ...s })),
    })),
  ];
  if (world.policies.length > 0) {
    const index = fc.nat({ max: world.policies.length - 1 });
    edits.push(
      index.map((i) => ({ ...world, policies: world.policies.filter((_, j) => j !== i) })),
    );
    edits.push(
      fc
        .tuple(
          index,
          fc.array(ruleArb, { maxLength: 4 }),
          fc.constantFrom('ingress' as const, 'egress' as const),
        )
        .map(([i, rules, d]) => ({
          ...world,
          policies: world.policies.map((p, j) => (j === i ? { ...p, [d]: rules } : p)),
        })),
    );
  }
  return fc.oneof(...edits);
}

/**
 * A policy change applied to the real maps, one map change at a time (applyDelta's
 * `each` hook), with a set of packets judged by the real program (tortie_to_pod through
 * BPF_PROG_TEST_RUN, each a new flow) after every single change: each packet must get
 * the verdict the old policy gives it or the one the new policy gives it — never a third
 * (another rule, a default, DROP_NO_POLICY). The edits are the kind the incremental
 * compile changes in place (rules appended, replaced, removed among nested prefixes), and
 * one the full path handles (a rule over every address: a new set, the endpoint switches).
 *
 * Root only (bpffs, BPF_PROG_TEST_RUN).
 */
import { afterAll, beforeAll, expect, it } from 'vitest';

import { applyDelta } from '../../src/dataplane/apply.js';
import { EventType, TcAction } from '../../src/maps/index.js';
import { PolicyCompiler, type LocalEndpoint } from '../../src/policy/compile/index.js';
import type { Endpoint, Rule, World } from '../../src/policy/model.js';
import { frame, PROTO, TCP, tcp, udp } from '../../src/util/packets.js';
import { BpfHarness, clearMap, LOOPBACK } from './bpf-harness.js';

const POD = '10.0.0.1';

let h: BpfHarness;

beforeAll(() => {
  h = new BpfHarness({ traceVerdicts: true, dropEvents: false });
  h.reset();
});

afterAll(() => h?.close());

const pod: Endpoint = {
  key: 'ns/srv',
  namespace: 'ns',
  name: 'srv',
  ip: POD,
  labels: { app: 'srv' },
  profiles: ['kns.ns'],
  ports: [],
};
const locals: LocalEndpoint[] = [{ endpoint: pod, ifindex: LOOPBACK, id: 7 }];

function rule(action: Rule['action'], net: string, ports: number[], protocol = 6): Rule {
  return {
    action,
    protocol,
    source: { nets: [net] },
    destination: { ports: ports.map((p) => ({ kind: 'range' as const, from: p, to: p })) },
  };
}

function world(ingress: Rule[]): World {
  return {
    endpoints: [pod],
    namespaces: [{ name: 'ns', labels: {} }],
    networkSets: [],
    tiers: [],
    policies: [
      {
        name: 'srv',
        namespace: 'ns',
        tier: 'default',
        order: 1,
        selector: "app == 'srv'",
        types: ['Ingress'],
        ingress,
        egress: [],
      },
    ],
    profiles: [
      { name: 'kns.ns', ingress: [{ action: 'Allow', source: {}, destination: {} }], egress: [] },
    ],
  };
}

const PEERS = ['10.9.1.7', '10.9.1.3', '10.9.1.100', '10.9.2.5', '10.9.3.1', '10.9.200.1'];
const PACKETS = [
  ...[...PEERS, '10.8.0.3', '10.8.0.25', '10.7.0.1'].flatMap((peer) =>
    [80, 443, 22, 9003].map((port) => ({ peer, proto: PROTO.TCP, port })),
  ),
  ...PEERS.map((peer) => ({ peer, proto: PROTO.UDP, port: 53 })),
];

/** What the program decides for each packet, as a new flow: "retval:reason:rule". */
function outcomes(): string[] {
  return PACKETS.map(({ peer, proto, port }) => {
    clearMap(h.dp.maps.ct);
    h.events();
    const l4 =
      proto === PROTO.TCP
        ? tcp({ sport: 40000, dport: port, flags: TCP.SYN })
        : udp({ sport: 40000, dport: port });
    const { retval } = h.run('toPod', frame({ src: peer, dst: POD }, l4));
    const v = h.events().find((e) => e.type === EventType.VERDICT);
    return `${retval}:${v?.reason ?? '-'}:${v?.rule_id ?? '-'}`;
  });
}

it('packets judged between every single map change of an update get the old verdict or the new one', () => {
  const base: Rule[] = [
    rule('Deny', '10.9.1.7/32', [80]),
    rule('Allow', '10.9.1.0/24', [80]),
    rule('Allow', '10.9.0.0/16', [80, 443]),
    ...Array.from({ length: 6 }, (_, k) => rule('Allow', `10.8.0.${k}/32`, [9000 + k])),
  ];
  const edits: { what: string; rules: Rule[] }[] = [
    {
      what: 'a /28 denied inside the /24, appended',
      rules: [...base, rule('Deny', '10.9.1.0/28', [80, 443, 22])],
    },
    {
      what: 'a /32 allowed, appended',
      rules: [
        ...base,
        rule('Deny', '10.9.1.0/28', [80, 443, 22]),
        rule('Allow', '10.9.1.7/32', [9003]),
      ],
    },
    {
      what: 'the last rule replaced by a /23',
      rules: [...base, rule('Allow', '10.9.2.0/23', [22, 80])],
    },
    {
      // The /24 becomes one piece: its many old prefixes give way to one new /24 entry.
      what: 'the /32 deny replaced by one elsewhere',
      rules: [rule('Deny', '10.7.0.1/32', [80]), ...base.slice(1)],
    },
    {
      what: 'the /24 rule removed (the rules after it renumbered)',
      rules: base.filter((_, i) => i !== 1),
    },
    {
      what: 'a UDP deny over every address first (full compile, a new set)',
      rules: [{ action: 'Deny', protocol: 17, source: {}, destination: {} }, ...base],
    },
  ];
  const compiler = new PolicyCompiler();
  applyDelta(h.dp.maps, compiler.update(world(base), locals).delta);
  let before = outcomes();
  let inPlace = 0;
  for (const edit of edits) {
    const { state, delta } = compiler.update(world(edit.rules), locals);
    const setBefore = h.dp.views.ifaces.lookup(LOOPBACK)!.ingress_set;
    const between: string[][] = [];
    applyDelta(h.dp.maps, delta, () => between.push(outcomes()));
    const after = outcomes();
    expect(after, `${edit.what}: the change changes some verdict`).not.toEqual(before);
    expect(between.length, edit.what).toBe(
      Object.values(delta).reduce((n, list: readonly unknown[]) => n + list.length, 0),
    );
    for (const [step, seen] of between.entries()) {
      for (const [i, got] of seen.entries()) {
        const p = PACKETS[i]!;
        expect(
          [before[i], after[i]],
          `${edit.what}, after map change ${step + 1}: ${p.peer} ${p.proto}/${p.port}`,
        ).toContain(got);
      }
    }
    if (state.endpoints.get(LOOPBACK)!.ingressSet === setBefore) inPlace++;
    // Every verdict is a real one: no packet of the final state misses the policy.
    for (const o of after)
      expect(o.startsWith(`${TcAction.OK}:`) || o.startsWith(`${TcAction.SHOT}:`)).toBe(true);
    before = after;
  }
  expect(inPlace, 'edits changed the set in place').toBeGreaterThanOrEqual(4);
});

/**
 * The policy lookup of the real programs (BPF_PROG_TEST_RUN, root): each stage is stored
 * over an exact hash and an LPM trie (and, for ports, a hash of class defaults), and the
 * programs must find in them exactly what one longest-prefix match over the whole stage
 * would (bpf/tortie_maps.h, "policy"). The compiler's own output has disjoint prefixes
 * apart from the /0s; these tables nest prefixes on purpose, so the order in which the
 * maps are tried is what decides.
 *
 * The endpoint under test is 10.0.0.1 on ifindex 1; every packet is a TCP SYN (or UDP)
 * it receives (tortie_to_pod, ingress set 20), judged as a new flow. Verdict tracing is
 * on: the VERDICT event names the deciding rule.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import {
  Action,
  EventType,
  ipToU32,
  l4Value,
  polL4Slot,
  polSportKey,
  Reason,
  TcAction,
  type VerdictValue,
} from '../../src/maps/index.js';
import { frame, PROTO, TCP, tcp, udp } from '../../src/util/packets.js';
import { BpfHarness, clearMap, LOOPBACK } from './bpf-harness.js';

const POD = '10.0.0.1';
const EP = 7;
const SET = 20;

let h: BpfHarness;

beforeAll(() => {
  h = new BpfHarness({ traceVerdicts: true, dropEvents: false });
});

afterAll(() => h?.close());

beforeEach(() => {
  h.reset();
  h.endpoint(LOOPBACK, { ip: POD, id: EP, ingressSet: SET });
});

/** A (proto, port) prefix of `bits` over the 24-bit l4 value, in the map of its length. */
function l4Entry(classId: number, proto: number, port: number, bits: number, v: VerdictValue) {
  const slot = polL4Slot(classId, l4Value(proto, port), bits);
  const views = h.dp.views;
  if (slot.map === 'polPort') views.polPort.update(slot.key, v);
  else if (slot.map === 'polL4') views.polL4.update(slot.key, v);
  else views.polDflt.update(slot.key, v);
}

const allow = (ruleId: number): VerdictValue => ({
  action: Action.ALLOW,
  flags: 0,
  reserved: 0,
  rule_id: ruleId,
});
const deny = (ruleId: number): VerdictValue => ({ ...allow(ruleId), action: Action.DENY });

/** Judges one new flow from `peer` and returns what the program decided. */
function judge(peer: string, proto: number, port: number, sport = 40000) {
  clearMap(h.dp.maps.ct);
  h.events();
  const l4 =
    proto === PROTO.TCP ? tcp({ sport, dport: port, flags: TCP.SYN }) : udp({ sport, dport: port });
  const { retval } = h.run('toPod', frame({ src: peer, dst: POD }, l4));
  const verdict = h.events().find((e) => e.type === EventType.VERDICT);
  return { retval, reason: verdict?.reason, rule: verdict?.rule_id };
}

describe('address stage: the /32 hash before the prefix trie', () => {
  beforeEach(() => {
    // Classes 1..4 decide everything with their default, each under its own rule.
    h.policySet(SET, [
      { cidr: '0.0.0.0/0', classId: 1 },
      { cidr: '10.1.0.0/16', classId: 2 },
      { cidr: '10.1.2.0/24', classId: 3 },
      { cidr: '10.1.2.3/32', classId: 4 },
      { cidr: '10.1.2.5/32', classId: 4 },
    ]);
    for (const c of [1, 2, 3, 4]) h.policyClass(c, [{ action: 'allow', ruleId: c * 10 }]);
  });

  it('stores the /32s in tortie_pol_ip32 and the shorter prefixes in tortie_pol_addr', () => {
    expect(h.dp.views.polIp32.entries().map(([k]) => k.addr)).toEqual(
      expect.arrayContaining([ipToU32('10.1.2.3'), ipToU32('10.1.2.5')]),
    );
    expect(h.dp.views.polIp32.entries()).toHaveLength(2);
    expect(
      h.dp.views.polAddr
        .entries()
        .map(([k]) => k.prefixlen - 32)
        .sort((a, b) => a - b),
    ).toEqual([0, 16, 24]);
  });

  it.each([
    ['10.1.2.3', 40, 'its /32'],
    ['10.1.2.5', 40, 'its /32'],
    ['10.1.2.4', 30, 'the /24 (a neighbour of the /32s)'],
    ['10.1.9.9', 20, 'the /16'],
    ['192.0.2.1', 10, 'the /0'],
  ])('judges %s by rule %i: the class of %s', (peer, rule, _why) => {
    expect(judge(peer, PROTO.TCP, 80)).toEqual({
      retval: TcAction.OK,
      reason: Reason.PASS_POLICY,
      rule,
    });
  });

  it('fails closed for a peer no entry of the set covers (no /0)', () => {
    h.dp.views.polAddr.delete({ prefixlen: 32, set_id: SET, addr: 0 });
    expect(judge('192.0.2.1', PROTO.TCP, 80)).toEqual({
      retval: TcAction.SHOT,
      reason: Reason.DROP_NO_POLICY,
      rule: 0,
    });
    expect(judge('10.1.2.3', PROTO.TCP, 80).rule).toBe(40);
  });
});

describe('port stage: the exact-port hash, then the trie, then the class default', () => {
  beforeEach(() => {
    h.policySet(SET, [
      { cidr: '0.0.0.0/0', classId: 5 },
      { cidr: '10.9.9.9/32', classId: 6 },
    ]);
    // Class 5, nested: default deny; TCP allowed; TCP 1024..2047 denied; TCP 1500 allowed.
    l4Entry(5, 0, 0, 0, deny(50));
    l4Entry(5, PROTO.TCP, 0, 8, allow(51));
    l4Entry(5, PROTO.TCP, 1024, 14, deny(52));
    l4Entry(5, PROTO.TCP, 1500, 24, allow(53));
    // Class 6: only a default — the trie entries of class 5 must not reach it.
    l4Entry(6, 0, 0, 0, allow(60));
  });

  it('stores each entry in the map of its length', () => {
    expect(h.dp.views.polPort.entries()).toHaveLength(1);
    expect(
      h.dp.views.polL4
        .entries()
        .map(([k]) => k.prefixlen - 40)
        .sort((a, b) => a - b),
    ).toEqual([8, 14]);
    expect(
      h.dp.views.polDflt
        .entries()
        .map(([k]) => k)
        .sort((a, b) => a - b),
    ).toEqual([5, 6]);
  });

  it.each([
    [PROTO.TCP, 1500, TcAction.OK, 53, 'the exact port inside a denied range'],
    [PROTO.TCP, 1501, TcAction.SHOT, 52, 'the range inside the allowed protocol'],
    [PROTO.TCP, 80, TcAction.OK, 51, 'the protocol'],
    [PROTO.UDP, 1500, TcAction.SHOT, 50, 'the class default'],
  ])('judges proto %i port %i as tc %i by rule %i: %s', (proto, port, retval, rule, _why) => {
    expect(judge('192.0.2.1', proto, port)).toMatchObject({ retval, rule });
  });

  it('judges another class only by its own entries', () => {
    expect(judge('10.9.9.9', PROTO.TCP, 1501)).toMatchObject({ retval: TcAction.OK, rule: 60 });
  });

  it('fails closed when a class has no entry for the packet (no default)', () => {
    h.dp.views.polDflt.delete(5);
    expect(judge('192.0.2.1', PROTO.UDP, 1500)).toEqual({
      retval: TcAction.SHOT,
      reason: Reason.DROP_NO_POLICY,
      rule: 0,
    });
    expect(judge('192.0.2.1', PROTO.TCP, 1500).rule).toBe(53);
  });
});

describe('source-port stage: reached only through a BY_SPORT verdict', () => {
  const bySport = (sportClass: number): VerdictValue => ({
    action: Action.BY_SPORT,
    flags: 0,
    reserved: 0,
    rule_id: sportClass,
  });
  const sportEntry = (sportClass: number, sport: number, bits: number, v: VerdictValue) =>
    h.dp.views.polSport.update(polSportKey(sportClass, sport, bits), v);

  beforeEach(() => {
    h.policySet(SET, [{ cidr: '0.0.0.0/0', classId: 5 }]);
    // Class 5: TCP 80 depends on the source port (source-port class 9); the rest denied.
    l4Entry(5, 0, 0, 0, deny(50));
    l4Entry(5, PROTO.TCP, 80, 24, bySport(9));
    // Source-port class 9: 40000 allowed by rule 91, 40000..40063 (6 bits) denied by 92,
    // everything else allowed by 90.
    sportEntry(9, 0, 0, allow(90));
    sportEntry(9, 40000 & ~63, 10, deny(92));
    sportEntry(9, 40000, 16, allow(91));
  });

  it.each([
    [40000, TcAction.OK, 91, 'the exact source port'],
    [40001, TcAction.SHOT, 92, 'the source-port prefix around it'],
    [50000, TcAction.OK, 90, "the source-port class's default"],
  ])('judges TCP 80 from source port %i as tc %i by rule %i: %s', (sport, retval, rule, _why) => {
    expect(judge('192.0.2.1', PROTO.TCP, 80, sport)).toMatchObject({ retval, rule });
  });

  it('never reads the source port for a port the class decides itself', () => {
    expect(judge('192.0.2.1', PROTO.TCP, 81, 40000)).toMatchObject({
      retval: TcAction.SHOT,
      rule: 50,
    });
  });

  it('fails closed when the named source-port class has no entry', () => {
    h.dp.views.polSport.delete(polSportKey(9, 0, 0));
    expect(judge('192.0.2.1', PROTO.TCP, 80, 50000)).toEqual({
      retval: TcAction.SHOT,
      reason: Reason.DROP_NO_POLICY,
      rule: 0,
    });
  });
});

/**
 * Conntrack capacity and fairness through the real tc programs (BPF_PROG_TEST_RUN,
 * root): tortie_ct_new counts the entries each endpoint creates, exactly once per
 * created entry; what a flood of another pod's flows does to an endpoint's entries in
 * the node-wide LRU; what counting tortie_ct costs when it is full. The measurements
 * are printed (docs/dataplane.md, "Conntrack capacity and fairness", quotes them), never
 * asserted on time.
 *
 * The endpoint under test is 10.0.0.1 (id 7) on ifindex 1 (loopback, what test runs
 * use); its egress and ingress allow TCP 80 and ICMP with 10.0.0.2 and deny the rest.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { conntrackPressure } from '../../src/dataplane/node-dataplane.js';
import {
  Dir,
  ipToU32,
  MAPS,
  Reason,
  TcAction,
  type CtEntry,
  type CtKey,
} from '../../src/maps/index.js';
import { frame, icmpEcho, PROTO, TCP, tcp } from '../../src/util/packets.js';
import { BpfHarness, LOOPBACK } from './bpf-harness.js';

const POD = '10.0.0.1';
const PEER = '10.0.0.2';
const EP = 7;

function seed(h: BpfHarness): void {
  h.endpoint(LOOPBACK, { ip: POD, id: EP, egressSet: 10, ingressSet: 20 });
  for (const set of [10, 20]) {
    h.policySet(set, [
      { cidr: `${PEER}/32`, classId: 1 },
      { cidr: '0.0.0.0/0', classId: 2 },
    ]);
  }
  h.policyClass(1, [
    { proto: PROTO.TCP, port: 80, action: 'allow', ruleId: 101 },
    { proto: PROTO.ICMP, action: 'allow', ruleId: 103 },
    { action: 'deny', ruleId: 102 },
  ]);
  h.policyClass(2, [{ action: 'deny', ruleId: 201 }]);
}

const synOut = (sport: number, dport = 80): Buffer =>
  frame({ src: POD, dst: PEER }, tcp({ sport, dport, flags: TCP.SYN }));
const synIn = (sport: number): Buffer =>
  frame({ src: PEER, dst: POD }, tcp({ sport, dport: 80, flags: TCP.SYN }));

/** tortie_ct_new[ep], summed over CPUs; 0 when absent. */
function created(h: BpfHarness, ep: number): bigint {
  return h.dp.views.ctNew.lookupSum(ep) ?? 0n;
}

describe('conntrack pressure', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness();
  });
  afterAll(() => {
    h?.close();
  });
  beforeEach(() => {
    h.reset();
    seed(h);
  });

  it('counts each created entry once for the endpoint that caused it: sender on from_pod, receiver on to_pod', () => {
    for (let i = 0; i < 50; i++)
      expect(h.run('fromPod', synOut(30000 + i)).retval).toBe(TcAction.OK);
    expect(created(h, EP)).toBe(50n);
    // Another packet of a tracked flow creates nothing.
    expect(h.run('fromPod', synOut(30000)).retval).toBe(TcAction.OK);
    expect(created(h, EP)).toBe(50n);
    // Flows that reach the pod count for it as their receiver.
    for (let i = 0; i < 20; i++) expect(h.run('toPod', synIn(50000 + i)).retval).toBe(TcAction.OK);
    expect(created(h, EP)).toBe(70n);
    expect(h.dp.maps.ct.count()).toBe(70);
    expect(h.dp.views.ctNew.entriesSum()).toEqual([[EP, 70n]]);
  });

  it('a denied flow, and an echo reply (which opens nothing), create no entry and count nothing', () => {
    expect(h.run('fromPod', synOut(30000, 22)).retval).toBe(TcAction.SHOT);
    const reply = frame({ src: POD, dst: PEER }, icmpEcho({ id: 9, reply: true }));
    expect(h.run('fromPod', reply).retval).toBe(TcAction.OK);
    expect(created(h, EP)).toBe(0n);
    expect(h.dp.maps.ct.count()).toBe(0);
  });

  it('conntrackPressure(): entries, capacity, created per endpoint, removed = created − present', () => {
    for (let i = 0; i < 30; i++) h.run('fromPod', synOut(30000 + i));
    // A revoked or evicted entry leaves the count behind: 10 go, as the LRU would take them.
    const keys = h.dp.maps.ct.entries().keys.slice(0, 10);
    h.dp.maps.ct.deleteBatch(Buffer.concat(keys));
    const p = conntrackPressure(h.dp);
    expect(p.entries).toBe(20);
    expect(p.capacity).toBe(262144);
    expect(p.created).toBe(30n);
    expect(p.removed).toBe(10n);
    expect(p.byEndpoint).toEqual([{ epId: EP, created: 30n }]);
  });

  /** `n` distinct flows of another pod (10.1.x.x), written as the flood's inserts would be. */
  function flood(n: number, base: number): void {
    const chunk = 16384;
    const entry: CtEntry = {
      created_ns: 1n,
      last_seen_ns: 1n,
      src_ifindex: 0,
      dst_ifindex: 0,
      src_rev: 0,
      dst_rev: 0,
      rule_id: 0,
      state: 1,
      flags: 0,
      reserved: 0,
    };
    const value = MAPS.ct.value.encode(entry);
    for (let at = 0; at < n; at += chunk) {
      const count = Math.min(chunk, n - at);
      const keys: Buffer[] = [];
      for (let i = 0; i < count; i++) {
        const k = base + at + i;
        const key: CtKey = {
          saddr: ipToU32('10.1.0.0') + (k >>> 16),
          daddr: ipToU32(PEER),
          sport: k & 0xffff,
          dport: 80,
          proto: PROTO.TCP,
          icmp_query: 0,
        };
        keys.push(MAPS.ct.key.encode(key));
      }
      h.dp.maps.ct.updateBatch(Buffer.concat(keys), Buffer.concat(keys.map(() => value)));
    }
  }

  function survivors(n: number): number {
    let alive = 0;
    for (let i = 0; i < n; i++) {
      const key: CtKey = {
        saddr: ipToU32(POD),
        daddr: ipToU32(PEER),
        sport: 30000 + i,
        dport: 80,
        proto: PROTO.TCP,
        icmp_query: 0,
      };
      if (h.dp.maps.ct.lookup(MAPS.ct.key.encode(key)) !== null) alive++;
    }
    return alive;
  }

  it('measured: a flood of 1.5 × capacity flows from another pod evicts an idle pod’s entries, not an active one’s', () => {
    const mine = 1000;
    const cap = h.dp.maps.ct.info().maxEntries;
    // Idle: the pod's flows see no packet while the flood goes on.
    for (let i = 0; i < mine; i++) h.run('fromPod', synOut(30000 + i));
    flood(Math.round(cap * 1.5), 0);
    const idle = survivors(mine);

    h.reset();
    seed(h);
    // Active: each of the pod's flows sends a packet between chunks of 16,384 flood flows.
    for (let i = 0; i < mine; i++) h.run('fromPod', synOut(30000 + i));
    const rounds = Math.ceil((cap * 1.5) / 16384);
    for (let r = 0; r < rounds; r++) {
      flood(16384, r * 16384);
      for (let i = 0; i < mine; i++) h.run('fromPod', synOut(30000 + i));
    }
    const active = survivors(mine);
    const recreated = created(h, EP) - BigInt(mine);
    console.log(
      `conntrack fairness: ${mine} flows of one pod, then ${Math.round(cap * 1.5)} flows of another: ` +
        `${idle} survive when idle, ${active} when each sees a packet every 16,384 flood flows; ` +
        `(${recreated} of its entries evicted and created again by its next SYN meanwhile); ` +
        `map holds ${h.dp.maps.ct.count()} of ${cap}`,
    );
    // A re-sent SYN of a live flow creates nothing; one whose entry was evicted creates it again.
    expect(recreated).toBeGreaterThanOrEqual(0n);
    expect(active).toBeGreaterThan(idle);
  });

  it('measured: counting a full tortie_ct (batch lookup) against reading every entry', () => {
    const cap = h.dp.maps.ct.info().maxEntries;
    flood(cap, 0);
    const t0 = performance.now();
    const n = h.dp.maps.ct.count();
    const t1 = performance.now();
    const all = h.dp.maps.ct.entries().keys.length;
    const t2 = performance.now();
    expect(all).toBe(n);
    expect(n).toBeGreaterThan(cap * 0.9);
    console.log(
      `conntrack count: ${n} entries; count() ${(t1 - t0).toFixed(1)} ms, entries() ${(t2 - t1).toFixed(1)} ms`,
    );
  });
});

describe('the new-flow budget (ctNewFlowBudget: 1 flow an hour, bursts of 5)', () => {
  let h: BpfHarness;
  beforeAll(() => {
    h = new BpfHarness({ ctNewFlowBudget: { perSecond: 1 / 3600, burst: 5 } });
  });
  afterAll(() => {
    h?.close();
  });
  beforeEach(() => {
    h.reset();
    seed(h);
  });

  it('a pod opens its burst, then its next new flow drops as DROP_CT_BUDGET and leaves no entry', () => {
    for (let i = 0; i < 5; i++)
      expect(h.run('fromPod', synOut(30000 + i)).retval).toBe(TcAction.OK);
    expect(h.run('fromPod', synOut(30005)).retval).toBe(TcAction.SHOT);
    expect(h.metric(EP, Reason.DROP_CT_BUDGET, Dir.FROM_POD).packets).toBe(1n);
    expect(h.events().map((e) => e.reason)).toEqual([Reason.DROP_CT_BUDGET]);
    expect(created(h, EP)).toBe(5n);
    expect(h.dp.maps.ct.count()).toBe(5);
  });

  it('its tracked flows, replies that open nothing and flows it receives are not charged', () => {
    for (let i = 0; i < 5; i++) h.run('fromPod', synOut(30000 + i));
    expect(h.run('fromPod', synOut(30000)).retval).toBe(TcAction.OK); // tracked
    const reply = frame({ src: POD, dst: PEER }, icmpEcho({ id: 9, reply: true }));
    expect(h.run('fromPod', reply).retval).toBe(TcAction.OK);
    expect(h.run('toPod', synIn(50000)).retval).toBe(TcAction.OK);
    expect(h.metric(EP, Reason.DROP_CT_BUDGET, Dir.FROM_POD).packets).toBe(0n);
    expect(created(h, EP)).toBe(6n);
  });

  it('the budget is per pod: another endpoint still opens flows when one has spent its own', () => {
    for (let i = 0; i < 6; i++) h.run('fromPod', synOut(30000 + i));
    expect(h.metric(EP, Reason.DROP_CT_BUDGET, Dir.FROM_POD).packets).toBe(1n);
    // Endpoint 8 on the same interface (test runs have only loopback): its own bucket.
    h.endpoint(LOOPBACK, { ip: POD, id: 8, egressSet: 10, ingressSet: 20 });
    for (let i = 0; i < 5; i++)
      expect(h.run('fromPod', synOut(40000 + i)).retval).toBe(TcAction.OK);
    expect(h.run('fromPod', synOut(40005)).retval).toBe(TcAction.SHOT);
    expect(created(h, 8)).toBe(5n);
    expect(h.metric(8, Reason.DROP_CT_BUDGET, Dir.FROM_POD).packets).toBe(1n);
  });
});

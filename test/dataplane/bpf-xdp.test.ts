/**
 * The uplink's deny list through the real XDP program (bpf/xdp_uplink.o,
 * BPF_PROG_TEST_RUN, root): a deny-listed source is dropped, counted under
 * DROP_XDP_DENY and reported; any other source, and anything not IPv4, passes
 * uncounted (tc ingress counts it); the longest prefix names the rule.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { loadXdp, removePins, type XdpDataplane } from '../../src/loader/index.js';
import {
  Dir,
  eventCodec,
  EventType,
  ipToU32,
  MAPS,
  PerCpuMap,
  Reason,
  type EventRecord,
} from '../../src/maps/index.js';
import { native } from '../../src/native/index.js';
import type { RingBuffer } from '../../src/native/types.js';
import {
  arpRequest,
  frame,
  icmpEcho,
  ipv6,
  ethernet,
  tcp,
  TCP,
  udp,
} from '../../src/util/packets.js';
import { execInOk, newRunId, runPrefix, TestNetnsSet } from '../helpers/netns.js';
import { buildObject } from './bpf-harness.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
const NODE = '192.168.50.1';

let xdp: XdpDataplane;
let pinRoot: string;
let ring: RingBuffer;
let queued: EventRecord[] = [];
let metrics: PerCpuMap<
  { ep_id: number; reason: number; dir: number },
  { packets: bigint; bytes: bigint }
>;

function deny(cidr: string, ruleId: number): void {
  const [ip, bits] = cidr.split('/');
  xdp.deny.update({ prefixlen: Number(bits), addr: ipToU32(ip!) }, { rule_id: ruleId });
}

function run(data: Buffer): number {
  return native.testRun(xdp.program.fd, { data }).retval;
}

function events(): EventRecord[] {
  ring.consume();
  const out = queued;
  queued = [];
  return out;
}

function denied(): bigint {
  return (
    metrics.lookupSum({ ep_id: 0, reason: Reason.DROP_XDP_DENY, dir: Dir.FROM_UPLINK })?.packets ??
    0n
  );
}

const from = (src: string): Buffer =>
  frame({ src, dst: NODE }, tcp({ sport: 40000, dport: 22, flags: TCP.SYN }));

beforeAll(() => {
  buildObject();
  pinRoot = `/sys/fs/bpf/${runPrefix(newRunId())}`;
  // Every drop reported: the test counts events one by one.
  xdp = loadXdp({ pinRoot, config: { eventIntervalUs: 0 } });
  const metricsMap = native.openPinnedMap(`${pinRoot}/${MAPS.metrics.name}`);
  metrics = new PerCpuMap(metricsMap, MAPS.metrics);
  ring = native.ringBuffer(native.openPinnedMap(`${pinRoot}/tortie_events`).fd, (rec) =>
    queued.push(eventCodec.decode(rec)),
  );
});

afterAll(() => {
  ring?.close();
  xdp?.close();
  if (pinRoot) removePins(pinRoot);
});

beforeEach(() => {
  for (const [k] of xdp.deny.entries()) xdp.deny.delete(k);
  for (const [k] of metrics.entriesSum()) metrics.delete(k);
  events();
});

describe('XDP deny list on the uplink', () => {
  it('drops a deny-listed source, counts it and reports it with its rule', () => {
    deny('198.51.100.0/24', 7);
    const packet = frame({ src: '198.51.100.9', dst: NODE }, udp({ sport: 5353, dport: 53 }));
    expect(run(packet)).toBe(XDP_DROP);
    expect(
      metrics.lookupSum({ ep_id: 0, reason: Reason.DROP_XDP_DENY, dir: Dir.FROM_UPLINK }),
    ).toEqual({ packets: 1n, bytes: BigInt(packet.length) });
    const [ev, ...rest] = events();
    expect(rest).toEqual([]);
    expect(ev).toMatchObject({
      type: EventType.DROP,
      reason: Reason.DROP_XDP_DENY,
      dir: Dir.FROM_UPLINK,
      rule_id: 7,
      saddr: ipToU32('198.51.100.9'),
      daddr: ipToU32(NODE),
      proto: 17,
      sport: 5353,
      dport: 53,
    });
  });

  it('passes every other source uncounted, and frames that are not IPv4', () => {
    deny('198.51.100.0/24', 7);
    expect(run(from('198.51.101.1'))).toBe(XDP_PASS);
    expect(run(arpRequest({ senderIp: '198.51.100.9', target: NODE }))).toBe(XDP_PASS);
    expect(run(ethernet(ipv6()))).toBe(XDP_PASS);
    expect(run(from('198.51.100.9').subarray(0, 20))).toBe(XDP_PASS); // truncated: tc's to judge
    expect(metrics.entriesSum()).toEqual([]);
    expect(events()).toEqual([]);
  });

  it('passes everything with an empty list', () => {
    expect(run(from('198.51.100.9'))).toBe(XDP_PASS);
    expect(denied()).toBe(0n);
  });

  it('names the rule of the longest matching prefix', () => {
    deny('10.0.0.0/8', 1);
    deny('10.1.0.0/16', 2);
    deny('10.1.2.3/32', 3);
    const ruleOf = (src: string): number | undefined => {
      expect(run(frame({ src, dst: NODE }, icmpEcho({ id: 1 })))).toBe(XDP_DROP);
      return events()[0]?.rule_id;
    };
    expect(ruleOf('10.9.9.9')).toBe(1);
    expect(ruleOf('10.1.9.9')).toBe(2);
    expect(ruleOf('10.1.2.3')).toBe(3);
    expect(denied()).toBe(3n);
    // A /0 denies every IPv4 source.
    deny('0.0.0.0/0', 4);
    expect(ruleOf('203.0.113.1')).toBe(4);
  });

  it('stops dropping as soon as the entry is deleted', () => {
    deny('198.51.100.7/32', 9);
    expect(run(from('198.51.100.7'))).toBe(XDP_DROP);
    xdp.deny.delete({ prefixlen: 32, addr: ipToU32('198.51.100.7') });
    expect(run(from('198.51.100.7'))).toBe(XDP_PASS);
  });
});

describe('XDP attach: native where the driver has it, generic otherwise (if allowed), swapped in place', () => {
  const nets = new TestNetnsSet(newRunId());
  afterAll(() => nets.removeAll());

  it('veth takes it natively, loopback generically; a second attach replaces in the same mode', async () => {
    const ns = await nets.create('xdp');
    await execInOk(ns.path, 'ip', ['link', 'add', 'ul', 'type', 'veth', 'peer', 'ulp']);
    await execInOk(ns.path, 'ip', ['link', 'set', 'lo', 'up']);
    const ul = (
      JSON.parse((await execInOk(ns.path, 'ip', ['-j', 'link', 'show', 'ul'])).stdout) as {
        ifindex: number;
      }[]
    )[0]!.ifindex;
    const at = { netnsPath: ns.path };

    expect(xdp.attach(ul, at)).toBe('native');
    const first = xdp.info(ul, at);
    expect(first).toMatchObject({ mode: 'native', skbProgId: 0 });
    expect(first.drvProgId).toBeGreaterThan(0);

    // Loopback has no driver XDP: the generic hook, and it stays there on re-attach.
    expect(xdp.attach(1, at)).toBe('generic');
    expect(xdp.attach(1, at)).toBe('generic');
    expect(xdp.info(1, at)).toMatchObject({ mode: 'generic', drvProgId: 0 });

    // Another program (a second load on the same pins) swaps in, still native.
    const other = loadXdp({ pinRoot });
    try {
      expect(other.attach(ul, at)).toBe('native');
      expect(xdp.info(ul, at).drvProgId).not.toBe(first.drvProgId);
    } finally {
      other.close();
    }
    // genericXDPEnabled false: native only. The generic program is taken off, and
    // loopback refuses a native one.
    expect(() => xdp.attach(1, { ...at, allowGeneric: false })).toThrow(/native:/);
    expect(xdp.info(1, at).mode).toBe('none');
    expect(xdp.attach(ul, { ...at, allowGeneric: false })).toBe('native');
    expect(xdp.detach(ul, at)).toBe(true);
    expect(xdp.detach(1, at)).toBe(false);
    expect(xdp.info(ul, at).mode).toBe('none');
    expect(xdp.detach(ul, at)).toBe(false);
  });
});

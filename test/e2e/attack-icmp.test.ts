/**
 * Issue 11, attack 3, end to end (root): ICMP through conntrack, on a 2-node BPF lab
 * with IPIP.
 *
 * The attack, two parts:
 *  1. An ICMP error (3/3, 3/4, 11/0, 5/1) that quotes a live flow passed as
 *     PASS_CT_RELATED whoever sent it: a third pod M, which the target T's ingress
 *     denies entirely, could send "fragmentation needed" or "unreachable" into T by
 *     quoting T's flow to its peer P.
 *  2. The ICMP type was not part of the conntrack key: during a ping from A to B, B could
 *     send echo requests and timestamp requests with the ping's identifier into A,
 *     whose ingress denies all — they matched the ping's entry as its replies.
 *
 * The lab: T (ingress denied entirely by a NetworkPolicy; its egress open) and P on
 * node 0; M0 on node 0 and M1 on node 1. Part 2 uses T as A and P as B.
 * Packets are crafted with python3 raw sockets in the pods' namespaces; a python3 raw
 * ICMP socket in T's namespace records every ICMP message T receives that carries a
 * tag ("tag:<word>" in its payload or, for an error, in the quoted datagram's payload).
 *
 * What must hold:
 *  - part 1, per sender M0 (same node) and M1 (other node): T receives none of the 4
 *    error types × N, and the dataplane counts them as DROP_POLICY; control: the same
 *    errors sent by P (the quoted flow's peer) afterwards reach T (all of them, as
 *    PASS_CT_RELATED);
 *  - part 2: T receives none of P's echo or timestamp requests with the ping's id, and
 *    they are counted as DROP_POLICY; control: T's pings to P (same id) are answered,
 *    before and after.
 * Every wait is on a condition (a counter, a message that arrives); the bounds only say
 * when to give up.
 *
 * Before the conntrack change (af3ac0c; this file run on 9d50673, its own build): every
 * error of the third pods reached T — 40/40 from M0 and 40/40 from M1, 10 of each type,
 * counted as PASS_CT_RELATED, DROP_POLICY +0 — and 10/10 echo and 10/10 timestamp
 * requests of P with the ping's id reached T, DROP_POLICY +0. After: 0/40, 0/40, 0/10,
 * 0/10, each counted as DROP_POLICY (40, 40, 20); the controls unchanged (P's 40/40
 * errors reach T as PASS_CT_RELATED, T's pings are answered).
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClusterLab,
  destroyClusterLab,
  type ClusterNode,
  type ClusterPod,
} from '../../src/lab/cluster/cluster-lab.js';
import { Reason } from '../../src/maps/index.js';
import { newLabId } from '../helpers/netns.js';
import { runPython, startPython, type NsScript } from '../helpers/pod-scripts.js';
import { until } from '../helpers/wait.js';

const FLOW_SPORT = 40011;
const FLOW_DPORT = 9913;
const N = 10; // of each error type per sender
const PING_ID = 0x4d2b;
const ERRORS: readonly [number, number][] = [
  [3, 3],
  [3, 4],
  [11, 0],
  [5, 1],
];

const T_DENY = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: { name: 't-ingress-deny', namespace: 'x' },
  spec: { podSelector: { matchLabels: { app: 't' } }, policyTypes: ['Ingress'] },
};

/** Helpers shared by every python3 script: checksum, IPv4 header. */
const PY_LIB = [
  'import socket, struct, sys',
  'def csum(b):',
  '    if len(b) % 2: b += b"\\0"',
  '    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))',
  '    s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)',
  '    return ~s & 0xffff',
  'def ip(src, dst, proto, payload):',
  '    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,',
  '                    socket.inet_aton(src), socket.inet_aton(dst))',
  '    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload',
  'def icmp(t, c, rest, payload):',
  '    m = struct.pack("!BBH", t, c, 0) + rest + payload',
  '    return m[:2] + struct.pack("!H", csum(m)) + m[4:]',
  'raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)',
  'def send(dst, pkt):',
  '    raw.sendto(pkt, (dst, 0))',
];

/** Runs python3 in `netns` (PY_LIB first); resolves when it exits 0. */
const python = (netns: string, lines: string[]): Promise<void> =>
  runPython(netns, [...PY_LIB, ...lines].join('\n'));

interface Got {
  readonly src: string;
  readonly type: number;
  readonly code: number;
  readonly id: number;
  readonly tag: string;
}

/** A raw ICMP socket in `netns`: records every ICMP message that carries "tag:<word>". */
class IcmpRecorder {
  readonly got: Got[] = [];
  private server: NsScript | undefined;

  static async start(netns: string): Promise<IcmpRecorder> {
    const script = [
      'import socket, struct, re',
      's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)',
      'print("listening", flush=True)',
      'while True:',
      '    d, a = s.recvfrom(65535)',
      '    m = d[(d[0] & 15) * 4:]',
      '    t = re.search(rb"tag:([A-Za-z0-9_-]+)", m)',
      '    if not t: continue',
      '    ident = struct.unpack("!H", m[4:6])[0] if len(m) >= 6 else 0',
      '    print("icmp %s %d %d %d %s" % (a[0], m[0], m[1], ident, t.group(1).decode()), flush=True)',
    ].join('\n');
    const rec = new IcmpRecorder();
    rec.server = await startPython(netns, script, {
      ready: 'listening',
      onLine: (line) => {
        if (!line.startsWith('icmp ')) return;
        const [, src, type, code, ident, tag] = line.split(' ');
        rec.got.push({
          src: src!,
          type: Number(type),
          code: Number(code),
          id: Number(ident),
          tag: tag!,
        });
      },
    });
    return rec;
  }

  tagged(tag: string): Got[] {
    return this.got.filter((g) => g.tag === tag);
  }

  stop(): void {
    this.server?.stop();
  }
}

/** T's UDP flow to P (fixed ports): keeps the conntrack entry live. */
function flowDatagram(t: ClusterPod, p: ClusterPod): Promise<void> {
  return python(t.netns, [
    'u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    'u.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)',
    `u.bind(("0.0.0.0", ${FLOW_SPORT}))`,
    `u.sendto(b"flow", (${JSON.stringify(p.ip)}, ${FLOW_DPORT}))`,
  ]);
}

/**
 * From `from`: N of each error type to T, each quoting T's datagram to P (IP header,
 * UDP header, then "tag:<tag>" as the quoted payload).
 */
function sendErrors(from: ClusterPod, t: ClusterPod, p: ClusterPod, tag: string): Promise<void> {
  return python(from.netns, [
    `data = b"tag:${tag}"`,
    `udp = struct.pack("!HHHH", ${FLOW_SPORT}, ${FLOW_DPORT}, 8 + len(data), 0) + data`,
    `quote = ip(${JSON.stringify(t.ip)}, ${JSON.stringify(p.ip)}, 17, udp)`,
    `errs = ${JSON.stringify(ERRORS)}`,
    `for _ in range(${N}):`,
    '    for ty, co in errs:',
    '        if ty == 3 and co == 4: rest = struct.pack("!HH", 0, 1200)',
    `        elif ty == 5: rest = socket.inet_aton(${JSON.stringify(from.ip)})`,
    '        else: rest = b"\\0\\0\\0\\0"',
    `        send(${JSON.stringify(t.ip)}, ip(${JSON.stringify(from.ip)}, ${JSON.stringify(t.ip)}, 1, icmp(ty, co, rest, quote)))`,
  ]);
}

/** From `from` to `to`: `count` ICMP messages of `type` with PING_ID, payload "tag:<tag>". */
function sendQuery(
  from: ClusterPod,
  to: ClusterPod,
  type: number,
  tag: string,
  count: number,
): Promise<void> {
  return python(from.netns, [
    `for seq in range(${count}):`,
    `    body = (b"\\0" * 12 if ${type} == 13 else b"") + b"tag:${tag}"`,
    `    m = icmp(${type}, 0, struct.pack("!HH", ${PING_ID}, seq), body)`,
    `    send(${JSON.stringify(to.ip)}, ip(${JSON.stringify(from.ip)}, ${JSON.stringify(to.ip)}, 1, m))`,
  ]);
}

/** Packets the lab's dataplanes counted under `reason`, every node, endpoint, direction. */
function counted(nodes: readonly ClusterNode[], reason: number): number {
  let n = 0n;
  for (const node of nodes)
    for (const [k, v] of node.agent!.dataplane.dp.views.metrics.entriesSum())
      if (k.reason === reason) n += v.packets;
  return Number(n);
}

describe('ICMP through conntrack (issue 11, attack 3)', () => {
  const id = newLabId('icm');
  let lab: ClusterLab | undefined;
  let t: ClusterPod; // the target; ingress denied entirely
  let p: ClusterPod; // T's peer
  let m0: ClusterPod; // a third pod, T's node
  let m1: ClusterPod; // a third pod, the other node
  let rec: IcmpRecorder | undefined;
  let seq = 0;

  /** T pings P (PING_ID) until an answer with a fresh tag arrives: the ping is live. */
  const ping = async (): Promise<void> => {
    const tag = `ping${seq++}`;
    for (let i = 0; i < 3 && rec!.tagged(tag).length === 0; i++) {
      await sendQuery(t, p, 8, tag, 1);
      await until(`echo reply ${tag}`, () => rec!.tagged(tag).length > 0, 5_000).catch(
        () => undefined,
      );
    }
    const got = rec!.tagged(tag);
    expect(got.length).toBeGreaterThan(0);
    expect(got.every((g) => g.src === p.ip && g.type === 0 && g.id === PING_ID)).toBe(true);
  };

  beforeAll(async () => {
    lab = await ClusterLab.up({ id, nodes: 2, encap: 'ipip' });
    await lab.createNamespace('x');
    const written = await lab.store!.apply([T_DENY]);
    t = await lab.addPod({ namespace: 'x', name: 't', labels: { app: 't' }, node: 0 });
    p = await lab.addPod({ namespace: 'x', name: 'p', labels: { app: 'p' }, node: 0 });
    m0 = await lab.addPod({ namespace: 'x', name: 'm0', labels: { app: 'm' }, node: 0 });
    m1 = await lab.addPod({ namespace: 'x', name: 'm1', labels: { app: 'm' }, node: 1 });
    await lab.waitForRevision(BigInt(written[0]!.resource.metadata.resourceVersion!));
    rec = await IcmpRecorder.start(t.netns);
  }, 180_000);

  afterAll(async () => {
    rec?.stop();
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`));
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  }, 60_000);

  for (const which of ['m0', 'm1'] as const) {
    it(`errors quoting T's flow, from a third pod (${which === 'm0' ? 'same node' : 'other node'}), do not reach T; the peer's do`, async () => {
      const m = which === 'm0' ? m0 : m1;
      const nodes = lab!.nodes;
      const total = N * ERRORS.length;
      const tag = `err-${which}`;
      const ctag = `ctl-${which}`;
      await flowDatagram(t, p);
      const dropBefore = counted(nodes, Reason.DROP_POLICY);
      const relBefore = counted(nodes, Reason.PASS_CT_RELATED);
      await sendErrors(m, t, p, tag);
      const dropped = () => counted(nodes, Reason.DROP_POLICY) - dropBefore;
      await until(`${total} DROP_POLICY`, () => dropped() >= total).catch(() => undefined);
      const droppedN = dropped();
      const relM = counted(nodes, Reason.PASS_CT_RELATED) - relBefore;
      // Control, sent after: the same errors from the flow's peer reach T (the same last
      // hop into T; anything of M's that got through was sent earlier).
      await flowDatagram(t, p);
      const relCtl = counted(nodes, Reason.PASS_CT_RELATED);
      await sendErrors(p, t, p, ctag);
      await until(`control ${ctag}`, () => rec!.tagged(ctag).length >= total).catch(
        () => undefined,
      );
      const got = rec!.tagged(tag);
      const ctl = rec!.tagged(ctag);
      const byType = (gs: Got[]) =>
        ERRORS.map(
          ([ty, co]) => `${ty}/${co}:${gs.filter((g) => g.type === ty && g.code === co).length}`,
        ).join(' ');
      console.log(
        `ICMP errors quoting T's flow from ${which} (${m.node}): ${got.length}/${total} reached T (${byType(got)}); ` +
          `DROP_POLICY +${droppedN}, PASS_CT_RELATED +${relM}. ` +
          `Control from the peer P: ${ctl.length}/${total} reached T (${byType(ctl)}), ` +
          `PASS_CT_RELATED +${counted(nodes, Reason.PASS_CT_RELATED) - relCtl}`,
      );
      expect(ctl.length).toBe(total);
      expect(new Set(ctl.map((g) => g.src))).toEqual(new Set([p.ip]));
      expect(got).toEqual([]);
      expect(droppedN).toBe(total);
    }, 120_000);
  }

  it("during T's ping to P, P's echo and timestamp requests with the ping's id do not reach T", async () => {
    const nodes = lab!.nodes;
    await ping(); // control: the ping works and is live
    const dropBefore = counted(nodes, Reason.DROP_POLICY);
    await sendQuery(p, t, 8, 'echo-in', N);
    await sendQuery(p, t, 13, 'ts-in', N);
    const dropped = () => counted(nodes, Reason.DROP_POLICY) - dropBefore;
    await until(`${2 * N} DROP_POLICY`, () => dropped() >= 2 * N).catch(() => undefined);
    const droppedN = dropped();
    await ping(); // control, after: P's answers still reach T
    const echo = rec!.tagged('echo-in');
    const ts = rec!.tagged('ts-in');
    console.log(
      `during T's ping to P (id ${PING_ID}): ${echo.length}/${N} echo requests and ${ts.length}/${N} timestamp ` +
        `requests from P reached T; DROP_POLICY +${droppedN}; T's pings answered before and after`,
    );
    expect(echo).toEqual([]);
    expect(ts).toEqual([]);
    expect(droppedN).toBe(2 * N);
  }, 120_000);
});

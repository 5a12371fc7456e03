/**
 * Real packets between two nodes (root): node namespaces A and B on an underlay bridge,
 * pods behind veths on each, the real BPF object loaded per node (its own pin root and
 * underlay address) with the programs on every pod veth and on the uplink, and a remote
 * route to the other node's block (test/helpers/two-nodes.ts). No ipip module exists
 * on this kernel: whatever crosses in IPIP was encapsulated by tortie_from_pod and
 * decapsulated by tortie_from_uplink.
 *
 * What must hold: pods on different nodes reach each other over TCP and UDP; on the
 * underlay, their packets are IP protocol 4 between the node addresses (tcpdump on A's
 * uplink), and plain with IPIP off; a forged IPIP packet from a host that is not a node
 * is dropped, with its reason counted; and the receiver's policy still decides for a
 * sender on the other node.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import type { Namespace } from '../../src/policy/model.js';
import { parseResource, type Resource } from '../../src/policy/resources.js';
import { ipv4, udp } from '../../src/util/packets.js';
import { capture } from '../helpers/capture.js';
import { execIn, execInOk, type TestNetns } from '../helpers/netns.js';
import { TwoNodes, UNDERLAY_PREFIX, type TwoNodePod } from '../helpers/two-nodes.js';
import { until } from '../helpers/wait.js';

const NAMESPACES: Namespace[] = [
  { name: 'x', labels: { 'kubernetes.io/metadata.name': 'x' } },
  { name: 'y', labels: { 'kubernetes.io/metadata.name': 'y' } },
];
const NODE_A = `${UNDERLAY_PREFIX}.1`;
const NODE_B = `${UNDERLAY_PREFIX}.2`;
const OUTSIDER = `${UNDERLAY_PREFIX}.66`;
const A1 = '10.88.1.10';
const B1 = '10.88.2.10';
const B2 = '10.88.2.11';

function np(namespace: string, name: string, spec: object): Resource {
  return parseResource({
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  });
}

// ---- waiting ---------------------------------------------------------------------------

/** Outer "IP a > b: IP c > d: ..." — tcpdump prints an IPIP packet's inner header after its outer one. */
const ENCAPSULATED =
  /^IP (\d+\.\d+\.\d+\.\d+) > (\d+\.\d+\.\d+\.\d+): IP (10\.88\.\d+\.\d+)[.:\s].* > (10\.88\.\d+\.\d+)[.:]/;
/** A pod address as the outer source or destination: pod traffic crossing plain. */
const PLAIN = /^IP (10\.88\.\d+\.\d+)[.:\s].* > (10\.88\.\d+\.\d+)[.:]/;

// ---- traffic -------------------------------------------------------------------------------

async function reach(from: TwoNodePod, to: TwoNodePod, protocol: 'tcp' | 'udp'): Promise<boolean> {
  // Two tries: the first packet to a new neighbour may wait for ARP on the underlay. Each
  // waits long enough for a loaded machine (an answer ends it at once).
  for (let i = 0; i < 2; i++) {
    if (await from.process.probe(protocol, to.ip, 80, 5000)) return true;
  }
  return false;
}

/** Every ordered pair of `pods` on different nodes, TCP and UDP: "a -> b tcp" → reached. */
async function crossMatrix(pods: TwoNodePod[]): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const from of pods) {
    for (const to of pods) {
      if (from.node === to.node) continue;
      for (const protocol of ['tcp', 'udp'] as const) {
        out[`${from.key} -> ${to.key} ${protocol}`] = await reach(from, to, protocol);
      }
    }
  }
  return out;
}

/**
 * A forged IPIP packet from `ns`: the kernel of that host adds an outer header (protocol 4,
 * its own address as source) around `inner`, sent to `dst` — what a host on the
 * underlay that is not a node could do to smuggle a pod-sourced packet in.
 */
async function sendIpip(ns: TestNetns, dst: string, inner: Buffer, count: number): Promise<void> {
  const script = [
    'import socket, sys',
    's = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)',
    'pkt = bytes.fromhex(sys.argv[1])',
    'for _ in range(int(sys.argv[3])): s.sendto(pkt, (sys.argv[2], 0))',
  ].join('\n');
  await execInOk(ns.path, 'python3', ['-c', script, inner.toString('hex'), dst, String(count)]);
}

describe('two nodes, pods across IPIP done in BPF', () => {
  let lab: TwoNodes | undefined;
  let a1: TwoNodePod;
  let b1: TwoNodePod;
  let b2: TwoNodePod;
  let outsider: TestNetns;

  beforeAll(async () => {
    lab = await TwoNodes.create({ ipip: true });
    a1 = await lab.addPod('a', { namespace: 'x', name: 'a1', labels: { app: 'a1' } }, A1);
    b1 = await lab.addPod('b', { namespace: 'y', name: 'b1', labels: { app: 'b1' } }, B1);
    b2 = await lab.addPod('b', { namespace: 'y', name: 'b2', labels: { app: 'b2' } }, B2);
    outsider = await lab.addHost('out', OUTSIDER);
    lab.program(NAMESPACES, []);
  });

  afterAll(async () => {
    await lab?.destroy();
  });

  it('pods on different nodes reach each other over TCP and UDP, both ways', async () => {
    const matrix = await crossMatrix([a1, b1, b2]);
    expect(Object.values(matrix).length).toBe(8);
    expect(Object.entries(matrix).filter(([, ok]) => !ok)).toEqual([]);
  });

  it('on the underlay the pod traffic is IP protocol 4 between the node addresses, nothing plain', async () => {
    const l = lab!;
    const encapBefore = l.count('a', a1.epId, 'PASS_ENCAP', 'to-uplink');
    const decapBefore = l.count('b', 0, 'PASS_DECAP', 'from-uplink');

    const cap = await capture(l.nodes.a.ns.path, 'ul', 'ip proto 4 or net 10.88.0.0/16');
    expect(await reach(a1, b1, 'tcp')).toBe(true);
    expect(await reach(a1, b1, 'udp')).toBe(true);
    const encapsulatedIn = (lines: string[]) =>
      lines.map((l) => ENCAPSULATED.exec(l)).filter((m) => m !== null);
    await cap.until('8 encapsulated packets, both ways', (lines) => {
      const e = encapsulatedIn(lines);
      return e.length >= 8 && new Set(e.map((m) => m[1])).size === 2;
    });
    const lines = await cap.stop();

    const encapsulated = encapsulatedIn(lines);
    const directions = new Set(encapsulated.map((m) => `${m[1]} > ${m[2]}: ${m[3]} > ${m[4]}`));
    // TCP handshake, data and teardown plus the UDP exchange, in both directions.
    expect(encapsulated.length).toBeGreaterThanOrEqual(8);
    expect(directions).toEqual(
      new Set([`${NODE_A} > ${NODE_B}: ${A1} > ${B1}`, `${NODE_B} > ${NODE_A}: ${B1} > ${A1}`]),
    );
    expect(lines.filter((l) => !ENCAPSULATED.test(l) && PLAIN.test(l))).toEqual([]);

    // The BPF side of the same story: encapsulated on A, decapsulated on B.
    expect(l.count('a', a1.epId, 'PASS_ENCAP', 'to-uplink') - encapBefore).toBeGreaterThanOrEqual(
      4n,
    );
    expect(l.count('b', 0, 'PASS_DECAP', 'from-uplink') - decapBefore).toBeGreaterThanOrEqual(4n);
  });

  it('a TCP stream much larger than the MTU crosses intact (segments fit the tunnel)', async () => {
    const opened = await a1.process.request({
      op: 'open',
      host: b1.ip,
      port: 80,
      timeoutMs: 30_000,
    });
    expect(opened.ok).toBe(true);
    const conn = opened.ok ? opened.conn! : 0;
    const data = 'tortie-ipip-'.repeat(40_000); // 480 kB
    const echoed = await a1.process.request({ op: 'send', conn, data, timeoutMs: 120_000 });
    await a1.process.request({ op: 'close', conn });
    expect(echoed.ok).toBe(true);
    expect(echoed.ok && echoed.echo === data).toBe(true);
    expect(lab!.count('a', a1.epId, 'DROP_ENCAP_MTU', 'to-uplink')).toBe(0n);
  });

  it('a DF packet too big for the tunnel gets "fragmentation needed" with the tunnel MTU; one that fits crosses', async () => {
    const l = lab!;
    // A's underlay MTU drops to 1400 under a1 (pod MTU 1480): the tunnel carries 1380.
    await execInOk(l.nodes.a.ns.path, 'ip', ['link', 'set', 'dev', 'ul', 'mtu', '1400']);
    try {
      const before = l.count('a', a1.epId, 'DROP_FRAG_NEEDED', 'to-uplink');
      const ping = (size: number) =>
        execIn(a1.ns.path, 'ping', [
          '-n',
          '-M',
          'do',
          '-c',
          '1',
          '-W',
          '5',
          '-s',
          String(size),
          b1.ip,
        ]);
      const big = await ping(1400); // 1428 bytes: fits the pod, not the tunnel
      expect(big.code).not.toBe(0);
      expect(`${big.stdout}${big.stderr}`).toMatch(/Frag needed and DF set \(mtu = 1380\)/);
      expect(l.count('a', a1.epId, 'DROP_FRAG_NEEDED', 'to-uplink') - before).toBe(1n);
      // The pod's stack learnt the path MTU: the next one is refused at home.
      const again = await ping(1400);
      expect(`${again.stdout}${again.stderr}`).toMatch(/message too long, mtu=1380/);
      const fits = await ping(1380 - 28);
      expect(fits.code, `${fits.stdout}${fits.stderr}`).toBe(0);
    } finally {
      await execInOk(l.nodes.a.ns.path, 'ip', ['link', 'set', 'dev', 'ul', 'mtu', '1500']);
    }
  });

  it("the node's own packets reach a remote pod too: IPIP out (tortie_to_uplink), plain back", async () => {
    const l = lab!;
    const node = await l.nodeProber('a');
    const encapBefore = l.count('a', 0, 'PASS_ENCAP', 'to-uplink');
    const cap = await capture(l.nodes.a.ns.path, 'ul', 'ip proto 4 or net 10.88.0.0/16');
    for (const protocol of ['tcp', 'udp'] as const) {
      expect(await node.probe(protocol, b1.ip, 80, 5000), protocol).toBe(true);
    }
    const outIn = (lines: string[]) =>
      lines.filter(
        (line) =>
          line.startsWith(`IP ${NODE_A} > ${NODE_B}: IP ${NODE_A}.`) &&
          line.includes(` > ${B1}.80:`),
      );
    const backIn = (lines: string[]) =>
      lines.filter((line) => line.startsWith(`IP ${B1}.80 > ${NODE_A}.`));
    await cap.until(
      '3 packets out in IPIP and 2 back plain',
      (lines) => outIn(lines).length >= 3 && backIn(lines).length >= 2,
    );
    const lines = await cap.stop();
    const out = outIn(lines);
    const back = backIn(lines);
    expect(out.length).toBeGreaterThanOrEqual(3);
    expect(back.length).toBeGreaterThanOrEqual(2);
    expect(l.count('a', 0, 'PASS_ENCAP', 'to-uplink') - encapBefore).toBeGreaterThanOrEqual(3n);
  });

  it('forged IPIP from a host or a pod that is not a node is dropped on the receiving uplink', async () => {
    const l = lab!;
    // a1's address forged as the source, b1's UDP echo server as the target.
    const inner = ipv4(
      { src: A1, dst: B1 },
      udp({ sport: 5555, dport: 80, payload: Buffer.from('forged') }),
    );
    const dropsBefore = l.count('b', 0, 'DROP_IPIP_UNKNOWN_SOURCE', 'from-uplink');
    const b1Before = l.count('b', b1.epId, 'PASS_POLICY', 'to-pod');

    const atUplink = await capture(l.nodes.b.ns.path, 'ul', `ip proto 4 and src host ${OUTSIDER}`);
    const atPod = await capture(b1.ns.path, b1.network.podIfName, 'udp port 5555');
    await sendIpip(outsider, NODE_B, inner, 5);
    // Evidence that all 5 arrived and were decided: the uplink's drop counter, and the
    // capture there. Only then is "nothing reached b1" worth asserting.
    await until(
      'the 5 forged packets counted as dropped on B',
      () => l.count('b', 0, 'DROP_IPIP_UNKNOWN_SOURCE', 'from-uplink') - dropsBefore >= 5n,
    );
    await atUplink.until('the 5 forged packets', (lines) => lines.length >= 5);
    const arrived = await atUplink.stop();
    const delivered = await atPod.stop();

    // It did reach B's uplink, as IPIP from the outsider...
    expect(arrived.length).toBe(5);
    // ... and no further: dropped there, each with its reason; nothing reached b1.
    expect(l.count('b', 0, 'DROP_IPIP_UNKNOWN_SOURCE', 'from-uplink') - dropsBefore).toBe(5n);
    expect(delivered).toEqual([]);
    expect(l.count('b', b1.epId, 'PASS_POLICY', 'to-pod')).toBe(b1Before);

    // A pod may try the same: a1 tunnels a packet with b2's address forged as its
    // source at node B. Its own node drops it where a1 sends it: pods do not send IPIP
    // (allowIPIPPacketsFromWorkloads is off), whatever the outer addresses say.
    const podForged = ipv4(
      { src: B2, dst: B1 },
      udp({ sport: 5555, dport: 80, payload: Buffer.from('forged by a pod') }),
    );
    const podDropsBefore = l.count('a', a1.epId, 'DROP_WORKLOAD_ENCAP', 'from-pod');
    const atPodFromPod = await capture(b1.ns.path, b1.network.podIfName, 'udp port 5555');
    await sendIpip(a1.ns, NODE_B, podForged, 3);
    await until(
      'three DROP_WORKLOAD_ENCAP for a1 on A',
      () => l.count('a', a1.epId, 'DROP_WORKLOAD_ENCAP', 'from-pod') - podDropsBefore === 3n,
    );
    expect(await atPodFromPod.stop()).toEqual([]);
    expect(l.count('b', 0, 'DROP_IPIP_UNKNOWN_SOURCE', 'from-uplink') - dropsBefore).toBe(5n);
    expect(l.count('b', b1.epId, 'PASS_POLICY', 'to-pod')).toBe(b1Before);

    // Control: from a host B knows as a node, IPIP is decapsulated — and delivered when
    // the inner source is that node's (its own address); a1's address, which B routes to
    // node A, is refused from it as DROP_IPIP_INNER_SPOOF.
    l.nodes.b.dp.setKnownNodes([NODE_A, OUTSIDER]);
    try {
      const spoofBefore = l.count('b', 0, 'DROP_IPIP_INNER_SPOOF', 'from-uplink');
      await sendIpip(outsider, NODE_B, inner, 1);
      await until(
        'DROP_IPIP_INNER_SPOOF on B',
        () => l.count('b', 0, 'DROP_IPIP_INNER_SPOOF', 'from-uplink') - spoofBefore === 1n,
      );
      const own = ipv4(
        { src: OUTSIDER, dst: B1 },
        udp({ sport: 5555, dport: 80, payload: Buffer.from('from a node') }),
      );
      const atPodAgain = await capture(
        b1.ns.path,
        b1.network.podIfName,
        `udp and src host ${OUTSIDER} and src port 5555`,
      );
      await sendIpip(outsider, NODE_B, own, 1);
      await atPodAgain.until('the packet delivered to b1', (lines) => lines.length >= 1);
      expect(await atPodAgain.stop()).toHaveLength(1);
      expect(l.count('b', b1.epId, 'PASS_POLICY', 'to-pod') - b1Before).toBe(1n);
      expect(l.count('b', 0, 'DROP_IPIP_UNKNOWN_SOURCE', 'from-uplink') - dropsBefore).toBe(5n);
    } finally {
      l.nodes.b.dp.setKnownNodes([NODE_A]);
    }
  });

  it("policy applies across nodes: the receiver's deny blocks the remote sender", async () => {
    const l = lab!;
    l.program(NAMESPACES, [
      // b1 admits only TCP 80 from pods labelled app=a1 (on the other node); b2 stays open.
      np('y', 'b1-from-a1-tcp', {
        podSelector: { matchLabels: { app: 'b1' } },
        policyTypes: ['Ingress'],
        ingress: [
          {
            from: [{ namespaceSelector: {}, podSelector: { matchLabels: { app: 'a1' } } }],
            ports: [{ protocol: 'TCP', port: 80 }],
          },
        ],
      }),
    ]);
    try {
      const dropsBefore = l.count('b', b1.epId, 'DROP_POLICY', 'to-pod');
      expect(await crossMatrix([a1, b1, b2])).toEqual({
        'x/a1 -> y/b1 tcp': true,
        'x/a1 -> y/b1 udp': false,
        'x/a1 -> y/b2 tcp': true,
        'x/a1 -> y/b2 udp': true,
        'y/b1 -> x/a1 tcp': true,
        'y/b1 -> x/a1 udp': true,
        'y/b2 -> x/a1 tcp': true,
        'y/b2 -> x/a1 udp': true,
      });
      // Decided by b1's ingress policy on node B, after decapsulation.
      expect(l.count('b', b1.epId, 'DROP_POLICY', 'to-pod')).toBeGreaterThan(dropsBefore);

      l.program(NAMESPACES, [
        np('y', 'deny-b1', {
          podSelector: { matchLabels: { app: 'b1' } },
          policyTypes: ['Ingress'],
        }),
      ]);
      expect(await reach(a1, b1, 'tcp')).toBe(false);
      expect(await reach(a1, b2, 'tcp')).toBe(true);
    } finally {
      l.program(NAMESPACES, []);
    }
  });

  it('with IPIP off (ipipMode Never) the same traffic crosses the underlay plain', async () => {
    const l = lab!;
    await l.setIpip(false);
    try {
      const routedBefore = l.count('a', a1.epId, 'PASS_FIB', 'to-uplink');
      const deliveredBefore = l.count('a', 0, 'PASS_UPLINK_TO_POD', 'from-uplink');
      const hostRoutedBefore = l.count('a', a1.epId, 'PASS_HOST_ROUTE', 'to-uplink');
      const cap = await capture(l.nodes.a.ns.path, 'ul', 'ip proto 4 or net 10.88.0.0/16');
      expect(await reach(a1, b1, 'tcp')).toBe(true);
      expect(await reach(a1, b1, 'udp')).toBe(true);
      expect(await reach(b2, a1, 'tcp')).toBe(true);
      const plainIn = (lines: string[]) =>
        new Set(
          lines
            .map((line) => PLAIN.exec(line))
            .filter((m) => m !== null)
            .map((m) => `${m[1]} > ${m[2]}`),
        );
      await cap.until('plain packets of all 4 directions', (lines) => plainIn(lines).size >= 4);
      const lines = await cap.stop();

      expect(lines.filter((line) => ENCAPSULATED.test(line) || line.includes('ipip'))).toEqual([]);
      const plain = plainIn(lines);
      expect(plain).toEqual(
        new Set([`${A1} > ${B1}`, `${B1} > ${A1}`, `${B2} > ${A1}`, `${A1} > ${B2}`]),
      );
      // Routed in BPF both ways on A: out by the FIB's redirect, in by the uplink's
      // redirect into a1; none through the host stack.
      expect(l.count('a', a1.epId, 'PASS_FIB', 'to-uplink') - routedBefore).toBeGreaterThanOrEqual(
        4n,
      );
      expect(
        l.count('a', 0, 'PASS_UPLINK_TO_POD', 'from-uplink') - deliveredBefore,
      ).toBeGreaterThanOrEqual(4n);
      expect(l.count('a', a1.epId, 'PASS_HOST_ROUTE', 'to-uplink')).toBe(hostRoutedBefore);
    } finally {
      await l.setIpip(true);
    }
    // And back in the tunnel.
    expect(await reach(a1, b1, 'tcp')).toBe(true);
  });
});

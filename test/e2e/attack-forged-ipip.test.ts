/**
 * Issue 11, attack 1, end to end (root): forged IPIP from a pod, on a 2-node BPF lab
 * with an IPIP pool that has natOutgoing on (Calico's default pool has it).
 *
 * The attack: a pod on node A crafts IP protocol 4 (a raw socket, python3, inside the
 * pod's namespace) with the outer destination node B's underlay address and an inner
 * packet from a source of its choosing — another node's pod, node B itself — to a UDP
 * server in a pod on B. A's node forwards it like any packet to an outside address and
 * masquerades it (natOutgoing): it reaches B from A's address, a known node.
 *
 * What must hold:
 *  - default settings: A drops the pod's IPIP where the pod sends it, counted as
 *    DROP_WORKLOAD_ENCAP for that pod; the server on B receives none of it; the same
 *    server receives the pod's ordinary UDP (control);
 *  - A's agent with allowIPIPPacketsFromWorkloads true (the packets now leave A): B
 *    decapsulates and drops every inner source that is not A's, counted as
 *    DROP_IPIP_INNER_SPOOF on B's uplink; the server receives none of them; an inner
 *    source of A's own block still gets through (control: the tunnel works, and it is
 *    the source check that drops the others).
 * Every wait is on a condition (a counter, a datagram that arrives); the bounds only say
 * when to give up. Everything lives in the lab's namespaces.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfig, silentLogger } from '../../src/agent/index.js';
import {
  ClusterLab,
  clusterNames,
  destroyClusterLab,
  type ClusterNode,
  type ClusterPod,
} from '../../src/lab/cluster/cluster-lab.js';
import { Dir, Reason } from '../../src/maps/index.js';
import { newLabId } from '../helpers/netns.js';
import { runPython, udpRecorder, type NsScript } from '../helpers/pod-scripts.js';
import { until } from '../helpers/wait.js';

const UDP_PORT = 9911;
const FORGED = 20;

/** A UDP server in `netns` that records the source address of every datagram. */
class UdpRecorder {
  private constructor(
    private readonly received: string[],
    private readonly server: NsScript,
  ) {}

  static async start(netns: string, port: number): Promise<UdpRecorder> {
    const { received, server } = await udpRecorder(netns, port);
    return new UdpRecorder(received, server);
  }

  /** Datagrams whose payload is `tag` (each line is "<source> <payload>"). */
  tagged(tag: string): string[] {
    return this.received.filter((l) => l.endsWith(` ${tag}`)).map((l) => l.split(' ')[0]!);
  }

  stop(): void {
    this.server.stop();
  }
}

const python = (netns: string, script: string): Promise<void> => runPython(netns, script);

/**
 * From the pod `from`: `count` IPIP packets (a raw socket with the outer header written
 * by hand) to `outerDst`, each carrying UDP from `innerSrc` to `innerDst`:UDP_PORT with
 * payload `tag`.
 */
function sendForgedIpip(
  from: ClusterPod,
  outerDst: string,
  innerSrc: string,
  innerDst: string,
  tag: string,
  count: number,
): Promise<void> {
  return python(
    from.netns,
    [
      'import socket, struct',
      'def csum(b):',
      '    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))',
      '    s = (s & 0xffff) + (s >> 16); s = (s & 0xffff) + (s >> 16)',
      '    return ~s & 0xffff',
      'def ip(src, dst, proto, payload):',
      '    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0x4000, 64, proto, 0,',
      '                    socket.inet_aton(src), socket.inet_aton(dst))',
      '    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload',
      `data = ${JSON.stringify(tag)}.encode()`,
      `udp = struct.pack("!HHHH", 40000, ${UDP_PORT}, 8 + len(data), 0) + data`,
      `inner = ip(${JSON.stringify(innerSrc)}, ${JSON.stringify(innerDst)}, 17, udp)`,
      `outer = ip(${JSON.stringify(from.ip)}, ${JSON.stringify(outerDst)}, 4, inner)`,
      's = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)',
      `for _ in range(${count}):`,
      `    s.sendto(outer, (${JSON.stringify(outerDst)}, 0))`,
    ].join('\n'),
  );
}

/** Ordinary UDP from the pod `from` to `to`:UDP_PORT with payload `tag`. */
function sendUdp(from: ClusterPod, to: string, tag: string): Promise<void> {
  return python(
    from.netns,
    [
      'import socket',
      's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
      `s.sendto(${JSON.stringify(tag)}.encode(), (${JSON.stringify(to)}, ${UDP_PORT}))`,
    ].join('\n'),
  );
}

const exec = promisify(execFile);

async function natTable(node: ClusterNode): Promise<string> {
  const { stdout } = await exec('nsenter', [
    `--net=${node.netns}`,
    '--',
    'iptables-save',
    '-t',
    'nat',
  ]);
  return stdout;
}

/** Packets a node's dataplane counted under `reason` in `dir`, every endpoint summed. */
function counted(node: ClusterNode, reason: number, dir: number): number {
  let n = 0n;
  for (const [k, v] of node.agent!.dataplane.dp.views.metrics.entriesSum())
    if (k.reason === reason && k.dir === dir) n += v.packets;
  return Number(n);
}

describe('forged IPIP from a pod, IPIP pool with natOutgoing (issue 11)', () => {
  const id = newLabId('fip');
  let lab: ClusterLab | undefined;
  let a0: ClusterPod; // the attacker, on node A
  let a1: ClusterPod; // another pod on node A
  let b0: ClusterPod; // the target, on node B
  let b1: ClusterPod; // another pod on node B
  let server: UdpRecorder | undefined;
  let nodeA: ClusterNode;
  let nodeB: ClusterNode;
  let seq = 0;

  /** Sends a control datagram from a0 to b0 and waits until the server has it. */
  const control = async (): Promise<void> => {
    const tag = `control-${seq++}`;
    // Up to three tries: the first may wait for a neighbour entry.
    for (let i = 0; i < 3 && server!.tagged(tag).length === 0; i++) {
      await sendUdp(a0, b0.ip, tag);
      await until(`control ${tag}`, () => server!.tagged(tag).length > 0, 5_000).catch(
        () => undefined,
      );
    }
    expect(server!.tagged(tag)).toEqual([a0.ip]);
  };

  beforeAll(async () => {
    lab = await ClusterLab.up({ id, nodes: 2, encap: 'ipip' });
    await lab.store!.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: { name: 'lab' },
        spec: { cidr: lab.podCidr, blockSize: 26, ipipMode: 'Always', natOutgoing: true },
      },
    ]);
    await lab.createNamespace('x');
    a0 = await lab.addPod({ namespace: 'x', name: 'a0', labels: { app: 'a' }, node: 0 });
    a1 = await lab.addPod({ namespace: 'x', name: 'a1', labels: { app: 'a' }, node: 0 });
    b0 = await lab.addPod({ namespace: 'x', name: 'b0', labels: { app: 'b' }, node: 1 });
    b1 = await lab.addPod({ namespace: 'x', name: 'b1', labels: { app: 'b' }, node: 1 });
    nodeA = lab.nodes[0]!;
    nodeB = lab.nodes[1]!;
    server = await UdpRecorder.start(b0.netns, UDP_PORT);
    // natOutgoing is what makes the attack reach B: wait until A's agent wrote it.
    await until('MASQUERADE on A', async () => (await natTable(nodeA)).includes('-j MASQUERADE'));
  }, 120_000);

  afterAll(async () => {
    server?.stop();
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`));
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  }, 60_000);

  it('control: the server on B receives the pod on A', async () => {
    await control();
  }, 60_000);

  it("default settings: A drops the pod's IPIP as DROP_WORKLOAD_ENCAP and B's server receives none", async () => {
    const forgedSources = [b1.ip, nodeB.underlayIp, a1.ip];
    const before = counted(nodeA, Reason.DROP_WORKLOAD_ENCAP, Dir.FROM_POD);
    for (const src of forgedSources)
      await sendForgedIpip(a0, nodeB.underlayIp, src, b0.ip, 'forged-default', FORGED);
    const total = FORGED * forgedSources.length;
    // The control datagram was sent after every forged one: once it is in, anything
    // forged that got through would be too (the same path, sent earlier).
    await control();
    const received = server!.tagged('forged-default');
    const dropped = () => counted(nodeA, Reason.DROP_WORKLOAD_ENCAP, Dir.FROM_POD) - before;
    console.log(
      `forged IPIP, default settings: ${received.length}/${total} received by the pod on B ` +
        `(sources ${[...new Set(received)].join(', ') || 'none'}); A counted ${dropped()} as DROP_WORKLOAD_ENCAP`,
    );
    expect(received).toEqual([]);
    await until(`A counts ${total} DROP_WORKLOAD_ENCAP`, () => dropped() >= total);
    expect(dropped()).toBe(total);
  }, 60_000);

  it("allowIPIPPacketsFromWorkloads on A: B drops every inner source that is not A's (DROP_IPIP_INNER_SPOOF)", async () => {
    // Restart A's agent with the setting on: its new object replaces the programs.
    await nodeA.agent!.stop();
    nodeA.agent = await Agent.start(
      agentConfig({
        nodeName: nodeA.name,
        etcd: { endpoints: lab!.etcd!.endpoints, prefix: clusterNames(id).etcdPrefix },
        pinRoot: nodeA.pinRoot,
        nodeNetns: nodeA.netns,
        ipv4Address: `${nodeA.underlayIp}/24`,
        healthPort: 0,
        heartbeatTtlSeconds: 5,
        reportIntervalSeconds: 1,
        debounceMs: 10,
        allowIPIPPacketsFromWorkloads: true,
      }),
      { log: silentLogger() },
    );
    await until('A programmed again', () => nodeA.agent!.programmed, 30_000);
    await nodeA.agent.reconcileNow();
    await control();

    const forgedSources = [b1.ip, nodeB.underlayIp];
    const before = counted(nodeB, Reason.DROP_IPIP_INNER_SPOOF, Dir.FROM_UPLINK);
    const leftA = counted(nodeA, Reason.DROP_WORKLOAD_ENCAP, Dir.FROM_POD);
    for (const src of forgedSources)
      await sendForgedIpip(a0, nodeB.underlayIp, src, b0.ip, 'forged-allowed', FORGED);
    const total = FORGED * forgedSources.length;
    const dropped = () => counted(nodeB, Reason.DROP_IPIP_INNER_SPOOF, Dir.FROM_UPLINK) - before;
    await until(`B counts ${total} DROP_IPIP_INNER_SPOOF`, () => dropped() >= total).catch(
      () => undefined,
    );
    await control();
    const received = server!.tagged('forged-allowed');
    console.log(
      `forged IPIP, allowIPIPPacketsFromWorkloads on A: ${received.length}/${total} received by the pod on B; ` +
        `B counted ${dropped()} as DROP_IPIP_INNER_SPOOF`,
    );
    expect(received).toEqual([]);
    expect(dropped()).toBe(total);
    expect(counted(nodeA, Reason.DROP_WORKLOAD_ENCAP, Dir.FROM_POD)).toBe(leftA);

    // Control: an inner source of A's own block crosses (the packets left A and were
    // decapsulated; only the foreign sources were refused).
    await sendForgedIpip(a0, nodeB.underlayIp, a1.ip, b0.ip, 'own-block', 3);
    await until('an inner source of A reaches B', () => server!.tagged('own-block').length > 0);
    expect(new Set(server!.tagged('own-block'))).toEqual(new Set([a1.ip]));
  }, 90_000);
});

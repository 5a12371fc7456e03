/**
 * Issue 11, forged VXLAN between nodes, end to end (root) on a 2-node lab with the
 * iptables dataplane and VXLAN (the kernel's vxlan device): node A — a known node, so
 * past tortie-v-vxlan-nodes — sends hand-built VXLAN to node B (UDP 4789 from A's
 * underlay address, VNI 4096, inner Ethernet to B's VTEP MAC, inner IPv4 + UDP) to a UDP
 * server in pod b0 on B. What must hold: an inner source in A's block (pod a0's address)
 * reaches the server (control: the hand-built tunnel works); inner sources that are not
 * routed to A — B's other pod, B itself, an address in no block — never do, and B's
 * tortie-vxlan-in counts them on its final DROP. (Checked by hand: with the jump to
 * tortie-vxlan-in deleted, the forged b1 and no-block sources do reach the server.)
 * Everything lives in the lab's namespaces.
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ClusterLab,
  destroyClusterLab,
  type ClusterNode,
  type ClusterPod,
} from '../../src/lab/cluster/cluster-lab.js';
import { runIn } from '../../src/plumbing/netns.js';
import { newLabId } from '../helpers/netns.js';
import { startPython } from '../helpers/pod-scripts.js';
import { eventually } from '../helpers/wait.js';

const UDP_PORT = 9912;

// Prints each datagram's payload until it is stopped.
const SERVER = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", ${UDP_PORT}))
print("ready", flush=True)
while True:
    data, _ = s.recvfrom(2048)
    print(data.decode(), flush=True)
`;

// argv: outer src, outer dst, inner src, inner dst, dst VTEP MAC, tag.
const SENDER = `
import socket, struct, sys
osrc, odst, isrc, idst, mac, tag = sys.argv[1:]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return (~s) & 0xFFFF
payload = tag.encode()
udp = struct.pack("!HHHH", 40000, ${UDP_PORT}, 8 + len(payload), 0) + payload
hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 7, 0, 64, 17, 0,
                  socket.inet_aton(isrc), socket.inet_aton(idst))
hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
eth = bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("667400000001") + b"\\x08\\x00"
vxlan = struct.pack("!II", 0x08000000, 4096 << 8)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((osrc, 0))
for _ in range(3):
    s.sendto(vxlan + eth + hdr + udp, (odst, 4789))
`;

const id = newLabId('vxf');
let lab: ClusterLab | undefined;
let a0: ClusterPod;
let b0: ClusterPod;
let b1: ClusterPod;
let nodeA: ClusterNode;
let nodeB: ClusterNode;

function vtepMac(ip: string): string {
  return ['66', '74', ...ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'))].join(
    ':',
  );
}

async function finalDropCount(node: ClusterNode): Promise<number> {
  const { stdout } = await runIn(node.netns, 'iptables-nft-save', ['-c', '-t', 'filter']);
  const lines = stdout.split('\n').filter((l) => / -A tortie-vxlan-in /.test(l));
  return Number(/^\[(\d+):/.exec(lines[lines.length - 1] ?? '')?.[1] ?? NaN);
}

beforeAll(async () => {
  lab = await ClusterLab.up({ id, nodes: 2, encap: 'vxlan', dataplane: 'iptables' });
  await lab.createNamespace('x');
  a0 = await lab.addPod({ namespace: 'x', name: 'a0', labels: {}, node: 0 });
  b0 = await lab.addPod({ namespace: 'x', name: 'b0', labels: {}, node: 1 });
  b1 = await lab.addPod({ namespace: 'x', name: 'b1', labels: {}, node: 1 });
  nodeA = lab.nodes[0]!;
  nodeB = lab.nodes[1]!;
}, 120_000);

afterAll(async () => {
  await lab?.down().catch(() => undefined);
  await destroyClusterLab(id);
  const left = readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`));
  if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
}, 60_000);

describe('forged VXLAN from a known node (iptables dataplane)', () => {
  it('B accepts only inner sources routed to A', { timeout: 120_000 }, async () => {
    const heard: string[] = [];
    const server = await startPython(b0.netns, SERVER, {
      ready: 'ready',
      onLine: (l) => heard.push(l),
    });
    const before = await finalDropCount(nodeB);
    const send = async (inner: string, tag: string) => {
      const r = await runIn(nodeA.netns, 'python3', [
        '-c',
        SENDER,
        nodeA.underlayIp,
        nodeB.underlayIp,
        inner,
        b0.ip,
        vtepMac(nodeB.underlayIp),
        tag,
      ]);
      return r;
    };
    await send(b1.ip, 'forged-b1');
    await send(nodeB.underlayIp, 'forged-nodeB');
    await send('10.99.0.1', 'forged-noblock');
    await send(a0.ip, 'good-a0');
    // Each of the 12 datagrams is either heard or counted by B's final DROP: wait until
    // all are accounted for, then compare.
    const dropped = await eventually(
      async () => (await finalDropCount(nodeB)) - before,
      (n) => n >= 9 && heard.filter((l) => l === 'good-a0').length >= 3,
    );
    server.stop();
    const got = new Set(heard.filter((l) => l !== ''));
    expect([...got]).toEqual(['good-a0']);
    expect(dropped).toBe(9);
  });
});

/**
 * VXLAN anti-spoofing across nodes in the iptables dataplane, on a real kernel (root):
 * two namespaces on a veth, "rx" (node n1, 192.0.2.1) with the rendered tortie chains
 * and a UDP socket on port 4789 standing in for its vxlan device, and "tx" holding the
 * other nodes' underlay addresses (n2 192.0.2.2, n3 192.0.2.3) and one that is no node
 * (192.0.2.9). tx sends hand-built VXLAN datagrams (VXLAN header, inner Ethernet, inner
 * IPv4) from each address with chosen inner sources. What must hold: a datagram reaches
 * port 4789 only when its inner source is in a block routed to its outer source (or is
 * that node's own address); n3's /32 borrowed from n2's block is refused to n2; the
 * drops are counted on tortie-vxlan-in's rules (iptables-save -c).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { vxlanInnerSources } from '../../src/agent/routes.js';
import { CHAIN_VXLAN_IN, IptablesDataplane } from '../../src/iptables/index.js';
import { runIn } from '../../src/plumbing/netns.js';
import { execInOk, newRunId, TestNetnsSet, type TestNetns } from '../helpers/netns.js';
import { startPython } from '../helpers/pod-scripts.js';
import { eventually } from '../helpers/wait.js';

/** [outer source, inner source, whether it must reach port 4789] */
const CASES: [string, string, boolean][] = [
  ['192.0.2.2', '10.88.0.65', true], // n2's block
  ['192.0.2.2', '192.0.2.2', true], // n2 itself (its VTEP address)
  ['192.0.2.2', '10.88.0.70', false], // n3's /32 borrowed from n2's block
  ['192.0.2.2', '10.88.0.5', false], // the receiver's own block
  ['192.0.2.2', '192.0.2.3', false], // another node's address
  ['192.0.2.2', '10.99.0.1', false], // no block at all
  ['192.0.2.3', '10.88.0.70', true], // n3's borrowed /32
  ['192.0.2.3', '10.88.0.130', true], // n3's block
  ['192.0.2.3', '10.88.0.65', false], // n2's block
  ['192.0.2.9', '10.88.0.65', false], // not a node (the known-nodes rule)
];

// Prints "outer inner" per datagram on port 4789 until it is stopped.
const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 4789))
print("ready", flush=True)
while True:
    data, (src, _) = s.recvfrom(2048)
    print(src, socket.inet_ntoa(data[8 + 14 + 12:8 + 14 + 16]), flush=True)
`;

// argv: outer source, inner source; one VXLAN datagram (VNI 4096) to 192.0.2.1:4789.
const SENDER = `
import socket, struct, sys
outer, inner = sys.argv[1], sys.argv[2]
vxlan = struct.pack("!II", 0x08000000, 4096 << 8)
eth = bytes.fromhex("667400000001" "667400000002" "0800")
udp = struct.pack("!HHHH", 40000, 9, 8 + 4, 0) + b"ping"
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0,
                 socket.inet_aton(inner), socket.inet_aton("10.88.0.10"))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((outer, 0))
s.sendto(vxlan + eth + ip + udp, ("192.0.2.1", 4789))
`;
import { EMPTY, inputs } from '../helpers/vxlan-world.js';

const run = new TestNetnsSet(newRunId());
let rx: TestNetns;
let tx: TestNetns;

beforeAll(async () => {
  rx = await run.create('vrx');
  tx = await run.create('vtx');
  await execInOk(rx.path, 'ip', ['-batch', '-'], {
    stdin: [
      'link set lo up',
      `link add v0 type veth peer name v1 netns ${tx.path}`,
      'addr add 192.0.2.1/24 dev v0',
      'link set v0 up',
    ].join('\n'),
  });
  await execInOk(tx.path, 'ip', ['-batch', '-'], {
    stdin: [
      'link set lo up',
      'addr add 192.0.2.2/24 dev v1',
      'addr add 192.0.2.3/24 dev v1',
      'addr add 192.0.2.9/24 dev v1',
      'link set v1 up',
    ].join('\n'),
  });
}, 30_000);

afterAll(async () => {
  await run.removeAll();
});

describe('tortie-vxlan-in on a real kernel', () => {
  it(
    'lets VXLAN through only with an inner source routed to its sending node',
    { timeout: 120_000 },
    async () => {
      const dp = await IptablesDataplane.open({ netns: rx.path });
      await dp.program(EMPTY, [], {
        vxlanSources: ['192.0.2.2', '192.0.2.3'],
        vxlanInnerSources: vxlanInnerSources(inputs),
      });

      const heard: string[] = [];
      const listener = await startPython(rx.path, LISTENER, {
        ready: 'ready',
        onLine: (l) => heard.push(l),
      });
      for (const [outer, inner] of CASES) {
        await execInOk(tx.path, 'python3', ['-c', SENDER, outer, inner]);
      }
      const expected = CASES.filter(([, , ok]) => ok)
        .map(([o, i]) => `${o} ${i}`)
        .sort();

      // Every datagram is either heard or counted as dropped on tortie-vxlan-in (one on
      // the borrowed /32's rule for n2, four on the final DROP — n2: own block, other
      // node, no block; n3: n2's block): wait until all are accounted for, then compare.
      const rules = async () => {
        const { stdout } = await runIn(rx.path, 'iptables-nft-save', ['-c', '-t', 'filter']);
        return stdout.split('\n').filter((l) => l.includes(`-A ${CHAIN_VXLAN_IN} `));
      };
      const count = (l: string) => Number(/^\[(\d+):/.exec(l)?.[1]);
      const borrowedOf = (lines: string[]) =>
        lines.find((l) => l.includes('-s 192.0.2.2/32') && / -j DROP$/.test(l));
      const lines = await eventually(rules, (ls) => {
        const b = borrowedOf(ls);
        return (
          b !== undefined &&
          count(b) >= 1 &&
          count(ls[ls.length - 1]!) >= 4 &&
          expected.every((e) => heard.includes(e))
        );
      });
      listener.stop();
      expect(heard.filter((l) => l !== '').sort()).toEqual(expected);

      const borrowed = borrowedOf(lines);
      expect(borrowed, lines.join('\n')).toBeDefined();
      expect(count(borrowed!)).toBe(1);
      const last = lines[lines.length - 1]!;
      expect(last).not.toContain('-s ');
      expect(count(last), lines.join('\n')).toBe(4);
    },
  );
});

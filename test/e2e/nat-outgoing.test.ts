/**
 * natOutgoing end to end (root): a 2-node ClusterLab plus an "external" host — a namespace
 * `tortie-<id>-ext` on the lab's underlay bridge at .200, outside every node address and
 * every pool, with no route to the pods. A TCP server there (and one in a pod) records
 * the peer address of every connection it accepts.
 *
 * What must hold, with IPIP and without (ipipMode Never, where pod-to-pod traffic crosses
 * the node's netfilter and only the chain's RETURN rules keep it from being NATed):
 *  - natOutgoing true: a pod reaches the external server and the server sees the pod's
 *    node's underlay address; the agent's TORTIE-NAT-OUTGOING chain is there.
 *  - pod to pod (same node and across nodes) is never NATed: the server pod sees the
 *    client pod's address.
 *  - a restarted agent adopts the chain: the MASQUERADE rule keeps its counters (it was
 *    not rewritten) and a connection across the restart still works.
 *  - natOutgoing false: the chain and its jump are gone; the pod's SYN reaches the server
 *    with the pod's own address as source, and the connection fails — the external host
 *    has no route back to the pool. With such a route (via the pod's node) it works and
 *    the server sees the pod's address.
 * Everything lives in the lab's namespaces; destroyClusterLab(id) removes it.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, agentConfig, silentLogger } from '../../src/agent/index.js';
import { NAT_CHAIN } from '../../src/agent/nat.js';
import {
  ClusterLab,
  clusterNames,
  destroyClusterLab,
  type ClusterPod,
} from '../../src/lab/cluster/cluster-lab.js';
import { createNetns } from '../../src/plumbing/index.js';
import { capture } from '../helpers/capture.js';
import { newLabId } from '../helpers/netns.js';
import { eventually } from '../helpers/wait.js';

const exec = promisify(execFile);
const EXT_IP = '192.168.231.200';
const EXT_PORT = 8080;
const POD_PORT = 8081;

async function nsExec(ns: string, file: string, args: string[]): Promise<string> {
  const { stdout } = await exec('nsenter', [`--net=${ns}`, '--', file, ...args], {
    timeout: 20_000,
  });
  return stdout;
}

/** A TCP server in `ns` that echoes and records every accepted peer's address. */
class PeerServer {
  readonly peers: string[] = [];
  private constructor(private readonly child: ChildProcess) {}

  static async start(ns: string, port: number): Promise<PeerServer> {
    const script = [
      "const net = require('node:net');",
      'const s = net.createServer((c) => {',
      "  process.stdout.write('peer ' + c.remoteAddress.replace(/^::ffff:/, '') + '\\n');",
      '  c.pipe(c);',
      "  c.on('error', () => {});",
      '});',
      `s.listen(${port}, '0.0.0.0', () => process.stdout.write('listening\\n'));`,
    ].join('\n');
    const child = spawn('nsenter', [`--net=${ns}`, '--', process.execPath, '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const server = new PeerServer(child);
    let buf = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`peer server in ${ns} did not start`)),
        60_000,
      );
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        for (;;) {
          const i = buf.indexOf('\n');
          if (i < 0) break;
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === 'listening') {
            clearTimeout(timer);
            resolve();
          } else if (line.startsWith('peer ')) server.peers.push(line.slice(5));
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`peer server in ${ns} exited ${String(code)}`));
      });
    });
    return server;
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

/**
 * One TCP connection attempt (two tries: the first may wait for ARP), each waiting long
 * enough for a loaded machine (an answer ends it at once).
 */
async function connects(from: ClusterPod, ip: string, port: number): Promise<boolean> {
  for (let i = 0; i < 2; i++) if (await from.process.probe('tcp', ip, port, 5000)) return true;
  return false;
}

describe.each(['ipip', 'none'] as const)('natOutgoing, encap %s', (encap) => {
  const id = newLabId('mdn');
  let lab: ClusterLab | undefined;
  let ext: string;
  let extServer: PeerServer | undefined;
  let podServer: PeerServer | undefined;
  let a0: ClusterPod;
  let b0: ClusterPod;
  let a1: ClusterPod;

  const setNat = async (natOutgoing: boolean) => {
    await lab!.store!.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: { name: 'lab' },
        spec: {
          cidr: lab!.podCidr,
          blockSize: 26,
          ipipMode: encap === 'ipip' ? 'Always' : 'Never',
          natOutgoing,
        },
      },
    ]);
  };
  const natTable = (node: number) =>
    nsExec(lab!.nodes[node]!.netns, 'iptables-save', ['-c', '-t', 'nat']);

  beforeAll(async () => {
    lab = await ClusterLab.up({ id, nodes: 2, encap });
    await lab.createNamespace('x');
    a0 = await lab.addPod({ namespace: 'x', name: 'a0', labels: { app: 'a' }, node: 0 });
    b0 = await lab.addPod({ namespace: 'x', name: 'b0', labels: { app: 'b' }, node: 0 });
    a1 = await lab.addPod({ namespace: 'x', name: 'a1', labels: { app: 'a' }, node: 1 });
    // The external host: a veth from the underlay bridge into tortie-<id>-ext.
    const names = clusterNames(id);
    ext = await createNetns(`${names.prefix}ext`);
    const ul = `/run/netns/${names.underlay}`;
    const port = `t${id}x`.slice(0, 15);
    await nsExec(ul, 'ip', [
      'link',
      'add',
      port,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      `${names.prefix}ext`,
    ]);
    await nsExec(ul, 'ip', ['link', 'set', port, 'master', 'br0', 'up']);
    await nsExec(ext, 'ip', ['link', 'set', 'lo', 'up']);
    await nsExec(ext, 'ip', ['addr', 'add', `${EXT_IP}/24`, 'dev', 'eth0']);
    await nsExec(ext, 'ip', ['link', 'set', 'eth0', 'up']);
    extServer = await PeerServer.start(ext, EXT_PORT);
    podServer = await PeerServer.start(a1.netns, POD_PORT);
  }, 90_000);

  afterAll(async () => {
    extServer?.stop();
    podServer?.stop();
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
    const left = readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`));
    if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
  }, 120_000);

  it('natOutgoing true: the external server sees the node address of the pod', async () => {
    await setNat(true);
    const table = await eventually(
      () => natTable(0),
      (t) => t.includes(`-j MASQUERADE`),
    );
    expect(table).toContain(`-j ${NAT_CHAIN}`);
    expect(table).toMatch(new RegExp(`-A ${NAT_CHAIN} -s ${lab!.podCidr} .*-j MASQUERADE`));
    expect(await natTable(1)).toContain(`-j ${NAT_CHAIN}`);

    extServer!.peers.length = 0;
    expect(await connects(a0, EXT_IP, EXT_PORT)).toBe(true);
    expect(await connects(a1, EXT_IP, EXT_PORT)).toBe(true);
    expect(new Set(extServer!.peers)).toEqual(
      new Set([lab!.nodes[0]!.underlayIp, lab!.nodes[1]!.underlayIp]),
    );
    expect(extServer!.peers).not.toContain(a0.ip);
  }, 120_000);

  it('pod to pod is never NATed, on the same node or across nodes', async () => {
    podServer!.peers.length = 0;
    expect(await connects(b0, a1.ip, POD_PORT)).toBe(true); // node 0 -> node 1
    const same = await PeerServer.start(a0.netns, POD_PORT);
    try {
      expect(await connects(b0, a0.ip, POD_PORT)).toBe(true); // same node
      expect(same.peers).toEqual([b0.ip]);
    } finally {
      same.stop();
    }
    expect(podServer!.peers).toEqual([b0.ip]);
  }, 120_000);

  it('a restarted agent adopts the chain (not rewritten: counters kept) and NAT keeps working', async () => {
    const masqCounter = async () => {
      const line = (await natTable(0))
        .split('\n')
        .find((l) => l.includes(`-A ${NAT_CHAIN} -s`) && l.includes('MASQUERADE'));
      return Number(/^\[(\d+):/.exec(line ?? '')?.[1] ?? -1);
    };
    const before = await masqCounter();
    expect(before).toBeGreaterThan(0);
    const node = lab!.nodes[0]!;
    await node.agent!.stop();
    node.agent = await Agent.start(
      agentConfig({
        nodeName: node.name,
        etcd: { endpoints: lab!.etcd!.endpoints, prefix: clusterNames(id).etcdPrefix },
        pinRoot: node.pinRoot,
        nodeNetns: node.netns,
        ipv4Address: `${node.underlayIp}/24`,
        healthPort: 0,
        heartbeatTtlSeconds: 5,
        reportIntervalSeconds: 1,
        debounceMs: 10,
      }),
      { log: silentLogger() },
    );
    await eventually(
      async () => node.agent!.programmed,
      (p) => p,
    );
    await node.agent.reconcileNow();
    expect(await masqCounter()).toBeGreaterThanOrEqual(before);
    extServer!.peers.length = 0;
    expect(await connects(a0, EXT_IP, EXT_PORT)).toBe(true);
    expect(extServer!.peers).toEqual([node.underlayIp]);
    expect(await masqCounter()).toBeGreaterThan(before);
  }, 120_000);

  it('natOutgoing false: chain removed, the server sees the pod address, and without a route back it cannot answer', async () => {
    await setNat(false);
    for (const n of [0, 1]) {
      const t = await eventually(
        () => natTable(n),
        (x) => !x.includes(NAT_CHAIN),
      );
      expect(t).not.toContain(NAT_CHAIN);
    }
    extServer!.peers.length = 0;
    const cap = await capture(
      ext,
      'eth0',
      `tcp dst port ${EXT_PORT} and tcp[tcpflags] & tcp-syn != 0`,
    );
    const ok = await connects(a0, EXT_IP, EXT_PORT);
    await cap.until('the SYNs of the attempt', (lines) => lines.length > 0);
    const syns = await cap.stop();
    // The SYN arrives from the pod's own address; the SYN-ACK has no route: no connection.
    expect(ok).toBe(false);
    expect(syns.length).toBeGreaterThan(0);
    expect(syns.every((l) => l.startsWith(`IP ${a0.ip}.`))).toBe(true);
    expect(extServer!.peers).toEqual([]);

    // With a route to the pool via the pod's node, the reply returns (plain, to the pod).
    await nsExec(ext, 'ip', ['route', 'add', lab!.podCidr, 'via', lab!.nodes[0]!.underlayIp]);
    try {
      expect(await connects(a0, EXT_IP, EXT_PORT)).toBe(true);
      expect(extServer!.peers).toEqual([a0.ip]);
    } finally {
      await nsExec(ext, 'ip', ['route', 'del', lab!.podCidr]);
    }
  }, 120_000);
});

/**
 * The uplink's XDP deny list end to end: a real etcd, a node namespace whose uplink `ul`
 * faces a peer namespace, a HostEndpoint for `ul` and a doNotTrack GlobalNetworkPolicy
 * denying a source CIDR. The agent puts bpf/xdp_uplink.o on the uplink (native mode on
 * veth) and the CIDR in tortie_xdp_deny: probes from that source are dropped in XDP
 * (counted as DROP_XDP_DENY) and never reach the node's stack (an iptables raw counter
 * in the node namespace sees none), while the peer's own address is answered. Through an
 * agent restart the denied probes keep being dropped: not one reaches the stack.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { Agent, agentConfig, type AgentConfig } from '../../src/agent/index.js';
import { Datastore } from '../../src/datastore/index.js';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { removePins } from '../../src/loader/index.js';
import { Dir, MAPS, PerCpuMap, Reason } from '../../src/maps/index.js';
import { native } from '../../src/native/index.js';
import { execIn, execInOk, newRunId, TestNetnsSet, type TestNetns } from '../helpers/netns.js';

const runId = newRunId();
const nets = new TestNetnsSet(runId);
const pinRoot = `/sys/fs/bpf/tortie-t${runId}`;
const prefix = `/tortie-t${runId}`;
const nodeName = `node-t${runId}`;
const octet = Number.parseInt(runId.slice(0, 2), 16);
const NODE_IP = `10.98.${octet}.1`;
const PEER_IP = `10.98.${octet}.2`;
const DENIED_NET = `10.97.${octet}.0/24`;
const DENIED_IP = `10.97.${octet}.5`;

let etcd: EtcdCluster | undefined;
let ds: Datastore | undefined;
let node: TestNetns;
let peer: TestNetns;
let agent: Agent | undefined;
let config: AgentConfig;

const quiet = () => pino({ level: 'silent' });

/** DROP_XDP_DENY on the uplink, from the pinned counters. */
function xdpDrops(): bigint {
  const map = native.openPinnedMap(join(pinRoot, MAPS.metrics.name));
  try {
    return (
      new PerCpuMap(map, MAPS.metrics).lookupSum({
        ep_id: 0,
        reason: Reason.DROP_XDP_DENY,
        dir: Dir.FROM_UPLINK,
      })?.packets ?? 0n
    );
  } finally {
    map.close();
  }
}

/** Packets from the denied CIDR that reached the node's stack (a counting raw rule). */
async function reachedStack(): Promise<number> {
  const r = await execInOk(node.path, 'iptables', [
    '-t',
    'raw',
    '-L',
    'PREROUTING',
    '-v',
    '-x',
    '-n',
  ]);
  const line = r.stdout.split('\n').find((l) => l.includes(DENIED_NET));
  return Number(line!.trim().split(/\s+/)[0]);
}

/** `count` echoes from the denied source (no answer can come: they must not arrive). */
async function probeFromDenied(count: number): Promise<void> {
  await execIn(peer.path, 'ping', [
    '-c',
    String(count),
    '-i',
    '0.01',
    '-W',
    '1',
    '-I',
    DENIED_IP,
    NODE_IP,
  ]);
}

async function eventually(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`not within 30 s: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('XDP deny list on the uplink, through the agent', () => {
  beforeAll(async () => {
    node = await nets.create('node');
    peer = await nets.create('peer');
    const ul = `t${runId}ul`;
    const up = `t${runId}up`;
    await execInOk(undefined, 'ip', [
      'link',
      'add',
      ul,
      'netns',
      node.path,
      'type',
      'veth',
      'peer',
      up,
      'netns',
      peer.path,
    ]);
    for (const [ns, dev, addrs] of [
      [node, ul, [`${NODE_IP}/24`]],
      [peer, up, [`${PEER_IP}/24`, `${DENIED_IP}/32`]],
    ] as const) {
      for (const a of addrs) await execInOk(ns.path, 'ip', ['addr', 'add', a, 'dev', dev]);
      await execInOk(ns.path, 'ip', ['link', 'set', dev, 'up']);
      await execInOk(ns.path, 'ip', ['link', 'set', 'lo', 'up']);
    }
    await execInOk(node.path, 'ip', ['link', 'set', ul, 'name', 'ul']);
    // Counts (never drops) what arrives from the denied CIDR at the node's stack.
    await execInOk(node.path, 'iptables', ['-t', 'raw', '-A', 'PREROUTING', '-s', DENIED_NET]);
    etcd = await startEtcd(`x${runId}`);
    ds = await Datastore.connect({ endpoints: etcd.endpoints, prefix, timeoutMs: 3000 });
    await ds.apply([
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'HostEndpoint',
        metadata: { name: `${nodeName}-ul`, labels: { role: 'edge' } },
        spec: { node: nodeName, interfaceName: 'ul', expectedIPs: [NODE_IP] },
      },
      {
        apiVersion: 'projectcalico.org/v3',
        kind: 'GlobalNetworkPolicy',
        metadata: { name: 'shed' },
        spec: {
          selector: 'role == "edge"',
          doNotTrack: true,
          applyOnForward: true,
          order: 10,
          ingress: [{ action: 'Deny', source: { nets: [DENIED_NET] } }],
        },
      },
      {
        // The host endpoint denies the node's traffic but failsafe: the peer's ping
        // needs normal policy (the deny list is the untracked stage before it).
        apiVersion: 'projectcalico.org/v3',
        kind: 'GlobalNetworkPolicy',
        metadata: { name: 'peer-ping' },
        spec: {
          selector: 'role == "edge"',
          order: 20,
          ingress: [{ action: 'Allow', protocol: 'ICMP', source: { nets: [`${PEER_IP}/32`] } }],
        },
      },
    ]);
    config = agentConfig({
      nodeName,
      etcd: { endpoints: etcd.endpoints, prefix, timeoutMs: 2000 },
      pinRoot,
      nodeNetns: node.path,
      ipv4Address: `${NODE_IP}/24`,
      healthPort: 0,
      heartbeatTtlSeconds: 3,
      reportIntervalSeconds: 1,
      debounceMs: 10,
    });
  });

  afterAll(async () => {
    await agent?.stop().catch(() => undefined);
    await ds?.close().catch(() => undefined);
    await etcd?.stop().catch(() => undefined);
    await nets.removeAll().catch(() => undefined);
    removePins(pinRoot);
  });

  it('drops the denied source in XDP (native on veth), counted; the peer is answered', async () => {
    // Without the agent the probes reach the stack: the counter that must stay 0 counts.
    await probeFromDenied(3);
    expect(await reachedStack()).toBeGreaterThanOrEqual(3);
    await execInOk(node.path, 'iptables', ['-t', 'raw', '-Z', 'PREROUTING']);
    agent = await Agent.start(config, { log: quiet() });
    await eventually('the deny list in XDP', () => agent!.status().xdp?.mode === 'native');
    expect(agent.status().xdp).toMatchObject({
      mode: 'native',
      interface: 'ul',
      hostEndpoint: `${nodeName}-ul`,
      entries: 1,
      rules: 1,
    });
    const before = xdpDrops();
    await probeFromDenied(5);
    expect(xdpDrops() - before).toBeGreaterThanOrEqual(5n);
    expect(await reachedStack()).toBe(0);
    const ok = await execIn(peer.path, 'ping', ['-c', '1', '-W', '10', NODE_IP]);
    expect(ok.code).toBe(0);
  });

  it('keeps dropping through an agent restart: no denied packet reaches the stack', async () => {
    const before = xdpDrops();
    // Echoes every 10 ms all through the restart.
    const flood = spawn(
      'nsenter',
      [`--net=${peer.path}`, 'ping', '-n', '-q', '-i', '0.01', '-I', DENIED_IP, NODE_IP],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let out = '';
    flood.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const closed = new Promise<void>((r) => flood.once('close', () => r()));
    try {
      await eventually('probes counted before the restart', () => xdpDrops() - before >= 10n);
      await agent!.stop();
      agent = undefined;
      const gap = xdpDrops();
      await eventually('probes dropped while no agent runs', () => xdpDrops() - gap >= 10n);
      agent = await Agent.start(config, { log: quiet() });
      await eventually(
        'the new agent attached its program',
        () => agent!.status().xdp?.mode === 'native',
      );
      const after = xdpDrops();
      await eventually('probes dropped by the new program', () => xdpDrops() - after >= 10n);
    } finally {
      flood.kill('SIGINT');
      await closed;
    }
    const sent = Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? NaN);
    expect(sent).toBeGreaterThan(30);
    expect(Number(xdpDrops() - before)).toBeGreaterThanOrEqual(sent - 1); // the last may be in flight
    expect(await reachedStack()).toBe(0);
    expect(agent.status().xdp?.entries).toBe(1);
  });
});

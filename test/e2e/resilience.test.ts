/**
 * Restart, outage and "no unprotected window" acceptance, on a real 2-node lab (IPIP)
 * whose agents are real `tortie node run` processes, pods plumbed by the real CNI plugin,
 * real etcd:
 *
 *   1. agents restarted 10 times (SIGTERM and kill -9, both nodes) during a ping at
 *      100/s and TCP streams between pods on different nodes: no echo lost, no reset;
 *   2. etcd stopped for at least TORTIE_OUTAGE_S (default 30) s and as many TCP probes,
 *      an agent killed and restarted meanwhile: no echo lost, agents back to ready; a
 *      policy applied while an agent was down is enforced once it is back;
 *   3. (second lab, 3 etcd members) the leader killed: pings go on, a policy is enforced,
 *      a new pod is added and obeys it, agents stay ready;
 *   4. a pod in a default-deny namespace that tries to talk from before its interface
 *      exists never gets a packet out or in; an allowing policy then lets them through
 *      (the control that the count can be non-zero);
 *   and the CNI ADD fails with code 11 (try again later) while the node has no agent.
 *
 * Needs root and `npm run build` (agents, plugin and pod processes run from dist).
 *
 * Nothing here waits a fixed time for something to happen or asserts on a duration: each
 * step waits for its evidence (answers counted, a log line, a revision programmed), and
 * "nothing got through" is asserted next to counts that show the attempts were made.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeStatusKey, type NodeStatus } from '../../src/agent/status.js';
import { alive } from '../../src/lab/cluster/agent-process.js';
import { installCni } from '../../src/cni/install.js';
import { invokePlugin, type PluginOutcome } from '../../src/cni/invoke.js';
import {
  ClusterLab,
  clusterNames,
  labCniSocket,
  destroyClusterLab,
  NETWORK,
  type ClusterNode,
} from '../../src/lab/cluster/cluster-lab.js';
import { createNetns } from '../../src/plumbing/index.js';
import { execIn, newLabId } from '../helpers/netns.js';
import {
  etcdLeader,
  eventually,
  pingVerdict,
  startCapture,
  startPing,
  startShellIn,
  startStream,
  startUdpTool,
  stopGroup,
  trafficProgress,
  waitForTraffic,
  type Capture,
  type PingHandle,
  type StreamHandle,
  type TrafficProgress,
  type UdpTool,
} from '../helpers/resilience.js';
import { k8sPolicy } from '../helpers/k8s.js';

const OUTAGE_S = Number(process.env.TORTIE_OUTAGE_S ?? 30);
const UDP_PORT = 7777;
/** Bounds for an agent to start or a lab to come up: only for giving up, never a verdict. */
const AGENT_START_MS = 120_000;
const LAB_UP_MS = 300_000;

const DENY_B = k8sPolicy('x', 'deny-b', {
  podSelector: { matchLabels: { app: 'b' } },
  policyTypes: ['Ingress'],
});
const ONLY_A_TO_B = k8sPolicy('x', 'b-from-a', {
  podSelector: { matchLabels: { app: 'b' } },
  policyTypes: ['Ingress'],
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
});

/** Everything of the lab gone: namespaces, pins, temp dirs. */
function leftBehind(id: string): string[] {
  return [
    ...readdirSync('/run/netns').filter((n) => n.startsWith(`tortie-${id}-`)),
    ...readdirSync('/sys/fs/bpf').filter((n) => n.startsWith(`tortie-${id}-`)),
    ...readdirSync(tmpdir()).filter((n) => n.includes(`-${id}-`)),
  ];
}

async function teardown(lab: ClusterLab | undefined, id: string): Promise<void> {
  await lab?.down().catch(() => undefined);
  await destroyClusterLab(id);
  const left = leftBehind(id);
  if (left.length > 0) throw new Error(`left behind: ${left.join(', ')}`);
}

async function nodeStatus(lab: ClusterLab, node: ClusterNode): Promise<NodeStatus | undefined> {
  const raw = await lab
    .store!.etcd.get(nodeStatusKey(clusterNames(lab.id).etcdPrefix, node.name))
    .string();
  return raw === null ? undefined : (JSON.parse(raw) as NodeStatus);
}

/** Both agents' heartbeats say synced and ready, and their /readyz answers 200. */
async function allReady(lab: ClusterLab): Promise<boolean> {
  for (const n of lab.nodes) {
    const s = await nodeStatus(lab, n);
    if (!s?.synced || !s.ready || s.pid !== n.process!.pid || !s.healthUrl) return false;
    const r = await fetch(`${s.healthUrl}/readyz`, { signal: AbortSignal.timeout(10_000) });
    if (r.status !== 200) return false;
  }
  return true;
}

/** Log lines at level error (50) or above since `from`. */
function errorLines(node: ClusterNode, from: number): string[] {
  return node
    .process!.logSince(from)
    .split('\n')
    .filter((l) => {
      try {
        return (JSON.parse(l) as { level?: number }).level! >= 50;
      } catch {
        return false;
      }
    });
}

interface Traffic {
  ping: PingHandle;
  streams: StreamHandle[];
}

async function startTraffic(lab: ClusterLab): Promise<Traffic> {
  const a = lab.pod('x/a');
  const b = lab.pod('x/b');
  const ping = startPing(a.netns, b.ip);
  const streams = [
    await startStream(a.process, b.ip, 80, 'a>b'),
    await startStream(b.process, a.ip, 80, 'b>a'),
  ];
  return { ping, streams };
}

const progress = (t: Traffic): TrafficProgress => trafficProgress(t.ping, t.streams);

/** Until the ping and both streams have `n` more answers than at `since`. */
const flowed = (t: Traffic, since: TrafficProgress, n: number, what: string) =>
  waitForTraffic(t.ping, t.streams, since, n, what);

/** Log lines since `from` with this message (a JSON log: `"msg":"<message>…`). */
function logCount(node: ClusterNode, from: number, message: string): number {
  return node.process!.logSince(from).split(`"msg":"${message}`).length - 1;
}

/**
 * SIGTERM to the node's agent, and its own orderly exit as the evidence: it is gone
 * without a SIGKILL and has logged its stop. (AgentProcess.stop would SIGKILL it after a
 * grace period and hide an agent that does not exit.)
 */
async function sigterm(node: ClusterNode): Promise<void> {
  const proc = node.process!;
  const pid = proc.pid!;
  const from = proc.logOffset();
  process.kill(pid, 'SIGTERM');
  await eventually(`the agent of ${node.name} exits on SIGTERM`, () => !alive(pid), 60_000, 20);
  expect(logCount(node, from, 'agent stopped'), proc.logSince(from)).toBe(1);
  await proc.stop(); // gone: only forgets the pid
}

async function stopTraffic(t: Traffic) {
  const streams = await Promise.all(t.streams.map((s) => s.stop()));
  const ping = await t.ping.stop();
  return { ping, streams };
}

function pinRate(p: { transmitted: number }, ms: number): string {
  return `${((p.transmitted * 1000) / ms).toFixed(0)}/s`;
}

/**
 * Until every node's agent has written `n` more heartbeats, each saying synced and ready
 * from the same process: count-based evidence that the agents stay ready (they report
 * every second).
 */
async function staysReady(lab: ClusterLab, n: number): Promise<void> {
  const seen = new Map<string, Set<string>>(lab.nodes.map((node) => [node.name, new Set()]));
  const first = new Map<string, string | undefined>();
  for (const node of lab.nodes) first.set(node.name, (await nodeStatus(lab, node))?.heartbeatAt);
  let notReady: string | undefined;
  await eventually(
    `${n} more heartbeats of every agent, all ready`,
    async () => {
      for (const node of lab.nodes) {
        const s = await nodeStatus(lab, node);
        if (s === undefined || s.heartbeatAt === first.get(node.name)) continue;
        if (!s.synced || !s.ready || s.pid !== node.process!.pid) {
          notReady = `the agent of ${node.name} is not ready any more: ${JSON.stringify(s)}`;
          return true; // stop waiting: that is the verdict
        }
        seen.get(node.name)!.add(s.heartbeatAt);
      }
      return [...seen.values()].every((set) => set.size >= n);
    },
    60_000,
    100,
  ).catch(async (e: unknown) => {
    const now = await Promise.all(lab.nodes.map((node) => nodeStatus(lab, node)));
    throw new Error(`${(e as Error).message}; heartbeats now ${JSON.stringify(now)}`);
  });
  if (notReady !== undefined) throw new Error(notReady);
}

// ==========================================================================================

describe('resilience on a 2-node lab, 1 etcd member', () => {
  const id = newLabId('rs');
  let lab: ClusterLab | undefined;

  beforeAll(async () => {
    await destroyClusterLab(id);
    const t0 = Date.now();
    lab = await ClusterLab.up({ id, nodes: 2, encap: 'ipip', agents: 'process', etcdMembers: 1 });
    await lab.createNamespace('x');
    await lab.addPod({ namespace: 'x', name: 'a', labels: { app: 'a' }, node: 0 });
    await lab.addPod({ namespace: 'x', name: 'b', labels: { app: 'b' }, node: 1 });
    await eventually('a reaches b', () => lab!.probe('x/a', 'x/b'));
    await eventually('b reaches a', () => lab!.probe('x/b', 'x/a'));
    console.log(`[lab ${id}] up with 2 pods in ${Date.now() - t0} ms`);
  }, LAB_UP_MS);

  afterAll(async () => {
    await teardown(lab, id);
  }, LAB_UP_MS);

  it('10 agent restarts (SIGTERM and kill -9, both nodes) during ping 100/s and TCP streams: 0 lost, no reset', async () => {
    const t0 = Date.now();
    const traffic = await startTraffic(lab!);
    const restarts: {
      node: string;
      signal: string;
      oldPid: number;
      newPid: number;
      ms: number;
      /** Pings answered while the agent was down or starting. */
      answered: number;
    }[] = [];
    // Per restart: this many more answers (and echoes per stream) before the next one.
    const PER_RESTART = 20;
    let result: Awaited<ReturnType<typeof stopTraffic>>;
    try {
      await flowed(traffic, progress(traffic), 50, 'before the restarts');
      for (let i = 0; i < 10; i++) {
        const node = lab!.nodes[Math.floor(i / 2) % 2]!;
        const signal: NodeJS.Signals = i % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
        const oldPid = node.process!.pid!;
        const t = Date.now();
        const before = progress(traffic);
        await node.process!.stop(signal);
        const newPid = await node.process!.start('ready', AGENT_START_MS);
        const answered = progress(traffic).replies - before.replies;
        restarts.push({ node: node.name, signal, oldPid, newPid, ms: Date.now() - t, answered });
        // Traffic through the new agent's dataplane before the next restart.
        await flowed(traffic, progress(traffic), PER_RESTART, `after restart ${i + 1}`);
      }
    } finally {
      result = await stopTraffic(traffic);
    }
    const ms = Date.now() - t0;
    const v = pingVerdict(result.ping);
    const bySignal = (s: string) => restarts.filter((r) => r.signal === s).length;
    console.log(
      `[restarts] ${restarts.length} restarts (${bySignal('SIGTERM')} SIGTERM, ${bySignal('SIGKILL')} SIGKILL; ` +
        `n0 ${restarts.filter((r) => r.node.endsWith('n0')).length}, n1 ${restarts.filter((r) => r.node.endsWith('n1')).length}), ` +
        `restart-to-ready ${restarts.map((r) => r.ms).join('/')} ms, pings answered meanwhile ${restarts.map((r) => r.answered).join('/')}\n` +
        `[restarts] ping a->b: ${v.text} (${pinRate(result.ping, ms)})\n` +
        result.streams
          .map(
            (s, i) =>
              `[restarts] TCP stream ${i === 0 ? 'a->b' : 'b->a'}: ${s.sent} sent, ${s.echoed} echoed, ` +
              `${s.errors.length} errors, max echo ${s.maxRttMs} ms${s.errors.length ? ` ${s.errors.join('; ')}` : ''}`,
          )
          .join('\n') +
        `\n[restarts] ${(ms / 1000).toFixed(1)} s`,
    );
    expect(restarts).toHaveLength(10);
    for (const r of restarts) expect(r.newPid).not.toBe(r.oldPid);
    expect(new Set(restarts.map((r) => r.newPid)).size).toBe(10);
    // Each restart happened with pings on the wire: some were answered meanwhile.
    for (const r of restarts) expect(r.answered, `${r.signal} ${r.node}`).toBeGreaterThan(0);
    // Every ping sent was answered (at least the counts waited for above), none lost.
    expect(result.ping.received).toBeGreaterThanOrEqual(50 + 10 * PER_RESTART);
    expect(result.ping.lost).toEqual([]);
    expect(v.ok, v.text).toBe(true);
    for (const s of result.streams) {
      expect(s.errors).toEqual([]);
      expect(s.echoed).toBe(s.sent);
      expect(s.echoed).toBeGreaterThanOrEqual(50 + 10 * PER_RESTART);
    }
  }, 900_000);

  it(
    `etcd stopped for at least ${OUTAGE_S} s, an agent killed and restarted meanwhile: pods keep talking, agents come back`,
    async () => {
      const member = lab!.etcd!.members[0]!.name;
      const node0 = lab!.nodes[0]!;
      const proc = node0.process!;
      const offsets = lab!.nodes.map((n) => n.process!.logOffset());
      const traffic = await startTraffic(lab!);
      let result: Awaited<ReturnType<typeof stopTraffic>>;
      let outageMs = 0;
      let from = 0;
      let oldPid = 0;
      let newPid = 0;
      let probesInOutage = 0;
      let probesOk = 0;
      let answeredInOutage = 0;
      const OUTAGE_PACE = 40;
      try {
        await flowed(traffic, progress(traffic), 30, 'before the outage');
        const t0 = Date.now();
        await lab!.etcd!.kill(member);
        try {
          // Both agents know etcd is gone (they say so), and the pods go on talking.
          await eventually('both agents see etcd unreachable', () =>
            lab!.nodes.every((n, i) => logCount(n, offsets[i]!, 'etcd unreachable') > 0),
          );
          const atOutage = await flowed(traffic, progress(traffic), 30, 'with etcd gone');
          oldPid = proc.pid!;
          await proc.stop('SIGKILL');
          from = proc.logOffset();
          newPid = await proc.start('started', AGENT_START_MS);
          // The new agent tried the store, twice (a retry included), and was refused.
          await eventually(
            'the new agent failed to list the store twice',
            () => logCount(node0, from, 'cannot list the store yet') >= 2,
          );
          // The outage: a TCP probe a->b, then 40 more answers on the ping and each stream
          // (about a second), OUTAGE_S times and for at least OUTAGE_S s. A probe waits long
          // enough for a loaded machine (an answer ends it at once).
          let at = progress(traffic);
          while (probesInOutage < OUTAGE_S || Date.now() - t0 < OUTAGE_S * 1000) {
            probesInOutage++;
            if (await lab!.probe('x/a', 'x/b', 80, 'tcp', 10_000)) probesOk++;
            at = await flowed(traffic, at, OUTAGE_PACE, `outage probe ${probesInOutage}`);
          }
          answeredInOutage = at.replies - atOutage.replies;
          // Without etcd it has not synced, hence programmed nothing.
          expect(proc.logSince(from)).not.toContain('first sync programmed');
        } finally {
          await lab!.etcd!.restart(member);
          outageMs = Date.now() - t0;
        }
        await proc.waitFor('ready', from, AGENT_START_MS);
        await eventually('both agents synced and ready', () => allReady(lab!), AGENT_START_MS);
        await flowed(traffic, progress(traffic), 30, 'after the outage');
      } finally {
        result = await stopTraffic(traffic);
      }
      const v = pingVerdict(result.ping);
      console.log(
        `[etcd outage] etcd down ${(outageMs / 1000).toFixed(1)} s; agent of ${node0.name} kill -9 (pid ${oldPid}) and started without etcd (pid ${newPid}); ` +
          `TCP probes a->b during the outage: ${probesOk}/${probesInOutage}, pings answered ${answeredInOutage}\n` +
          `[etcd outage] ping a->b over the whole outage: ${v.text}\n` +
          result.streams
            .map(
              (s, i) =>
                `[etcd outage] TCP stream ${i === 0 ? 'a->b' : 'b->a'}: ${s.sent} sent, ${s.echoed} echoed, ${s.errors.length} errors`,
            )
            .join('\n'),
      );
      expect(newPid).not.toBe(oldPid);
      expect(probesInOutage).toBeGreaterThanOrEqual(OUTAGE_S);
      expect(probesOk).toBe(probesInOutage);
      expect(answeredInOutage).toBeGreaterThanOrEqual(OUTAGE_PACE * probesInOutage);
      expect(result.ping.lost).toEqual([]);
      expect(v.ok, v.text).toBe(true);
      for (const s of result.streams) {
        expect(s.errors).toEqual([]);
        expect(s.echoed).toBe(s.sent);
      }
    },
    OUTAGE_S * 1000 + 900_000,
  );

  it('a policy applied while the agent of the node was stopped is enforced once it is back', async () => {
    const node1 = lab!.nodes[1]!;
    const n1 = node1.process!;
    // The store's client may refuse calls for a while after the outage (circuit breaker).
    await eventually('the store answers', () => lab!.store!.list('Namespace').then(() => true));
    const tStop = Date.now();
    // It exits by itself on SIGTERM (its heartbeat is not renewed meanwhile; the other
    // node's routes to it follow its Node, not the heartbeat, so they stay either way).
    await sigterm(node1);
    const stopMs = Date.now() - tStop;
    const [written] = await lab!.store!.apply([DENY_B]);
    const applyMs = Date.now() - tStop - stopMs;
    // The policy is out: node 0's agent has programmed it. Nobody reconciles node 1: its
    // pinned state keeps working as it was (a probe that waits long enough for a loaded
    // machine: an answer ends it).
    await lab!.nodes[0]!.process!.waitForRevision(
      written!.resource.metadata.resourceVersion!,
      AGENT_START_MS,
    );
    const whileDown = await lab!.probe('x/a', 'x/b', 80, 'tcp', 10_000);
    const from = n1.logOffset();
    const t0 = Date.now();
    await n1.start('ready', AGENT_START_MS);
    const readyMs = Date.now() - t0;
    const downMs = Date.now() - tStop;
    // Ready means the first sync is programmed: the policy is in force at once, and it is
    // the policy that refuses (node 1 counts the drop), not a missing route.
    const url = /"url":"(http:[^"]+)"[^\n]*serving \/healthz/.exec(n1.logSince(from))?.[1];
    const policyDrops = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      const m =
        /tortie_dataplane_packets_total\{reason="DROP_POLICY",dir="to-pod",verdict="drop"\} (\d+)/.exec(
          text,
        );
      return Number(m?.[1] ?? 0);
    };
    const dropsBefore = await policyDrops();
    const afterReady = await lab!.probe('x/a', 'x/b', 80, 'tcp', 5000);
    const dropsAfter = await policyDrops();
    const bToA = await lab!.probe('x/b', 'x/a', 80, 'tcp', 10_000);
    await lab!.store!.delete({ kind: 'K8sNetworkPolicy', name: 'deny-b', namespace: 'x' });
    const backMs = await eventually('a reaches b again', () => lab!.probe('x/a', 'x/b'));
    console.log(
      `[policy while down] agent of ${node1.name} down ${downMs} ms (SIGTERM took ${stopMs} ms, apply ${applyMs} ms); a->b with it stopped and deny-b stored: ${whileDown}; ` +
        `agent ready in ${readyMs} ms; a->b right after ready: ${afterReady} (policy drops on ${node1.name}: +${dropsAfter - dropsBefore}); ` +
        `b->a: ${bToA}; a->b again ${backMs} ms after the delete; errors logged: ${errorLines(node1, from).length}`,
    );
    expect.soft(whileDown, 'a reaches b while the agent of b is stopped').toBe(true);
    expect(afterReady).toBe(false);
    expect(dropsAfter).toBeGreaterThan(dropsBefore);
    expect(bToA).toBe(true);
  }, 600_000);

  it('a pod never sends or receives a packet before its policy is in place', async () => {
    const L = lab!;
    await L.createNamespace('open', { ns: 'open' });
    await L.createNamespace('deny', { ns: 'deny' });
    await L.store!.apply([
      k8sPolicy('deny', 'default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    ]);
    const l0 = await L.addPod({ namespace: 'open', name: 'l0', labels: { app: 'l' }, node: 0 });
    const l1 = await L.addPod({ namespace: 'open', name: 'l1', labels: { app: 'l' }, node: 1 });
    await L.addPod({ namespace: 'deny', name: 'first', labels: { app: 'first' }, node: 0 });
    // The default deny is enforced (both directions, both nodes' pods) before the test pod.
    await eventually('l0 reaches l1', () => L.probe('open/l0', 'open/l1'));
    expect(await L.probe('open/l0', 'deny/first', 80, 'udp')).toBe(false);
    expect(await L.probe('open/l1', 'deny/first')).toBe(false);
    expect(await L.probe('deny/first', 'open/l1')).toBe(false);
    expect(await L.probe('deny/first', 'open/l0')).toBe(false);

    // The block the new pod will get an address from: node 0's (pod a is there).
    const base = L.pod('x/a').ip.split('.').map(Number);
    const blockStart = base[3]! & ~63;
    const block = Array.from(
      { length: 64 },
      (_, i) => `${base[0]}.${base[1]}.${base[2]}.${blockStart + i}`,
    );
    const tools: UdpTool[] = [];
    const caps: Capture[] = [];
    let pinger: ReturnType<typeof startShellIn> | undefined;
    let ruleMonitor: ReturnType<typeof startShellIn> | undefined;
    try {
      // Listeners on both nodes count what they receive and sweep node 0's block.
      const t0 = await startUdpTool(l0.netns, {
        listen: UDP_PORT,
        targets: block,
        port: UDP_PORT,
        intervalMs: 25,
      });
      const t1 = await startUdpTool(l1.netns, {
        listen: UDP_PORT,
        targets: block,
        port: UDP_PORT,
        intervalMs: 25,
      });
      tools.push(t0, t1);
      const cap0 = await startCapture(l0.netns, 'eth0', `tortie-cluster-${id}-cap0-`);
      const cap1 = await startCapture(l1.netns, 'eth0', `tortie-cluster-${id}-cap1-`);
      caps.push(cap0, cap1);

      // The new pod's namespace, and in it, before any interface exists, a process that
      // sends to both listeners every 10 ms and counts what it receives, and a ping loop
      // (-O: each echo left unanswered is printed, so attempts can be counted as they go).
      const newNs = await createNetns(`tortie-${id}-p-deny-new`);
      const tn = await startUdpTool(newNs, {
        listen: UDP_PORT,
        targets: [l0.ip, l1.ip],
        port: UDP_PORT,
        intervalMs: 10,
      });
      tools.push(tn);
      pinger = startShellIn(newNs, `while :; do ping -n -O -i 0.01 ${l1.ip}; sleep 0.02; done`);
      const shell = pinger;
      /** Echoes sent unanswered: distinct sequence numbers -O reported, over ping's runs. */
      const unanswered = () =>
        shell
          .output()
          .split(/^PING /m)
          .reduce(
            (n, run) => n + new Set(run.match(/no answer yet for icmp_seq=\d+/g) ?? []).size,
            0,
          );
      // Both have been trying already: the kernel refused them (no interface, no route).
      await eventually(
        'the new pod tried to send before it had an interface',
        async () =>
          (await tn.report()).sendErrors >= 20 && /Network is unreachable/.test(shell.output()),
        60_000,
        50,
      );
      const before = await tn.report();

      // Every rule and link change in node 0's namespace, in the kernel's order. A veth pair
      // (no dummy links in this kernel) added before the ADD and deleted after it brackets
      // the ADD: seen added, the monitor listens; seen deleted, it has printed everything
      // the ADD did.
      const node0 = L.nodes[0]!;
      const marker = `${id}mk`;
      ruleMonitor = startShellIn(node0.netns, 'exec ip monitor label rule link');
      const monitor = ruleMonitor;
      await eventually('ip monitor listens', async () => {
        await execIn(node0.netns, 'ip', [
          ...['link', 'add', marker, 'type', 'veth', 'peer', 'name', `${id}mp`],
        ]);
        if (monitor.output().includes(` ${marker}@`)) return true;
        await execIn(node0.netns, 'ip', ['link', 'del', marker]);
        return false;
      });

      const cni = await privateCni(L);
      const tAdd = Date.now();
      const add = await invokePlugin({
        plugin: cni.shim,
        command: 'ADD',
        containerId: `${id}-deny-new`,
        netns: newNs,
        ifName: 'eth0',
        args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=deny;K8S_POD_NAME=new',
        config: cni.config(L.nodes[0]!, { app: 'new' }),
      });
      const addMs = Date.now() - tAdd;
      expect(add.exitCode, add.stdout + add.stderr).toBe(0);
      const newIp = (add.json as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
      expect(block).toContain(newIp);
      // BPF dataplane: the guard was the programs, attached before the veth was up. No
      // policy-routing rule was ever added for it (once one has existed, every
      // bpf_fib_lookup of the node walks the rules), and none is there after all the ADDs.
      const hostIf = (
        add.json as { interfaces: { name: string; sandbox?: string }[] }
      ).interfaces.find((i) => i.sandbox === undefined)!.name;
      expect(await execIn(node0.netns, 'ip', ['link', 'del', marker])).toMatchObject({ code: 0 });
      await eventually('the monitor saw the ADD end', async () =>
        new RegExp(`^\\[LINK\\]Deleted \\d+: ${marker}@`, 'm').test(monitor.output()),
      );
      expect(monitor.output()).toContain(`${hostIf}@`);
      await stopGroup(monitor, 'SIGTERM');
      ruleMonitor = undefined;
      expect(L.dataplane).toBe('bpf');
      expect(
        monitor
          .output()
          .split('\n')
          .filter((line) => line.startsWith('[RULE]')),
        'policy-routing rules added or removed in the node namespace during the ADD',
      ).toEqual([]);
      const rules = await execIn(node0.netns, 'ip', ['-j', 'rule', 'show']);
      expect(
        (JSON.parse(rules.stdout) as { priority: number; table: string }[]).map(
          (r) => `${r.priority} ${r.table}`,
        ),
        rules.stdout,
      ).toEqual(['0 local', '32766 main', '32767 default']);
      // With its interface, under the default deny: counted attempts both ways, at least
      // 100 datagrams and 100 pings out of the pod and 20 sweeps of its block by each
      // listener (64 addresses each).
      const [s0, s1] = await Promise.all([t0.report(), t1.report()]);
      await eventually(
        'attempts both ways with the interface in place',
        async () => {
          const [c0, c1, cn] = await Promise.all([t0.report(), t1.report(), tn.report()]);
          return (
            cn.sent >= 100 &&
            unanswered() >= 100 &&
            c0.sent >= s0.sent + 20 * 64 &&
            c1.sent >= s1.sent + 20 * 64
          );
        },
        120_000,
        100,
      );

      await stopGroup(pinger, 'SIGINT');
      const pingOut = pinger.output();
      pinger = undefined;
      const pings = [...pingOut.matchAll(/(\d+) packets transmitted, (\d+) received/g)].map(
        (m) => [Number(m[1]), Number(m[2])] as const,
      );
      const pingTx = pings.reduce((s, p) => s + p[0], 0);
      const pingRx = pings.reduce((s, p) => s + p[1], 0);
      const [r0, r1, rn] = await Promise.all([t0.report(), t1.report(), tn.report()]);
      const seen0 = await cap0.count(`src host ${newIp}`);
      const seen1 = await cap1.count(`src host ${newIp}`);
      const inbound = Object.values(rn.received).reduce((s, n) => s + n, 0);
      console.log(
        `[no window] new pod deny/new got ${newIp} (node 0 block ${block[0]}/26); CNI ADD took ${addMs} ms\n` +
          `[no window] before ADD: ${before.sent} datagrams left the new pod, ${before.sendErrors} refused by its kernel (no interface)\n` +
          `[no window] outbound: new pod sent ${rn.sent} UDP datagrams (${rn.sendErrors} refused) and ${pingTx} pings (${pingRx} answered); ` +
          `listener l0 (node 0) got ${r0.received[newIp] ?? 0} UDP, tcpdump there saw ${seen0} packets from ${newIp}; ` +
          `listener l1 (node 1) got ${r1.received[newIp] ?? 0} UDP, tcpdump saw ${seen1}\n` +
          `[no window] inbound: l0 and l1 sent ${r0.sent} + ${r1.sent} datagrams to node 0's /26; the new pod received ${inbound} ${JSON.stringify(rn.received)}`,
      );
      expect(before.sent).toBe(0);
      expect(rn.sent).toBeGreaterThanOrEqual(100);
      expect(pingTx, pingOut.slice(-3000)).toBeGreaterThanOrEqual(100);
      expect(pingRx).toBe(0);
      expect(r0.received[newIp] ?? 0).toBe(0);
      expect(r1.received[newIp] ?? 0).toBe(0);
      expect(seen0).toBe(0);
      expect(seen1).toBe(0);
      expect(r0.sent - s0.sent + (r1.sent - s1.sent)).toBeGreaterThanOrEqual(2 * 20 * 64);
      expect(inbound).toBe(0);

      // Control: allow the open namespace both ways; the same tools now see traffic.
      await L.store!.apply([
        k8sPolicy('deny', 'allow-open', {
          podSelector: { matchLabels: { app: 'new' } },
          policyTypes: ['Ingress', 'Egress'],
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: 'open' } } }] }],
          egress: [{ to: [{ namespaceSelector: { matchLabels: { ns: 'open' } } }] }],
        }),
      ]);
      await eventually(
        'traffic both ways once allowed',
        async () => {
          const [c0, c1, cn] = await Promise.all([t0.report(), t1.report(), tn.report()]);
          return (
            (c0.received[newIp] ?? 0) > 0 &&
            (c1.received[newIp] ?? 0) > 0 &&
            (cn.received[l0.ip] ?? 0) > 0 &&
            (cn.received[l1.ip] ?? 0) > 0
          );
        },
        120_000,
      );
      const ctl = await execIn(newNs, 'ping', ['-n', '-c', '5', '-i', '0.05', '-W', '10', l1.ip], {
        timeoutMs: 120_000,
      });
      const [c0, c1, cn] = await Promise.all([t0.report(), t1.report(), tn.report()]);
      // What l1's listener received went past its capture: once tcpdump has written it.
      let ctlSeen1 = 0;
      await eventually(
        "l1's capture shows the new pod's packets",
        async () => (ctlSeen1 = await cap1.count(`src host ${newIp}`)) > 0,
      );
      console.log(
        `[no window] control (allow-open applied): l0 got ${c0.received[newIp]} UDP and l1 ${c1.received[newIp]} from the new pod, tcpdump on l1 saw ${ctlSeen1}; ` +
          `the new pod got ${cn.received[l0.ip]} from l0 and ${cn.received[l1.ip]} from l1; ping: ${/\d+ packets transmitted, \d+ received/.exec(ctl.stdout)?.[0]}`,
      );
      expect(ctl.code, ctl.stdout + ctl.stderr).toBe(0);
      expect(ctlSeen1).toBeGreaterThan(0);
    } finally {
      if (pinger) await stopGroup(pinger, 'SIGKILL');
      if (ruleMonitor) {
        await stopGroup(ruleMonitor, 'SIGKILL');
        await execIn(L.nodes[0]!.netns, 'ip', ['link', 'del', `${id}mk`]).catch(() => undefined);
      }
      await Promise.all(tools.map((t) => t.stop().catch(() => undefined)));
      for (const c of caps) {
        await c.stop().catch(() => undefined);
        c.remove();
      }
    }
  }, 600_000);

  it('without an agent on the node a new pod is not started: ADD fails with 11 (try again later) and rolls back', async () => {
    const L = lab!;
    const node = L.nodes[1]!;
    await node.process!.stop('SIGTERM');
    try {
      const ns = await createNetns(`tortie-${id}-p-x-late`);
      const cni = await privateCni(L);
      const add: PluginOutcome = await invokePlugin({
        plugin: cni.shim,
        command: 'ADD',
        containerId: `${id}-x-late`,
        netns: ns,
        ifName: 'eth0',
        args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=x;K8S_POD_NAME=late',
        config: { ...cni.config(node, { app: 'late' }), agent_wait_ms: 2000 },
      });
      const err = add.json as { code?: number; msg?: string };
      const links = await execIn(ns, 'ip', ['-o', 'link', 'show']);
      const weps = await L.store!.list('WorkloadEndpoint', { namespace: 'x' });
      console.log(
        `[no agent] ADD exit ${add.exitCode} in ${add.ms} ms, code ${err.code}: ${err.msg}; ` +
          `links left in the pod: ${links.stdout.split('\n').filter(Boolean).length}; endpoint x/late stored: ${weps.some((w) => w.metadata.name === 'late')}`,
      );
      expect(add.exitCode).not.toBe(0);
      expect(err.code).toBe(11);
      expect(links.stdout).not.toMatch(/eth0/);
      expect(weps.some((w) => w.metadata.name === 'late')).toBe(false);
    } finally {
      await node.process!.start('ready', AGENT_START_MS);
    }
  }, 300_000);
});

/** The plugin installed once more for this test, and the lab's network configuration. */
async function privateCni(lab: ClusterLab): Promise<{
  shim: string;
  config: (node: ClusterNode, labels: Record<string, string>) => Record<string, unknown>;
}> {
  const dir = mkdtempSync(join(tmpdir(), `tortie-cluster-${lab.id}-rs-`));
  const { plugin: shim } = await installCni({ binDir: join(dir, 'bin') });
  return {
    shim,
    config: (node, labels) => ({
      cniVersion: '1.0.0',
      name: NETWORK,
      type: 'tortie',
      datastore: { endpoints: lab.etcd!.endpoints, prefix: clusterNames(lab.id).etcdPrefix },
      nodename: node.name,
      host_netns: node.netns,
      agent_socket: labCniSocket(lab.id, node.name),
      mtu: lab.encap === 'ipip' ? 1480 : 1500,
      ipam: { type: 'tortie-ipam' },
      args: { tortie: { labels } },
    }),
  };
}

// ==========================================================================================

describe('a 2-node lab on a 3-member etcd: the leader killed', () => {
  const id = newLabId('rs');
  let lab: ClusterLab | undefined;

  beforeAll(async () => {
    await destroyClusterLab(id);
    const t0 = Date.now();
    lab = await ClusterLab.up({ id, nodes: 2, encap: 'ipip', agents: 'process', etcdMembers: 3 });
    await lab.createNamespace('x');
    await lab.addPod({ namespace: 'x', name: 'a', labels: { app: 'a' }, node: 0 });
    await lab.addPod({ namespace: 'x', name: 'b', labels: { app: 'b' }, node: 1 });
    await eventually('a reaches b', () => lab!.probe('x/a', 'x/b'));
    console.log(`[lab ${id}] up (3 etcd members) with 2 pods in ${Date.now() - t0} ms`);
  }, LAB_UP_MS);

  afterAll(async () => {
    await teardown(lab, id);
  }, LAB_UP_MS);

  it('killing the leader changes nothing a user can see', async () => {
    const L = lab!;
    const leader = await etcdLeader(L.etcd!.members);
    const offsets = L.nodes.map((n) => n.process!.logOffset());
    const pids = L.nodes.map((n) => n.process!.pid);
    const traffic = await startTraffic(L);
    let result: Awaited<ReturnType<typeof stopTraffic>>;
    const t0 = Date.now();
    let enforcedMs = 0;
    let addMs = 0;
    let newLeader = '';
    let matrix: Record<string, boolean> = {};
    try {
      await flowed(traffic, progress(traffic), 30, 'before the kill');
      await L.etcd!.kill(leader.name);
      const tKill = Date.now();
      const others = L.etcd!.members.filter((m) => m.name !== leader.name);
      await eventually(
        'a new leader',
        () => etcdLeader(others).then(() => true),
        AGENT_START_MS,
        100,
      );
      newLeader = (await etcdLeader(others)).name;
      // A policy through the Datastore (all endpoints): b admits only app=a.
      await L.store!.apply([ONLY_A_TO_B]);
      // A new pod through the CNI plugin (all endpoints), on node 0.
      const tAdd = Date.now();
      await L.addPod({ namespace: 'x', name: 'c', labels: { app: 'c' }, node: 0 });
      addMs = Date.now() - tAdd;
      await eventually('c cannot reach b', async () => !(await L.probe('x/c', 'x/b')));
      enforcedMs = Date.now() - tKill;
      // Probes that wait long enough for a loaded machine: an answer ends each at once.
      matrix = await L.matrix(80, 'tcp', 10_000);
      await eventually('agents ready', () => allReady(L));
      // And they stay so: two more heartbeats of each say ready.
      await staysReady(L, 2);
      await flowed(traffic, progress(traffic), 30, 'after the kill');
    } finally {
      result = await stopTraffic(traffic);
      await L.etcd!.restart(leader.name);
    }
    const ms = Date.now() - t0;
    const v = pingVerdict(result.ping);
    const errors = L.nodes.map((n, i) => errorLines(n, offsets[i]!));
    console.log(
      `[etcd leader] killed leader ${leader.name} (member ${leader.memberId}); new leader ${newLeader}; restarted it after ${(ms / 1000).toFixed(1)} s\n` +
        `[etcd leader] ping a->b: ${v.text}; ` +
        result.streams
          .map(
            (s, i) =>
              `stream ${i === 0 ? 'a->b' : 'b->a'} ${s.sent} sent ${s.echoed} echoed ${s.errors.length} errors`,
          )
          .join(', ') +
        `\n[etcd leader] new pod x/c added in ${addMs} ms; b-from-a enforced (c->b refused) ${enforcedMs} ms after the kill; matrix ${JSON.stringify(matrix)}\n` +
        `[etcd leader] agents: same pids ${L.nodes.every((n, i) => n.process!.pid === pids[i])}, error lines ${errors.map((e) => e.length).join('/')}`,
    );
    expect(v.ok, v.text).toBe(true);
    expect(result.ping.lost).toEqual([]);
    for (const s of result.streams) {
      expect(s.errors).toEqual([]);
      expect(s.echoed).toBe(s.sent);
    }
    expect(matrix).toEqual({
      'x/a -> x/b': true,
      'x/a -> x/c': true,
      'x/b -> x/a': true,
      'x/b -> x/c': true,
      'x/c -> x/a': true,
      'x/c -> x/b': false,
    });
    expect(L.nodes.every((n, i) => n.process!.pid === pids[i])).toBe(true);
    expect(errors.flat()).toEqual([]);
  }, 600_000);
});

/**
 * Restart, outage and "no unprotected window" acceptance, on a real 2-node lab (IPIP)
 * whose agents are real `tortie node run` processes, pods plumbed by the real CNI plugin,
 * real etcd:
 *
 *   1. agents restarted 10 times (SIGTERM and kill -9, both nodes) during a ping at
 *      100/s and TCP streams between pods on different nodes: no echo lost, no reset;
 *   2. etcd stopped for TORTIE_OUTAGE_S (default 30) s, an agent killed and restarted
 *      meanwhile: no echo lost, agents back to ready; a policy applied while an agent was
 *      down is enforced once it is back;
 *   3. (second lab, 3 etcd members) the leader killed: pings go on, a policy is enforced,
 *      a new pod is added and obeys it, agents stay ready;
 *   4. a pod in a default-deny namespace that tries to talk from before its interface
 *      exists never gets a packet out or in; an allowing policy then lets them through
 *      (the control that the count can be non-zero);
 *   and the CNI ADD fails with code 11 (try again later) while the node has no agent.
 *
 * Needs root and `npm run build` (agents, plugin and pod processes run from dist).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeStatusKey, type NodeStatus } from '../../src/agent/status.js';
import { installCni } from '../../src/cni/install.js';
import { invokePlugin, type PluginOutcome } from '../../src/cni/invoke.js';
import {
  ClusterLab,
  clusterNames,
  destroyClusterLab,
  NETWORK,
  type ClusterNode,
} from '../../src/lab/cluster/cluster-lab.js';
import { createNetns } from '../../src/plumbing/index.js';
import { execIn } from '../helpers/netns.js';
import {
  etcdLeader,
  eventually,
  pingVerdict,
  sleep,
  startCapture,
  startPing,
  startShellIn,
  startStream,
  startUdpTool,
  stopGroup,
  type Capture,
  type PingHandle,
  type StreamHandle,
  type UdpTool,
} from '../helpers/resilience.js';

const OUTAGE_S = Number(process.env.TORTIE_OUTAGE_S ?? 30);
const UDP_PORT = 7777;

function labId(): string {
  return `rs${randomBytes(3).toString('hex')}`;
}

function k8sPolicy(namespace: string, name: string, spec: object) {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  };
}

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
    const r = await fetch(`${s.healthUrl}/readyz`, { signal: AbortSignal.timeout(1000) });
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

async function stopTraffic(t: Traffic) {
  const streams = await Promise.all(t.streams.map((s) => s.stop()));
  const ping = await t.ping.stop();
  return { ping, streams };
}

function pinRate(p: { transmitted: number }, ms: number): string {
  return `${((p.transmitted * 1000) / ms).toFixed(0)}/s`;
}

// ==========================================================================================

describe('resilience on a 2-node lab, 1 etcd member', () => {
  const id = labId();
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
  }, 90_000);

  afterAll(async () => {
    await teardown(lab, id);
  }, 60_000);

  it('10 agent restarts (SIGTERM and kill -9, both nodes) during ping 100/s and TCP streams: 0 lost, no reset', async () => {
    const t0 = Date.now();
    const traffic = await startTraffic(lab!);
    const restarts: { node: string; signal: string; oldPid: number; newPid: number; ms: number }[] =
      [];
    let result: Awaited<ReturnType<typeof stopTraffic>>;
    try {
      await sleep(500);
      for (let i = 0; i < 10; i++) {
        const node = lab!.nodes[Math.floor(i / 2) % 2]!;
        const signal: NodeJS.Signals = i % 2 === 0 ? 'SIGTERM' : 'SIGKILL';
        const oldPid = node.process!.pid!;
        const t = Date.now();
        const newPid = await node.process!.restart(signal, 'ready');
        restarts.push({ node: node.name, signal, oldPid, newPid, ms: Date.now() - t });
        await sleep(250);
      }
      await sleep(500);
    } finally {
      result = await stopTraffic(traffic);
    }
    const ms = Date.now() - t0;
    const v = pingVerdict(result.ping);
    const bySignal = (s: string) => restarts.filter((r) => r.signal === s).length;
    console.log(
      `[restarts] ${restarts.length} restarts (${bySignal('SIGTERM')} SIGTERM, ${bySignal('SIGKILL')} SIGKILL; ` +
        `n0 ${restarts.filter((r) => r.node.endsWith('n0')).length}, n1 ${restarts.filter((r) => r.node.endsWith('n1')).length}), ` +
        `restart-to-ready ${restarts.map((r) => r.ms).join('/')} ms\n` +
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
    expect(result.ping.transmitted).toBeGreaterThan(300);
    expect(result.ping.lost).toEqual([]);
    expect(v.ok, v.text).toBe(true);
    for (const s of result.streams) {
      expect(s.errors).toEqual([]);
      expect(s.echoed).toBe(s.sent);
      expect(s.sent).toBeGreaterThan(100);
    }
  }, 150_000);

  it(
    `etcd stopped for ${OUTAGE_S} s, an agent killed and restarted meanwhile: pods keep talking, agents come back`,
    async () => {
      const member = lab!.etcd!.members[0]!.name;
      const node0 = lab!.nodes[0]!;
      const proc = node0.process!;
      const traffic = await startTraffic(lab!);
      let result: Awaited<ReturnType<typeof stopTraffic>>;
      let outageMs = 0;
      let from = 0;
      let oldPid = 0;
      let newPid = 0;
      let probesInOutage = 0;
      let probesOk = 0;
      try {
        await sleep(300);
        const t0 = Date.now();
        await lab!.etcd!.kill(member);
        try {
          await sleep(Math.min(5000, (OUTAGE_S * 1000) / 4));
          oldPid = proc.pid!;
          await proc.stop('SIGKILL');
          from = proc.logOffset();
          newPid = await proc.start('started');
          while (Date.now() - t0 < OUTAGE_S * 1000) {
            probesInOutage++;
            if (await lab!.probe('x/a', 'x/b', 80, 'tcp', 1000)) probesOk++;
            await sleep(1000);
          }
          // Without etcd it has not synced, hence programmed nothing.
          expect(proc.logSince(from)).not.toContain('first sync programmed');
        } finally {
          await lab!.etcd!.restart(member);
          outageMs = Date.now() - t0;
        }
        await proc.waitFor('ready', from, 40_000);
        await eventually('both agents synced and ready', () => allReady(lab!), 30_000);
        await sleep(500);
      } finally {
        result = await stopTraffic(traffic);
      }
      const v = pingVerdict(result.ping);
      console.log(
        `[etcd outage] etcd down ${(outageMs / 1000).toFixed(1)} s; agent of ${node0.name} kill -9 (pid ${oldPid}) and started without etcd (pid ${newPid}); ` +
          `TCP probes a->b during the outage: ${probesOk}/${probesInOutage}\n` +
          `[etcd outage] ping a->b over the whole outage: ${v.text}\n` +
          result.streams
            .map(
              (s, i) =>
                `[etcd outage] TCP stream ${i === 0 ? 'a->b' : 'b->a'}: ${s.sent} sent, ${s.echoed} echoed, ${s.errors.length} errors`,
            )
            .join('\n'),
      );
      expect(newPid).not.toBe(oldPid);
      expect(outageMs).toBeGreaterThanOrEqual(OUTAGE_S * 1000);
      expect(probesOk).toBe(probesInOutage);
      expect(result.ping.lost).toEqual([]);
      expect(v.ok, v.text).toBe(true);
      for (const s of result.streams) {
        expect(s.errors).toEqual([]);
        expect(s.echoed).toBe(s.sent);
      }
    },
    OUTAGE_S * 1000 + 120_000,
  );

  it('a policy applied while the agent of the node was stopped is enforced once it is back', async () => {
    const node1 = lab!.nodes[1]!;
    const n1 = node1.process!;
    // The store's client may refuse calls for a while after the outage (circuit breaker):
    // wait until it answers, so that the agent is down for well under its heartbeat TTL
    // (5 s; past it the other node would withdraw its routes to this one, by design).
    await eventually('the store answers', () => lab!.store!.list('Namespace').then(() => true));
    const tStop = Date.now();
    await n1.stop('SIGTERM');
    const stopMs = Date.now() - tStop;
    await lab!.store!.apply([DENY_B]);
    const applyMs = Date.now() - tStop - stopMs;
    await sleep(300);
    // Nobody reconciles node 1: its pinned state keeps working as it was.
    const whileDown = await lab!.probe('x/a', 'x/b');
    const from = n1.logOffset();
    const t0 = Date.now();
    await n1.start('ready');
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
    const afterReady = await lab!.probe('x/a', 'x/b');
    const dropsAfter = await policyDrops();
    const bToA = await lab!.probe('x/b', 'x/a');
    await lab!.store!.delete({ kind: 'K8sNetworkPolicy', name: 'deny-b', namespace: 'x' });
    const backMs = await eventually('a reaches b again', () => lab!.probe('x/a', 'x/b'), 10_000);
    console.log(
      `[policy while down] agent of ${node1.name} down ${downMs} ms (SIGTERM took ${stopMs} ms, apply ${applyMs} ms); a->b with it stopped and deny-b stored: ${whileDown}; ` +
        `agent ready in ${readyMs} ms; a->b right after ready: ${afterReady} (policy drops on ${node1.name}: +${dropsAfter - dropsBefore}); ` +
        `b->a: ${bToA}; a->b again ${backMs} ms after the delete; errors logged: ${errorLines(node1, from).length}`,
    );
    // A stopped agent must exit at once: its heartbeat (TTL 5 s here) is no longer kept
    // alive, and once it lapses the other node withdraws its routes to this one.
    expect
      .soft(stopMs, 'SIGTERM to exit of the agent (its heartbeat is not renewed meanwhile)')
      .toBeLessThan(2000);
    expect.soft(whileDown, 'a reaches b while the agent of b is stopped').toBe(true);
    expect(afterReady).toBe(false);
    expect(dropsAfter).toBeGreaterThan(dropsBefore);
    expect(bToA).toBe(true);
  }, 60_000);

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
      // sends to both listeners every 10 ms and counts what it receives, and a ping loop.
      const newNs = await createNetns(`tortie-${id}-p-deny-new`);
      const tn = await startUdpTool(newNs, {
        listen: UDP_PORT,
        targets: [l0.ip, l1.ip],
        port: UDP_PORT,
        intervalMs: 10,
      });
      tools.push(tn);
      pinger = startShellIn(newNs, `while :; do ping -n -i 0.01 ${l1.ip}; sleep 0.02; done`);
      await sleep(500);
      const before = await tn.report();

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
      await sleep(3000);

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
      expect(rn.sent).toBeGreaterThan(100);
      expect(pingTx).toBeGreaterThan(100);
      expect(pingRx).toBe(0);
      expect(r0.received[newIp] ?? 0).toBe(0);
      expect(r1.received[newIp] ?? 0).toBe(0);
      expect(seen0).toBe(0);
      expect(seen1).toBe(0);
      expect(r0.sent + r1.sent).toBeGreaterThan(1000);
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
        10_000,
      );
      await sleep(1000);
      const ctl = await execIn(newNs, 'ping', ['-n', '-c', '5', '-i', '0.05', '-W', '1', l1.ip]);
      const [c0, c1, cn] = await Promise.all([t0.report(), t1.report(), tn.report()]);
      const ctlSeen1 = await cap1.count(`src host ${newIp}`);
      console.log(
        `[no window] control (allow-open applied): l0 got ${c0.received[newIp]} UDP and l1 ${c1.received[newIp]} from the new pod, tcpdump on l1 saw ${ctlSeen1}; ` +
          `the new pod got ${cn.received[l0.ip]} from l0 and ${cn.received[l1.ip]} from l1; ping: ${/\d+ packets transmitted, \d+ received/.exec(ctl.stdout)?.[0]}`,
      );
      expect(ctl.code).toBe(0);
      expect(ctlSeen1).toBeGreaterThan(0);
    } finally {
      if (pinger) await stopGroup(pinger, 'SIGKILL');
      await Promise.all(tools.map((t) => t.stop().catch(() => undefined)));
      for (const c of caps) {
        await c.stop().catch(() => undefined);
        c.remove();
      }
    }
  }, 90_000);

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
      await node.process!.start('ready');
    }
  }, 40_000);
});

/** The plugin installed once more for this test, and the lab's network configuration. */
async function privateCni(lab: ClusterLab): Promise<{
  shim: string;
  config: (node: ClusterNode, labels: Record<string, string>) => Record<string, unknown>;
}> {
  const dir = mkdtempSync(join(tmpdir(), `tortie-cluster-${lab.id}-rs-`));
  const { shim } = await installCni({ binDir: join(dir, 'bin') });
  return {
    shim,
    config: (node, labels) => ({
      cniVersion: '1.0.0',
      name: NETWORK,
      type: 'tortie',
      datastore: { endpoints: lab.etcd!.endpoints, prefix: clusterNames(lab.id).etcdPrefix },
      nodename: node.name,
      host_netns: node.netns,
      mtu: lab.encap === 'ipip' ? 1480 : 1500,
      ipam: { type: 'tortie-ipam' },
      args: { tortie: { labels } },
    }),
  };
}

// ==========================================================================================

describe('a 2-node lab on a 3-member etcd: the leader killed', () => {
  const id = labId();
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
  }, 90_000);

  afterAll(async () => {
    await teardown(lab, id);
  }, 60_000);

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
      await sleep(300);
      await L.etcd!.kill(leader.name);
      const tKill = Date.now();
      newLeader = (
        await eventually(
          'a new leader',
          () => etcdLeader(L.etcd!.members.filter((m) => m.name !== leader.name)).then(() => true),
          10_000,
          100,
        ).then(() => etcdLeader(L.etcd!.members.filter((m) => m.name !== leader.name)))
      ).name;
      // A policy through the Datastore (all endpoints): b admits only app=a.
      await L.store!.apply([ONLY_A_TO_B]);
      // A new pod through the CNI plugin (all endpoints), on node 0.
      const tAdd = Date.now();
      await L.addPod({ namespace: 'x', name: 'c', labels: { app: 'c' }, node: 0 });
      addMs = Date.now() - tAdd;
      await eventually('c cannot reach b', async () => !(await L.probe('x/c', 'x/b')), 10_000);
      enforcedMs = Date.now() - tKill;
      matrix = await L.matrix();
      await eventually('agents ready', () => allReady(L), 10_000);
      await sleep(2000);
      expect(await allReady(L)).toBe(true);
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
  }, 90_000);
});

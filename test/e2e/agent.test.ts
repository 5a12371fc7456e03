/**
 * The agent end to end on one node: a real etcd, a node namespace with two pods behind
 * veths (src/plumbing, as the CNI plugin makes them), their WorkloadEndpoints in the
 * store, the agent running in this process on the real BPF object. Policies applied with
 * the Datastore change what the pods can reach; endpoint status appears only once the
 * policy is in the maps; a restart (new agent, same pins) loses no packet and never
 * empties a map; with etcd stopped the pods keep talking; a policy applied while the
 * agent was stopped is enforced once it is back; routes to another node stay when its
 * heartbeat lapses and go with its Node.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino, type Logger } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Agent,
  agentConfig,
  waitForEndpointProgrammed,
  type AgentConfig,
  type AgentStatus,
} from '../../src/agent/index.js';
import { Datastore } from '../../src/datastore/index.js';
import { startEtcd, type EtcdCluster } from '../../src/lab/etcd.js';
import { removePins } from '../../src/loader/index.js';
import { u32ToIp } from '../../src/maps/addr.js';
import { MAPS } from '../../src/maps/catalog.js';
import { RouteFlags, RouteType } from '../../src/maps/enums.js';
import { u32Codec } from '../../src/maps/structs.js';
import { native } from '../../src/native/index.js';
import { createPodNetwork } from '../../src/plumbing/index.js';
import { execIn, execInOk, newRunId, TestNetnsSet, type TestNetns } from '../helpers/netns.js';
import { pingVerdict, startPing, type PingSummary } from '../helpers/resilience.js';
import { k8sPolicy } from '../helpers/k8s.js';

const run = promisify(execFile);
const runId = newRunId();
const nets = new TestNetnsSet(runId);
const pinRoot = `/sys/fs/bpf/tortie-t${runId}`;
const prefix = `/tortie-t${runId}`;
const nodeName = `node-t${runId}`;
const octet = Number.parseInt(runId.slice(0, 2), 16);
const ipA = `10.78.${octet}.10`;
const ipB = `10.78.${octet}.11`;
const ipC = `10.78.${octet}.12`;

interface Pod {
  name: string;
  ip: string;
  ns: TestNetns;
  hostIfName: string;
}

let etcd: EtcdCluster | undefined;
let ds: Datastore | undefined;
let node: TestNetns;
let agent: Agent | undefined;
let config: AgentConfig;
const pods: Record<string, Pod> = {};

/** Every line the agents of this file logged (also printed with TORTIE_TEST_LOG). */
const logged: { msg: string; level: number }[] = [];

/** The agent's logger: its lines are evidence (what it tried, what it removed). */
function log(): Logger {
  const print = process.env.TORTIE_TEST_LOG !== undefined;
  return pino(
    { level: print ? 'debug' : 'info', base: { node: nodeName } },
    {
      write(line: string) {
        logged.push(JSON.parse(line) as { msg: string; level: number });
        if (print) process.stdout.write(line);
      },
    },
  );
}

/** Lines logged since `from` (an index into `logged`) whose message starts with `msg`. */
function loggedSince(from: number, msg: string): number {
  return logged.slice(from).filter((l) => l.msg.startsWith(msg)).length;
}

/** Whether one echo from `from` to `to` is answered within `waitS` seconds. */
async function echo(from: Pod, to: Pod, waitS: number): Promise<boolean> {
  const r = await execIn(from.ns.path, 'ping', ['-c1', `-W${waitS}`, '-n', to.ip], {
    timeoutMs: 30_000,
  });
  return r.code === 0;
}

/** For a single check: waits long enough for a loaded machine (an answer ends it at once). */
const ping = (from: Pod, to: Pod) => echo(from, to, 10);

/*
 * For polling with `eventually` only, until the policy lets the echo through or drops it:
 * a slow answer means one more round (or passes a drop check early), never a failure.
 */
const answersSoon = (from: Pod, to: Pod) => echo(from, to, 1);
const noAnswer = async (from: Pod, to: Pod) => !(await echo(from, to, 1));

/** Polls until `check` holds; the bound only decides when to give up (a failure). */
async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function wep(pod: Pod, labels: Record<string, string>) {
  return {
    apiVersion: 'tortie.io/v1',
    kind: 'WorkloadEndpoint',
    metadata: { name: pod.name, namespace: 'x', labels },
    spec: {
      node: nodeName,
      orchestrator: 'cni',
      workload: pod.name,
      endpoint: 'eth0',
      interfaceName: pod.hostIfName,
      ipNetworks: [`${pod.ip}/32`],
      profiles: ['kns.x'],
    },
  };
}

/** b admits only pods labelled app=a: a → b works through an allow rule, not by default. */
const ONLY_A_TO_B = k8sPolicy('x', 'b-from-a', {
  podSelector: { matchLabels: { app: 'b' } },
  policyTypes: ['Ingress'],
  ingress: [{ from: [{ podSelector: { matchLabels: { app: 'a' } } }] }],
});
const DENY_B = k8sPolicy('x', 'deny-b', {
  podSelector: { matchLabels: { app: 'b' } },
  policyTypes: ['Ingress'],
});

function openPinned(name: string) {
  return native.openPinnedMap(join(pinRoot, name));
}

const POLICY_MAPS = [
  MAPS.polIp32,
  MAPS.polAddr,
  MAPS.polPort,
  MAPS.polL4,
  MAPS.polDflt,
  MAPS.polSport,
];

/** Entries in each pinned policy map, read from the kernel. */
function pinnedPolicyCounts(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const spec of POLICY_MAPS) {
    const m = openPinned(spec.name);
    out[spec.name] = m.entries().keys.length;
    m.close();
  }
  return out;
}

/** What the agent compiled, as /metrics reports it. */
async function compiledPolicyCounts(): Promise<Record<string, number>> {
  const text = await (await fetch(`${agent!.healthUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const spec of POLICY_MAPS) {
    const m = new RegExp(`tortie_bpf_map_entries\\{map="${spec.name}"\\} (\\d+)`).exec(text);
    out[spec.name] = Number(m![1]);
  }
  return out;
}

/** REMOTE_BLOCK entries of the pinned routes map, as "cidr via next-hop flags". */
function remoteRoutesInMap(): string[] {
  const m = openPinned(MAPS.routes.name);
  const e = m.entries();
  m.close();
  return e.keys
    .map((k, i) => [MAPS.routes.key.decode(k), MAPS.routes.value.decode(e.values[i]!)] as const)
    .filter(([, v]) => v.type === RouteType.REMOTE_BLOCK)
    .map(([k, v]) => `${u32ToIp(k.addr)}/${k.prefixlen} via ${u32ToIp(v.next_hop)} ${v.flags}`);
}

/** Entries of tortie_nodes (the IPIP sources accepted). */
function knownNodesInMap(): number {
  const m = openPinned('tortie_nodes');
  const n = m.entries().keys.length;
  m.close();
  return n;
}

async function addPod(name: string, ip: string): Promise<Pod> {
  const ns = await nets.create(name);
  const net = await createPodNetwork({
    workloadId: `${runId}/${name}`,
    podNetns: ns.path,
    hostNetns: node.path,
    ip,
  });
  const pod = { name, ip, ns, hostIfName: net.hostIfName };
  pods[name] = pod;
  return pod;
}

describe('the node agent: store → dataplane on one node', () => {
  beforeAll(async () => {
    node = await nets.create('node');
    // A route out of the node (to a veth whose peer stays down), so the kernel answers the
    // pods' proxy-ARP for 169.254.1.1; an underlay address for the Node.
    await new Promise<void>((resolve, reject) => {
      const child = execFile('ip', ['-n', node.name, '-batch', '-'], (err, _o, stderr) =>
        err ? reject(new Error(stderr || err.message)) : resolve(),
      );
      child.stdin!.end(
        [
          'link set lo up',
          'link add t0 type veth peer name t0p',
          'link set t0 up',
          'addr add 10.99.0.1/24 dev t0',
          'route add default dev t0',
        ].join('\n') + '\n',
      );
    });
    etcd = await startEtcd(`a${runId}`);
    ds = await Datastore.connect({ endpoints: etcd.endpoints, prefix, timeoutMs: 3000 });
    const a = await addPod('a', ipA);
    const b = await addPod('b', ipB);
    await ds.apply([
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'x' } },
      wep(a, { app: 'a' }),
      wep(b, { app: 'b' }),
    ]);
    config = agentConfig({
      nodeName,
      etcd: { endpoints: etcd.endpoints, prefix, timeoutMs: 2000 },
      pinRoot,
      nodeNetns: node.path,
      ipv4Address: '10.99.0.1/24',
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

  it('programs both pods, reports their endpoints programmed after the maps hold them, and they talk', async () => {
    agent = await Agent.start(config, { log: log() });
    for (const p of ['a', 'b']) {
      const status = await waitForEndpointProgrammed(ds!, {
        node: nodeName,
        namespace: 'x',
        name: p,
        timeoutMs: 60_000,
      });
      expect(status.programmed).toBe(true);
      // The status is written only after the endpoint's entry is in the map.
      const ifaces = openPinned(MAPS.ifaces.name);
      const raw = ifaces.lookup(u32Codec.encode(status.ifindex));
      ifaces.close();
      expect(raw).not.toBeNull();
      const entry = MAPS.ifaces.value.decode(raw!);
      expect(entry.ingress_set).toBeGreaterThan(0);
      expect(entry.egress_set).toBeGreaterThan(0);
      expect(entry.policy_rev).toBe(status.policyRev);
    }
    expect(await ping(pods.a!, pods.b!)).toBe(true);
    expect(await ping(pods.b!, pods.a!)).toBe(true);

    const url = agent.healthUrl!;
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toMatch(/tortie_agent_reconcile_duration_seconds_bucket\{le="\+Inf"\} [1-9]/);
    expect(metrics).toMatch(/tortie_agent_endpoints\{state="programmed"\} 2/);
    expect(metrics).toMatch(
      /tortie_dataplane_packets_total\{reason="PASS_POLICY",dir="from-pod",verdict="allow"\} [1-9]/,
    );
    expect(metrics).toMatch(/tortie_bpf_map_entries\{map="tortie_ifaces"\} 2/);
    // The Node is registered with its address; its heartbeat is in etcd.
    const n = await ds!.get('Node', nodeName);
    expect(n?.spec.bgp?.ipv4Address).toBe('10.99.0.1/24');
  });

  it('/metrics and /status count the conntrack entries a pod creates: N new flows, N more', async () => {
    const created = async (): Promise<number> => {
      const text = await (await fetch(`${agent!.healthUrl}/metrics`)).text();
      const m = /tortie_conntrack_created_total\{endpoint="x\/a",endpoint_id="\d+"\} (\d+)/.exec(
        text,
      );
      expect(text).toMatch(/tortie_conntrack_capacity 262144/);
      return m === null ? 0 : Number(m[1]);
    };
    const before = await created();
    // N datagrams, each from a new socket (a new source port) to its own port: N new flows.
    const n = 40;
    await execInOk(pods.a!.ns.path, 'bash', [
      '-c',
      `for i in $(seq 1 ${n}); do echo x > /dev/udp/${ipB}/$((20000 + i)); done`,
    ]);
    expect((await created()) - before).toBe(n);
    const status = (await (await fetch(`${agent!.healthUrl}/status`)).json()) as AgentStatus;
    expect(status.conntrack!.capacity).toBe(262144);
    expect(status.conntrack!.entries).toBeGreaterThanOrEqual(n);
    expect(status.conntrack!.topCreators[0]).toEqual({ endpoint: 'x/a', created: before + n });
  });

  it('a NetworkPolicy applied with the Datastore changes what the pods can reach', async () => {
    await ds!.apply(DENY_B);
    await eventually('a can no longer reach b', () => noAnswer(pods.a!, pods.b!));
    expect(await ping(pods.b!, pods.a!)).toBe(true);
    await ds!.delete({ kind: 'K8sNetworkPolicy', name: 'deny-b', namespace: 'x' });
    await eventually('a reaches b again', () => answersSoon(pods.a!, pods.b!));
    const revOfB = () => agent!.status().endpoints.find((e) => e.key === 'x/b')!.policyRev;
    const before = revOfB();
    await ds!.apply(ONLY_A_TO_B);
    await eventually("b's policy changed", () => revOfB() !== before);
    expect(await ping(pods.a!, pods.b!)).toBe(true);
    const metrics = await (await fetch(`${agent!.healthUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /tortie_dataplane_packets_total\{reason="DROP_POLICY",dir="to-pod",verdict="drop"\} [1-9]/,
    );
  });

  it('a restart (new agent, same pins) loses no packet and never empties a map', async () => {
    const ifaces = openPinned(MAPS.ifaces.name);
    const dflt = openPinned(MAPS.polDflt.name);
    const addr = openPinned(MAPS.polAddr.name);
    const samples: {
      at: string;
      endpoints: number;
      programmed: number;
      classes: number;
      sets: number;
    }[] = [];
    const sample = (at: string) => {
      const e = ifaces.entries();
      const values = e.values.map((v) => MAPS.ifaces.value.decode(v));
      samples.push({
        at,
        endpoints: values.length,
        programmed: values.filter((v) => v.ingress_set > 0 && v.egress_set > 0).length,
        classes: dflt.entries().keys.length,
        sets: addr.entries().keys.length,
      });
    };
    // The maps read at each step of the restart, and besides every 2 ms in between.
    const sampler = setInterval(() => sample('interval'), 2);
    // ~100 pings a second from a to b, admitted only by b's allow rule, for as long as it
    // takes: counted by sequence number, so a lost echo is told from the one in flight
    // when ping is stopped.
    const pinger = startPing(pods.a!.ns.path, ipB);
    let pinged: PingSummary;
    let answeredBefore = 0;
    let answeredAtSwitch = 0;
    const from = logged.length;
    try {
      await eventually(
        '50 pings answered through the allow rule',
        () => pinger.repliesSoFar() >= 50,
      );
      sample('before');
      const before = agent!.status();
      answeredBefore = pinger.repliesSoFar();
      await agent!.stop();
      sample('old agent stopped');
      agent = await Agent.start(config, { log: log() });
      sample('new agent started, adopting');
      await eventually(
        'the new agent programmed',
        () => {
          sample('new agent programming');
          return agent!.programmed;
        },
        60_000,
      );
      await agent.idle();
      sample('new agent programmed');
      answeredAtSwitch = pinger.repliesSoFar();
      const after = agent.status();
      // Same endpoints, same ids; new (higher) policy revisions.
      expect(after.endpoints.map((e) => [e.key, e.id]).sort()).toEqual(
        before.endpoints.map((e) => [e.key, e.id]).sort(),
      );
      for (const e of after.endpoints) {
        expect(e.policyRev).toBeGreaterThan(
          before.endpoints.find((b) => b.key === e.key)!.policyRev,
        );
      }
      // The previous agent's sets and classes go once every endpoint has switched.
      await eventually(
        "the new agent removed the previous agent's policy entries",
        () => loggedSince(from, "removed the previous agent's policy entries") === 1,
      );
      // And the pings go on through the new agent's entries alone.
      await eventually(
        '50 more pings answered after the restart',
        () => pinger.repliesSoFar() >= answeredAtSwitch + 50,
      );
    } finally {
      clearInterval(sampler);
      pinged = await pinger.stop();
    }
    sample('after');
    await ds!.delete({ kind: 'K8sNetworkPolicy', name: 'b-from-a', namespace: 'x' });
    ifaces.close();
    dflt.close();
    addr.close();
    const verdict = pingVerdict(pinged);
    expect(pinged.lost, verdict.text).toEqual([]);
    expect(verdict.ok, verdict.text).toBe(true);
    // The pings spanned the restart: some were answered while it went on.
    expect(answeredAtSwitch).toBeGreaterThan(answeredBefore);
    for (const s of samples) {
      expect(s.endpoints, s.at).toBe(2);
      expect(s.programmed, s.at).toBe(2);
      expect(s.classes, s.at).toBeGreaterThan(0);
      expect(s.sets, s.at).toBeGreaterThan(0);
    }
    // Nothing of the previous agent's entries is left: as many as before the restart.
    const first = samples.find((s) => s.at === 'before')!;
    const last = samples[samples.length - 1]!;
    expect(last.sets).toBe(first.sets);
    expect(last.classes).toBe(first.classes);
  });

  it('with etcd stopped the pods keep talking and an agent started meanwhile writes nothing; when etcd returns, a new policy is enforced', async () => {
    const member = etcd!.members[0]!.name;
    await etcd!.kill(member);
    try {
      await eventually('the agent sees etcd gone', () => !agent!.status().etcdConnected);
      expect(await ping(pods.a!, pods.b!)).toBe(true);
      expect(await ping(pods.b!, pods.a!)).toBe(true);
      expect((await fetch(`${agent!.healthUrl}/healthz`)).status).toBe(200);
      // Ready: synced before, dataplane programmed, last state kept.
      expect((await fetch(`${agent!.healthUrl}/readyz`)).status).toBe(200);

      // An agent (re)started while etcd is away programs nothing: the pins keep working.
      const ifaces = openPinned(MAPS.ifaces.name);
      const mapBefore = ifaces
        .entries()
        .values.map((v) => v.toString('hex'))
        .sort();
      await agent!.stop();
      const from = logged.length;
      agent = await Agent.start(config, { log: log() });
      // It tried the store, twice (a retry included), and was refused: it had its chance.
      await eventually(
        'the new agent failed to list the store twice',
        () => loggedSince(from, 'cannot list the store yet') >= 2,
      );
      expect(agent.synced).toBe(false);
      expect((await fetch(`${agent.healthUrl}/readyz`)).status).toBe(503);
      expect((await fetch(`${agent.healthUrl}/healthz`)).status).toBe(200);
      expect(
        ifaces
          .entries()
          .values.map((v) => v.toString('hex'))
          .sort(),
      ).toEqual(mapBefore);
      ifaces.close();
      expect(await ping(pods.a!, pods.b!)).toBe(true);
    } finally {
      await etcd!.restart(member);
    }
    await eventually('the agent is connected again', () => agent!.status().etcdConnected, 60_000);
    await eventually('the agent synced and programmed', () => agent!.programmed, 60_000);
    // This test's own client lived through the outage: its circuit breaker can go on
    // refusing calls for a while, and a refusal left over from here once failed the next
    // tests' first calls. They are about the agent, not that client: a fresh one.
    await ds!.close();
    ds = await Datastore.connect({ endpoints: etcd!.endpoints, prefix, timeoutMs: 3000 });
    await eventually(
      'the policy is stored',
      () =>
        ds!.apply(DENY_B).then(
          () => true,
          () => false,
        ),
      60_000,
    );
    await eventually('a can no longer reach b', () => noAnswer(pods.a!, pods.b!));
    await ds!.delete({ kind: 'K8sNetworkPolicy', name: 'deny-b', namespace: 'x' });
    await eventually('a reaches b again', () => answersSoon(pods.a!, pods.b!));
  });

  it('a policy applied while the agent was stopped is enforced once it is back', async () => {
    await agent!.stop();
    agent = undefined;
    const adopted = Object.values(pinnedPolicyCounts()).reduce((n, c) => n + c, 0);
    await ds!.apply(DENY_B);
    // Nobody reconciles: the pinned state keeps working as it was.
    expect(await ping(pods.a!, pods.b!)).toBe(true);
    const from = logged.length;
    agent = await Agent.start(config, { log: log() });
    await eventually('a can no longer reach b', () => noAnswer(pods.a!, pods.b!));
    expect(await ping(pods.b!, pods.a!)).toBe(true);
    // The maps hold exactly the new compilation: nothing of the previous agent's sets is
    // left (it says it removed them), nothing of the new one was written into them.
    expect(adopted).toBeGreaterThan(0);
    await eventually(
      "the new agent removed the previous agent's policy entries",
      () => loggedSince(from, "removed the previous agent's policy entries") === 1,
    );
    await agent.idle();
    expect(pinnedPolicyCounts()).toEqual(await compiledPolicyCounts());
    await ds!.delete({ kind: 'K8sNetworkPolicy', name: 'deny-b', namespace: 'x' });
    await eventually('a reaches b again', () => answersSoon(pods.a!, pods.b!));
  });

  it('a new pod: ADD waits for its status, which comes only with its policy; an unknown one times out', async () => {
    const c = await addPod('c', ipC);
    const [written] = await ds!.apply(wep(c, { app: 'c' }));
    const revision = written!.resource.metadata.resourceVersion!;
    const status = await waitForEndpointProgrammed(ds!, {
      node: nodeName,
      namespace: 'x',
      name: 'c',
      revision,
      timeoutMs: 60_000,
    });
    expect(BigInt(status.revision) >= BigInt(revision)).toBe(true);
    expect(await ping(c, pods.a!)).toBe(true);
    await expect(
      waitForEndpointProgrammed(ds!, {
        node: nodeName,
        namespace: 'x',
        name: 'nobody',
        timeoutMs: 300,
      }),
    ).rejects.toThrow(/not programmed by the agent of node/);
    // Gone from the store: its status goes, its route goes, it is fail-closed.
    await ds!.delete({ kind: 'WorkloadEndpoint', name: 'c', namespace: 'x' });
    await eventually('c no longer reachable', () => noAnswer(pods.a!, c));
    await eventually(
      'c status removed',
      async () =>
        (await ds!.etcd.get(`${prefix}/tortie/status/endpoints/${nodeName}/x/c`).string()) === null,
    );
  });

  it('routes to another node follow its block affinity, stay when its heartbeat expires, and go with its Node', async () => {
    await ds!.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: { name: `pool-${runId}` },
        spec: { cidr: '10.200.0.0/16', ipipMode: 'Always' },
      },
      {
        apiVersion: 'tortie.io/v1',
        kind: 'Node',
        metadata: { name: 'ghost' },
        spec: { bgp: { ipv4Address: '10.99.0.2/24' } },
      },
    ]);
    // An empty block of the ghost's, as Calico's IPAM stores it.
    await ds!.etcd.put(`${prefix}/ipam/v2/assignment/ipv4/block/10.200.0.0-26`).value(
      JSON.stringify({
        cidr: '10.200.0.0/26',
        affinity: 'host:ghost',
        allocations: new Array(64).fill(null),
        unallocated: Array.from({ length: 64 }, (_, i) => i),
        attributes: [],
        sequenceNumber: 0,
        sequenceNumberForAllocation: {},
        deleted: false,
      }),
    );
    // The ghost's heartbeat, under a lease nobody keeps alive: long enough that it cannot
    // lapse before the agent has seen it, however slow the machine.
    const lease = ds!.etcd.lease(60, { autoKeepAlive: false });
    await lease.put(`${prefix}/tortie/status/nodes/ghost`).value('{}');
    await eventually("the agent sees the ghost's heartbeat", () =>
      agent!.status().liveNodes.includes('ghost'),
    );
    await eventually('a route to the ghost node', () =>
      agent!
        .status()
        .routes.some((r) => r.cidr === '10.200.0.0/26' && r.nextHop === '10.99.0.2' && r.ipip),
    );
    expect(agent!.status().knownNodes).toEqual(['10.99.0.2']);
    // In the dataplane: the route (IPIP to the node), the node accepted as an IPIP source,
    // and this node's uplink (the interface holding its address).
    await agent!.idle();
    expect(remoteRoutesInMap()).toEqual([`10.200.0.0/26 via 10.99.0.2 ${RouteFlags.IPIP}`]);
    expect(knownNodesInMap()).toBe(1);
    const t0 = JSON.parse(
      (await run('ip', ['-n', node.name, '-j', 'link', 'show', 't0'])).stdout,
    ) as { ifindex: number }[];
    expect(agent!.status().uplink).toEqual({ ip: '10.99.0.1', ifindex: t0[0]!.ifindex });
    // An address the ghost borrowed from this node's block: a change of allocations alone
    // (the agent reconciles on block changes only when the routes are concerned).
    const ownBlock = (allocations: (number | null)[], attributes: unknown[]) =>
      JSON.stringify({
        cidr: '10.200.0.64/26',
        affinity: `host:${nodeName}`,
        allocations,
        unallocated: Array.from({ length: 64 }, (_, i) => i).filter((i) => allocations[i] === null),
        attributes,
        sequenceNumber: 0,
        sequenceNumberForAllocation: {},
        deleted: false,
      });
    const ownKey = `${prefix}/ipam/v2/assignment/ipv4/block/10.200.0.64-26`;
    const empty = new Array<number | null>(64).fill(null);
    await ds!.etcd.put(ownKey).value(ownBlock(empty, []));
    const borrowed = [...empty];
    borrowed[3] = 0;
    await ds!.etcd
      .put(ownKey)
      .value(ownBlock(borrowed, [{ handle_id: 'ghost.h', secondary: { node: 'ghost' } }]));
    await eventually('a route to the address the ghost borrowed', () =>
      agent!.status().routes.some((r) => r.cidr === '10.200.0.67/32' && r.nextHop === '10.99.0.2'),
    );
    await ds!.etcd.delete().key(ownKey);
    await eventually('the borrowed route goes with the block', () =>
      agent!.status().routes.every((r) => r.cidr !== '10.200.0.67/32'),
    );
    // Its agent is down: the heartbeat lapses and the route stays — the node's dataplane
    // still forwards. The lease ends now (revoked: to a watcher exactly what its expiry
    // does, the key deleted with it) rather than after its TTL.
    const key = `${prefix}/tortie/status/nodes/ghost`;
    await lease.revoke();
    await eventually(
      'the heartbeat is gone',
      async () => (await ds!.etcd.get(key).string()) === null,
    );
    // The agent saw it go (and reconciles on that change): then the route is still there.
    await eventually("the agent sees the ghost's heartbeat gone", () =>
      agent!.status().liveNodes.every((n) => n !== 'ghost'),
    );
    await agent!.idle();
    expect(remoteRoutesInMap()).toEqual([`10.200.0.0/26 via 10.99.0.2 ${RouteFlags.IPIP}`]);
    // The Node deleted: the route goes.
    await ds!.delete({ kind: 'Node', name: 'ghost' });
    await eventually('the route is withdrawn', () => agent!.status().routes.length === 0);
    await agent!.idle();
    expect(agent!.status().knownNodes).toEqual([]);
    expect(remoteRoutesInMap()).toEqual([]);
    expect(knownNodesInMap()).toBe(0);
    const { stdout } = await run('ip', ['-n', node.name, '-j', 'link', 'show']);
    expect(stdout).toContain(pods.a!.hostIfName);
  });
});

/**
 * `tortie bench convergence`: BGP convergence when a node joins (issue 5), for N = 3, 6, 10
 * nodes, full node mesh against two route reflectors, real parts only (BIRD 2 per node in
 * its namespace, etcd, `tortie node run` agent processes, the CNI plugin).
 *
 * One cell (N, topology) is `runs` runs; every run builds a fresh lab, so that every join
 * is a first join (no block, Node, session or route left over from an earlier run):
 *
 *  1. `ClusterLab.up` with N − 1 nodes (routing bgp, encap none, process agents). For
 *     `rr`, the topology is then set through the store as a Calico user sets it: nodes 0
 *     and 1 get `route-reflector=true` and `spec.bgp.routeReflectorClusterID 224.0.0.1`;
 *     BGPConfiguration `default` has `nodeToNodeMeshEnabled: false`; one BGPPeer
 *     `{ nodeSelector: all(), peerSelector: route-reflector == 'true' }`.
 *  2. One pod per node through the real CNI ADD (`lab.addPod`): each node claims its first
 *     block, as a real node does. The lab is built when every node has every other node's
 *     block in its kernel (`proto bird`) and in its BPF route map ("build" column: from
 *     the start of `up`).
 *  3. The measured event: `lab.addNode()` (veth, address, agent process started, ready),
 *     then a pod on it by CNI ADD (its first block). Converged when every other node has
 *     that block via the new node's address in its kernel (`proto bird`, seen by an
 *     `ip monitor route` per node started before the join: the time an event arrives) AND
 *     in its pinned `tortie_routes` map (REMOTE_BLOCK, next hop the new node; every node's
 *     map looked up every 20 ms from this process). A node's time is the later of the two;
 *     the cell's figure is the last node's. Two origins: the moment the pod's CNI ADD
 *     returned ("from ADD": the block exists and the new agent programmed the endpoint),
 *     and the moment the new node's agent process was spawned ("from agent start": its
 *     start, first sync, its BGP sessions coming up, the ADD, the propagation).
 *
 * Sessions are read from BIRD (`birdc show protocols`, BGP protocols Established) after
 * convergence: the new node's and the most any node has (a reflector: N − 1).
 *
 * A cell that does not converge within `timeoutMs` (default 30 s), at build or after the
 * join, is reported as such (`error`), not thrown. Every lab is removed
 * (`destroyClusterLab`) in a finally block.
 *
 *   tortie bench convergence [--nodes 3,6,10] [--topologies mesh,rr] [--runs 3] [--json]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { birdPaths } from '../src/bgp/bird.js';
import { installCni } from '../src/cni/install.js';
import { invokePlugin } from '../src/cni/invoke.js';
import {
  ClusterLab,
  NETWORK,
  clusterNames,
  labCniSocket,
  destroyClusterLab,
  podNetnsName,
  type ClusterNode,
} from '../src/lab/cluster/cluster-lab.js';
import { ipToU32, u32ToIp } from '../src/maps/addr.js';
import { MAPS } from '../src/maps/catalog.js';
import { RouteType } from '../src/maps/enums.js';
import { native } from '../src/native/index.js';
import type { BpfMap } from '../src/native/types.js';
import { createNetns } from '../src/plumbing/index.js';
import { percentile } from './cni.js';
import { benchHex } from './common.js';

const exec = promisify(execFile);

export type Topology = 'mesh' | 'rr';

export interface ConvergenceBenchOptions {
  nodes: number[];
  topologies: Topology[];
  runs: number;
  json: boolean;
  /** Per wait (lab built, join converged); default 30 s. */
  timeoutMs?: number;
}

export interface ConvergenceRun {
  /** `up` start → every node has every other block (kernel and route map). */
  buildMs: number;
  /** New node: agent spawned → ready (first sync programmed). */
  agentReadyMs: number;
  /** The new node's pod: CNI ADD, spawn to exit. */
  addMs: number;
  /** CNI ADD returned → the last other node has the new block in kernel and map. */
  fromAddMs: number;
  /** Agent spawned → the same. */
  fromAgentMs: number;
  /** Of fromAddMs: the last node's kernel route (BIRD) and route map entry (agent), apart. */
  kernelFromAddMs: number;
  mapFromAddMs: number;
  /** Established BGP sessions of the new node, and the most of any node. */
  sessionsNew: number;
  sessionsMax: number;
  /** Established mesh (Mesh_…) sessions over all nodes: 0 with route reflectors. */
  meshSessions: number;
}

export interface ConvergenceCell {
  nodes: number;
  topology: Topology;
  runs: ConvergenceRun[];
  /**
   * Set when a run did not converge within the timeout, or failed (then `failed`); the
   * cell's remaining runs are skipped, its figures are absent.
   */
  error?: string;
  failed?: boolean;
  /** Lab failures that were retried (and the last one, when it was not). */
  failures?: string[];
  sessionsNew?: number;
  sessionsMax?: number;
  fromAddP50Ms?: number;
  fromAddMaxMs?: number;
  fromAgentP50Ms?: number;
  fromAgentMaxMs?: number;
  /** p50 of the kernel part alone (BIRD's route in every kernel; may be < 0: before ADD returned). */
  kernelFromAddP50Ms?: number;
  buildP50Ms?: number;
}

export interface ConvergenceBenchResult {
  kernel: string;
  cores: number;
  /** 1-minute load average at the start and the end of the run. */
  loadAvg: { start: number; end: number };
  runs: number;
  timeoutMs: number;
  totalMs: number;
  cells: ConvergenceCell[];
}

/** A run that did not converge: reported in the table, not thrown. */
class NotConverged extends Error {
  override readonly name = 'NotConverged';
}

const POLL_MS = 20;
const RR_CLUSTER_ID = '224.0.0.1';

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function blockOf(ip: string): string {
  const o = ip.split('.').map(Number);
  return `${o[0]}.${o[1]}.${o[2]}.${o[3]! & 0xc0}/26`;
}

/**
 * The `proto bird` routes of a node's main table, kept current by `ip monitor route`
 * in its namespace; `seen(prefix, via)` is the time (performance.now()) the route last
 * appeared with that gateway, undefined while absent.
 */
class KernelRoutes {
  private readonly routes = new Map<string, { via: string; at: number }>();
  private buffer = '';
  private constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const at = performance.now();
      this.buffer += d;
      const lines = this.buffer.split('\n');
      this.buffer = lines.pop()!;
      for (const line of lines) this.line(line, at);
    });
  }

  /** Starts the monitor, then loads the current table (events after the start win). */
  static async start(node: ClusterNode): Promise<KernelRoutes> {
    const child = spawn('nsenter', [`--net=${node.netns}`, '--', 'ip', 'monitor', 'route'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const k = new KernelRoutes(child);
    await sleep(50);
    const { stdout } = await exec('nsenter', [
      `--net=${node.netns}`,
      '--',
      'ip',
      '-j',
      'route',
      'show',
      'proto',
      'bird',
    ]);
    const at = performance.now();
    for (const r of JSON.parse(stdout || '[]') as { dst: string; gateway?: string }[]) {
      const dst = r.dst.includes('/') ? r.dst : `${r.dst}/32`;
      if (!k.routes.has(dst)) k.routes.set(dst, { via: r.gateway ?? '', at });
    }
    return k;
  }

  private line(line: string, at: number): void {
    const deleted = line.startsWith('Deleted ');
    const text = deleted ? line.slice('Deleted '.length) : line;
    if (!/\bproto bird\b/.test(text)) return;
    const [dst] = text.split(' ');
    if (!dst) return;
    const prefix = dst.includes('/') ? dst : `${dst}/32`;
    if (deleted) this.routes.delete(prefix);
    else {
      const via = /\bvia (\S+)/.exec(text)?.[1] ?? '';
      const old = this.routes.get(prefix);
      if (old?.via !== via) this.routes.set(prefix, { via, at });
    }
  }

  seen(prefix: string, via: string): number | undefined {
    const r = this.routes.get(prefix);
    return r !== undefined && r.via === via ? r.at : undefined;
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

/** Does the node's pinned route map hold `prefix` as a remote block via `via`? */
function inRouteMap(map: BpfMap, prefix: string, via: string): boolean {
  const [addr, len] = prefix.split('/') as [string, string];
  const v = map.lookup(MAPS.routes.key.encode({ prefixlen: Number(len), addr: ipToU32(addr) }));
  if (v === null) return false;
  const route = MAPS.routes.value.decode(v);
  return route.type === RouteType.REMOTE_BLOCK && u32ToIp(route.next_hop) === via;
}

/** Established BGP sessions of a node's BIRD, and how many of them are mesh sessions. */
async function sessions(
  lab: ClusterLab,
  node: ClusterNode,
): Promise<{ established: number; mesh: number }> {
  const { stdout } = await exec('birdc', [
    '-s',
    birdPaths(lab.bgpRunDir, node.name).ctl,
    'show',
    'protocols',
  ]);
  const up = stdout.match(/^\S+\s+BGP\s+.*\bEstablished\b/gm) ?? [];
  return { established: up.length, mesh: up.filter((l) => l.startsWith('Mesh_')).length };
}

interface Watch {
  node: ClusterNode;
  kernel: KernelRoutes;
  map: BpfMap;
}

/**
 * Polls every node every 20 ms until each has every (prefix, via) in `want(node)` in its
 * kernel and route map. Returns per node the time it had all of them: kernel (the route's
 * arrival event) and map (the poll that found it). Throws NotConverged after `timeoutMs`.
 */
async function converge(
  watches: Watch[],
  want: (n: ClusterNode) => { prefix: string; via: string }[],
  timeoutMs: number,
  what: string,
): Promise<{ kernelAt: number; mapAt: number }[]> {
  const start = performance.now();
  const done = new Map<Watch, { kernelAt: number; mapAt: number }>();
  const mapAt = new Map<string, number>();
  for (;;) {
    const now = performance.now();
    for (const w of watches) {
      if (done.has(w)) continue;
      let kernelLast = 0;
      let mapLast = 0;
      let all = true;
      for (const { prefix, via } of want(w.node)) {
        const k = w.kernel.seen(prefix, via);
        const key = `${w.node.name} ${prefix} ${via}`;
        if (!mapAt.has(key) && inRouteMap(w.map, prefix, via)) mapAt.set(key, now);
        const m = mapAt.get(key);
        if (k === undefined || m === undefined) {
          all = false;
          break;
        }
        kernelLast = Math.max(kernelLast, k);
        mapLast = Math.max(mapLast, m);
      }
      if (all) done.set(w, { kernelAt: kernelLast, mapAt: mapLast });
    }
    if (done.size === watches.length) return watches.map((w) => done.get(w)!);
    if (now - start > timeoutMs) {
      const missing = watches.filter((w) => !done.has(w)).map((w) => w.node.name);
      throw new NotConverged(
        `${what}: did not converge in ${timeoutMs >= 1000 ? `${Math.round(timeoutMs / 1000)} s` : `${timeoutMs} ms`} (missing on ${missing.join(', ')})`,
      );
    }
    await sleep(POLL_MS);
  }
}

/** The route reflector topology, through the store as a Calico user would set it. */
async function configureReflectors(lab: ClusterLab): Promise<void> {
  const store = lab.store!;
  for (const n of lab.nodes.slice(0, 2)) {
    const node = await store.get('Node', n.name);
    if (node === undefined) throw new Error(`no Node ${n.name} in the store`);
    await store.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'Node',
        metadata: {
          name: n.name,
          labels: { ...(node.metadata.labels ?? {}), 'route-reflector': 'true' },
          ...(node.metadata.annotations ? { annotations: node.metadata.annotations } : {}),
        },
        spec: {
          ...node.spec,
          bgp: {
            ...(node.spec.bgp ?? { ipv4Address: `${n.underlayIp}/24` }),
            routeReflectorClusterID: RR_CLUSTER_ID,
          },
        },
      },
    ]);
  }
  await store.apply([
    {
      apiVersion: 'tortie.io/v1',
      kind: 'BGPConfiguration',
      metadata: { name: 'default' },
      spec: { nodeToNodeMeshEnabled: false },
    },
    {
      apiVersion: 'tortie.io/v1',
      kind: 'BGPPeer',
      metadata: { name: 'peer-with-route-reflectors' },
      spec: { nodeSelector: 'all()', peerSelector: "route-reflector == 'true'" },
    },
  ]);
}

/** One run: a fresh lab of n − 1 nodes, then the join of node n. */
async function runOnce(
  n: number,
  topology: Topology,
  timeoutMs: number,
  progress: (s: string) => void,
): Promise<ConvergenceRun> {
  const id = `cv${benchHex()}`;
  let lab: ClusterLab | undefined;
  const watches: Watch[] = [];
  try {
    const t0 = performance.now();
    lab = await ClusterLab.up({
      id,
      nodes: n - 1,
      encap: 'none',
      routing: 'bgp',
      agents: 'process',
    });
    if (topology === 'rr') await configureReflectors(lab);
    await lab.createNamespace('cv');
    const blocks = await Promise.all(
      lab.nodes.map(async (node, i) =>
        blockOf(
          (await lab!.addPod({ namespace: 'cv', name: `p${i}`, labels: {}, node: i, servers: '' }))
            .ip,
        ),
      ),
    );
    const origin = new Map(
      lab.nodes.map((node, i) => [node.name, { block: blocks[i]!, via: node.underlayIp }]),
    );
    for (const node of lab.nodes) {
      watches.push({
        node,
        kernel: await KernelRoutes.start(node),
        map: native.openPinnedMap(join(node.pinRoot, MAPS.routes.name)),
      });
    }
    const l = lab;
    await converge(
      watches,
      (node) =>
        l.nodes
          .filter((o) => o !== node)
          .map((o) => ({ prefix: origin.get(o.name)!.block, via: o.underlayIp })),
      timeoutMs,
      `${n - 1}-node ${topology} lab`,
    );
    const buildMs = performance.now() - t0;
    progress(`  ${id}: ${n - 1} nodes built and converged in ${(buildMs / 1000).toFixed(1)} s`);

    // The join.
    const { node: joined, agentStartedAt } = await lab.addNode();
    const agentReadyMs = performance.now() - agentStartedAt;
    const binDir = join(mkdtempSync(join(tmpdir(), `tortie-cluster-${id}-bench-`)), 'bin');
    const { plugin: shim } = await installCni({ binDir });
    const netns = await createNetns(podNetnsName(id, 'cv', 'joined'));
    const add = await invokePlugin({
      plugin: shim,
      command: 'ADD',
      containerId: `${id}-cv-joined`,
      netns,
      ifName: 'eth0',
      args: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=cv;K8S_POD_NAME=joined',
      config: {
        cniVersion: '1.0.0',
        name: NETWORK,
        type: 'tortie',
        datastore: { endpoints: lab.etcd!.endpoints, prefix: clusterNames(id).etcdPrefix },
        nodename: joined.name,
        host_netns: joined.netns,
        agent_socket: labCniSocket(id, joined.name),
        mtu: 1500,
        ipam: { type: 'tortie-ipam' },
      },
    });
    const addReturned = performance.now();
    if (add.exitCode !== 0)
      throw new Error(
        `CNI ADD on ${joined.name}: exit ${String(add.exitCode)}: ${add.stdout}${add.stderr}`,
      );
    const ip = (add.json as { ips?: { address: string }[] }).ips?.[0]?.address.split('/')[0];
    if (!ip) throw new Error(`CNI ADD on ${joined.name}: no address in ${add.stdout}`);
    const block = blockOf(ip);
    const times = await converge(
      watches,
      () => [{ prefix: block, via: joined.underlayIp }],
      timeoutMs,
      `join of node ${n} (${topology})`,
    );
    const kernelLast = Math.max(...times.map((t) => t.kernelAt));
    const mapLast = Math.max(...times.map((t) => t.mapAt));
    const last = Math.max(kernelLast, mapLast);
    const counts = await Promise.all(lab.nodes.map((node) => sessions(l, node)));
    const run: ConvergenceRun = {
      buildMs: round(buildMs),
      agentReadyMs: round(agentReadyMs),
      addMs: round(add.ms),
      fromAddMs: round(last - addReturned),
      fromAgentMs: round(last - agentStartedAt),
      kernelFromAddMs: round(kernelLast - addReturned),
      mapFromAddMs: round(mapLast - addReturned),
      sessionsNew: counts[counts.length - 1]!.established,
      sessionsMax: Math.max(...counts.map((c) => c.established)),
      meshSessions: counts.reduce((a, c) => a + c.mesh, 0),
    };
    progress(
      `  ${id}: node ${n} joined: agent ready ${run.agentReadyMs} ms, ADD ${run.addMs} ms, ` +
        `converged ${run.fromAddMs} ms after ADD (kernel ${run.kernelFromAddMs}, map ${run.mapFromAddMs}), ` +
        `${run.fromAgentMs} ms after agent start; sessions new ${run.sessionsNew}, max ${run.sessionsMax}, mesh ${run.meshSessions}`,
    );
    return run;
  } finally {
    for (const w of watches) {
      w.kernel.stop();
      w.map.close();
    }
    await lab?.down().catch(() => undefined);
    await destroyClusterLab(id);
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

export async function measureConvergence(
  opts: Omit<ConvergenceBenchOptions, 'json'>,
  progress: (s: string) => void,
): Promise<ConvergenceBenchResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const started = performance.now();
  const loadStart = loadavg()[0]!;
  const cells: ConvergenceCell[] = [];
  for (const n of opts.nodes) {
    if (!Number.isInteger(n) || n < 3 || n > 50)
      throw new Error(`--nodes: ${n}: a size is 3 to 50 nodes (2 reflectors + a joining client)`);
    for (const topology of opts.topologies) {
      const cell: ConvergenceCell = { nodes: n, topology, runs: [] };
      cells.push(cell);
      for (let r = 0; r < opts.runs && cell.error === undefined; r++) {
        progress(`${n} nodes, ${topology}, run ${r + 1}/${opts.runs}`);
        // A lab that fails (e.g. an agent that does not start) is retried once; a topology
        // that does not converge is not: both are reported in the table, not thrown, and
        // the remaining runs of that cell are skipped.
        for (let attempt = 1; ; attempt++) {
          try {
            cell.runs.push(await runOnce(n, topology, timeoutMs, progress));
            break;
          } catch (e) {
            const text = (e as Error).message.trim().split('\n');
            const message =
              text.length > 1 ? `${text[0]} … ${text[text.length - 1]}` : (text[0] ?? '');
            if (e instanceof NotConverged) {
              cell.error = message;
            } else {
              (cell.failures ??= []).push(message);
              if (attempt < 2) {
                progress(`  failed, retrying once: ${message}`);
                continue;
              }
              cell.error = `failed: ${message}`;
              cell.failed = true;
            }
            progress(`  ${cell.error}`);
            break;
          }
        }
      }
      if (cell.runs.length > 0) {
        const rs = cell.runs;
        const p50 = (xs: number[]) => percentile(xs, 50);
        Object.assign(cell, {
          sessionsNew: Math.min(...rs.map((x) => x.sessionsNew)),
          sessionsMax: Math.max(...rs.map((x) => x.sessionsMax)),
          fromAddP50Ms: p50(rs.map((x) => x.fromAddMs)),
          fromAddMaxMs: Math.max(...rs.map((x) => x.fromAddMs)),
          kernelFromAddP50Ms: p50(rs.map((x) => x.kernelFromAddMs)),
          fromAgentP50Ms: p50(rs.map((x) => x.fromAgentMs)),
          fromAgentMaxMs: Math.max(...rs.map((x) => x.fromAgentMs)),
          buildP50Ms: p50(rs.map((x) => x.buildMs)),
        });
      }
    }
  }
  return {
    kernel: release(),
    cores: cpus().length,
    loadAvg: { start: loadStart, end: loadavg()[0]! },
    runs: opts.runs,
    timeoutMs,
    totalMs: Math.round(performance.now() - started),
    cells,
  };
}

export async function runConvergenceBench(
  opts: ConvergenceBenchOptions,
): Promise<ConvergenceBenchResult> {
  const progress = opts.json ? () => undefined : (s: string) => process.stderr.write(`${s}\n`);
  const result = await measureConvergence(opts, progress);
  if (opts.json) console.log(JSON.stringify(result));
  else printTable(result);
  // A lab that failed (not a topology that did not converge) fails the command.
  if (result.cells.some((c) => c.failed)) process.exitCode = 1;
  return result;
}

function printTable(r: ConvergenceBenchResult): void {
  const topologies = [...new Set(r.cells.map((c) => c.topology))];
  const sizes = [...new Set(r.cells.map((c) => c.nodes))];
  const label = (t: Topology) => (t === 'mesh' ? 'node mesh' : 'route reflectors (2)');
  console.log(
    `\nBGP convergence when node N joins (ms; p50 / max of ${r.runs} run(s), each on a fresh lab)`,
  );
  console.log(
    `kernel ${r.kernel}, ${r.cores} cores, load average ${r.loadAvg.start.toFixed(2)} → ${r.loadAvg.end.toFixed(2)}, ` +
      `run took ${(r.totalMs / 1000).toFixed(0)} s`,
  );
  const cols = ['sessions new/max', 'from ADD', 'kernel only', 'from agent start', 'lab build'];
  for (const t of topologies) {
    console.log(`\n${label(t)}`);
    console.log(`${'N'.padStart(4)}  ${cols.map((c) => c.padStart(18)).join('')}`);
    for (const n of sizes) {
      const c = r.cells.find((x) => x.nodes === n && x.topology === t);
      if (!c) continue;
      if (c.runs.length === 0) {
        console.log(`${String(n).padStart(4)}  ${c.error ?? 'no run'}`);
        continue;
      }
      const pm = (p?: number, m?: number) => `${fmt(p)} / ${fmt(m)}`.padStart(18);
      console.log(
        `${String(n).padStart(4)}  ${`${c.sessionsNew}/${c.sessionsMax}`.padStart(18)}` +
          `${pm(c.fromAddP50Ms, c.fromAddMaxMs)}${fmt(c.kernelFromAddP50Ms).padStart(18)}` +
          `${pm(c.fromAgentP50Ms, c.fromAgentMaxMs)}` +
          `${fmt(c.buildP50Ms).padStart(18)}`,
      );
      if (c.error !== undefined)
        console.log(`${''.padStart(6)}(${c.runs.length} of ${r.runs} runs) then ${c.error}`);
      else if (c.failures !== undefined)
        console.log(`${''.padStart(6)}(a lab failed and was retried: ${c.failures.join('; ')})`);
    }
  }
  console.log(
    "\nfrom ADD: the new pod's CNI ADD returned → every other node has its block (kernel proto bird and BPF route map)." +
      '\nkernel only: p50 of the kernel routes alone (BIRD; < 0: in every kernel before ADD returned); the rest is the agents filling their BPF route maps.' +
      "\nfrom agent start: the new node's agent spawned → the same (its start, sessions, the ADD included)." +
      '\nsessions: Established BGP sessions of the new node / the most of any node. lab build: p50, N − 1 nodes up and converged.',
  );
}

function fmt(ms?: number): string {
  return ms === undefined ? '-' : ms.toFixed(0);
}

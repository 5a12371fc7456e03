/**
 * `tortie bench agent`: memory (VmRSS) and CPU time of one agent process with 1,000
 * endpoints and 10,000 rules, at idle after the sync and over a burst of policy changes.
 *
 * The lab: ClusterLab with one node and its agent as a process (`agents: 'process'`,
 * `tortie node run`), etcd. The endpoints are WorkloadEndpoints written to the store:
 *  - `veths` of them on the lab's node, each with a real veth pair made in the node's
 *    namespace (the agent resolves these, attaches to them and compiles their policy);
 *  - the rest on other nodes (store only: no interface, no process) — they count for
 *    every selector, so their addresses land in the policy sets.
 * No pod namespaces and no pod processes: the agent's work is the same, the machine's
 * memory is not spent on 1,000 Node.js probers.
 * The rules: `policies` Calico NetworkPolicies, `rules` ingress rules over them; every
 * policy selects one of 50 app labels; half its rules allow a distinct /32 on a port,
 * half a label selector (another app) on a port.
 * Dataplane: bpf, and iptables (the lab's agent with `--dataplane iptables`; checked
 * after the sync: the node namespace must hold tortie's chains, else the row says so).
 */
import { spawn } from 'node:child_process';
import { ClusterLab, destroyClusterLab } from '../src/lab/cluster/cluster-lab.js';
import { barChart } from './chart.js';
import {
  benchId,
  fmt,
  machine,
  onInterrupt,
  procUsage,
  progressFor,
  sleep,
  writeJson,
  writeText,
  type Machine,
} from './common.js';

export interface AgentBenchOptions {
  endpoints: number;
  veths: number;
  rules: number;
  policies: number;
  burst: number;
  dataplanes: ('bpf' | 'iptables')[];
  /** Seconds left to the agent after the sync before idle is measured (default 3). */
  settleSeconds?: number;
  /** Seconds idle CPU is measured over (default 5). */
  idleSeconds?: number;
  json: boolean;
  out?: string;
  id?: string;
}

export interface AgentRow {
  dataplane: 'bpf' | 'iptables';
  /** undefined when measured; else why not. */
  unavailable?: string;
  rssStartKb?: number;
  /** Store writes until the agent had programmed all of it. */
  syncSeconds?: number;
  syncCpuSeconds?: number;
  rssIdleKb?: number;
  idleCpuPercent?: number;
  burstSeconds?: number;
  burstCpuSeconds?: number;
  burstCpuPercent?: number;
  rssBurstPeakKb?: number;
  rssAfterBurstKb?: number;
  /** What the dataplane held after the sync (iptables: rules in the filter table). */
  dataplaneCheck?: string;
}

export interface AgentResult {
  benchmark: 'agent';
  machine: Machine;
  options: Omit<AgentBenchOptions, 'json' | 'out' | 'id'>;
  setup: string;
  rows: AgentRow[];
  elapsedSeconds: number;
  files: string[];
}

const NS = 'bench';
const APPS = 50;
export const DEFAULT_SETTLE_SECONDS = 3;
export const DEFAULT_IDLE_SECONDS = 5;

function ip(base: number, i: number): string {
  const n = base + i;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function endpoints(o: AgentBenchOptions, node: string): object[] {
  const out: object[] = [];
  for (let i = 0; i < o.endpoints; i++) {
    const local = i < o.veths;
    out.push({
      apiVersion: 'tortie.io/v1',
      kind: 'WorkloadEndpoint',
      metadata: { name: `ep-${i}`, namespace: NS, labels: { app: `a${i % APPS}` } },
      spec: {
        node: local ? node : `other-${i % 20}`,
        orchestrator: 'k8s',
        workload: `w${i}`,
        endpoint: 'eth0',
        interfaceName: local ? `bnv${i}` : `cali${i}`,
        ipNetworks: [`${ip((10 << 24) + (232 << 16), i + 2)}/32`],
        profiles: [`kns.${NS}`],
      },
    });
  }
  return out;
}

function policy(k: number, o: AgentBenchOptions, version = 0): object {
  const per = Math.ceil(o.rules / o.policies);
  const ingress: object[] = [];
  for (let j = 0; j < per && k * per + j < o.rules; j++) {
    const r = k * per + j;
    const port = 1000 + ((r + version) % 60000);
    ingress.push(
      j % 2 === 0
        ? {
            action: 'Allow',
            protocol: 'TCP',
            source: { nets: [`${ip((10 << 24) + (250 << 16), r)}/32`] },
            destination: { ports: [port] },
          }
        : {
            action: 'Allow',
            protocol: 'TCP',
            source: { selector: `app == "a${(k + j) % APPS}"` },
            destination: { ports: [port] },
          },
    );
  }
  return {
    apiVersion: 'tortie.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: `p${k}`, namespace: NS },
    spec: { order: 100 + k, selector: `app == "a${k % APPS}"`, types: ['Ingress'], ingress },
  };
}

function nsExec(netns: string, argv: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('nsenter', [`--net=${netns}`, '--', ...argv]);
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${argv.join(' ')}: ${err.trim()}`)),
    );
    // A command that reads no input may be gone before its stdin is closed (EPIPE, which
    // unhandled would kill the benchmark and leave its lab): its exit code tells.
    c.stdin.on('error', () => undefined);
    c.stdin.end(input ?? '');
  });
}

async function applyAll(lab: ClusterLab, resources: object[]): Promise<bigint> {
  let rev = 0n;
  for (let i = 0; i < resources.length; i += 100) {
    const written = await lab.store!.apply(resources.slice(i, i + 100) as never);
    for (const w of written) {
      const v = BigInt(w.resource.metadata.resourceVersion ?? '0');
      if (v > rev) rev = v;
    }
  }
  return rev;
}

async function measureOne(
  o: AgentBenchOptions,
  dataplane: 'bpf' | 'iptables',
  progress: (s: string) => void,
): Promise<AgentRow> {
  const id = o.id ?? benchId();
  let lab: ClusterLab | undefined;
  const forget = onInterrupt(() => destroyClusterLab(id));
  try {
    progress(`${dataplane}: lab ${id} up (1 node, agent process)`);
    lab = await ClusterLab.up({ id, nodes: 1, encap: 'none', agents: 'process', dataplane });
    const node = lab.nodes[0]!;
    const pid = node.process!.pid!;
    const rssStartKb = procUsage(pid).rssKb;
    // Real veths for the local endpoints, both ends in the node namespace.
    const lines: string[] = [];
    for (let i = 0; i < o.veths; i++)
      lines.push(`link add bnv${i} type veth peer name bnp${i}`, `link set bnv${i} up`);
    await nsExec(node.netns, ['ip', '-batch', '-'], lines.join('\n') + '\n');
    progress(`${dataplane}: writing ${o.endpoints} endpoints and ${o.rules} rules`);
    const cpu0 = procUsage(pid).cpuSeconds;
    const t0 = performance.now();
    await lab.createNamespace(NS);
    let rev = await applyAll(lab, endpoints(o, node.name));
    const pols = Array.from({ length: o.policies }, (_, k) => policy(k, o));
    const r2 = await applyAll(lab, pols);
    if (r2 > rev) rev = r2;
    await lab.waitForRevision(rev, 300_000);
    const syncSeconds = (performance.now() - t0) / 1000;
    const syncCpuSeconds = procUsage(pid).cpuSeconds - cpu0;
    let dataplaneCheck: string;
    if (dataplane === 'iptables') {
      const saved = await nsExec(node.netns, ['iptables-nft-save', '-t', 'filter']).catch(() => '');
      const n = saved.split('\n').filter((l) => l.startsWith('-A ')).length;
      dataplaneCheck = `${n} rules in the node's filter table`;
      if (n === 0)
        return {
          dataplane,
          unavailable:
            "the agent wrote no iptables rule with --dataplane iptables (none in the node's filter table)",
        };
    } else dataplaneCheck = 'programmed (agent reported the revision)';
    progress(`${dataplane}: synced in ${syncSeconds.toFixed(1)} s; idle`);
    await sleep((o.settleSeconds ?? DEFAULT_SETTLE_SECONDS) * 1000);
    const i0 = procUsage(pid);
    const ti = performance.now();
    await sleep((o.idleSeconds ?? DEFAULT_IDLE_SECONDS) * 1000);
    const i1 = procUsage(pid);
    const idleCpuPercent =
      ((i1.cpuSeconds - i0.cpuSeconds) / ((performance.now() - ti) / 1000)) * 100;
    progress(`${dataplane}: burst of ${o.burst} policy changes`);
    let peak = i1.rssKb;
    const sampler = setInterval(() => {
      try {
        peak = Math.max(peak, procUsage(pid).rssKb);
      } catch {
        /* gone */
      }
    }, 50);
    const b0 = procUsage(pid).cpuSeconds;
    const tb = performance.now();
    let last = 0n;
    for (let c = 0; c < o.burst; c++) {
      const [w] = await lab.store!.apply([policy(c % o.policies, o, c + 1)] as never);
      last = BigInt(w!.resource.metadata.resourceVersion ?? '0');
    }
    await lab.waitForRevision(last, 300_000);
    const burstSeconds = (performance.now() - tb) / 1000;
    clearInterval(sampler);
    const b1 = procUsage(pid);
    return {
      dataplane,
      rssStartKb,
      syncSeconds,
      syncCpuSeconds,
      rssIdleKb: i1.rssKb,
      idleCpuPercent,
      burstSeconds,
      burstCpuSeconds: b1.cpuSeconds - b0,
      burstCpuPercent: ((b1.cpuSeconds - b0) / burstSeconds) * 100,
      rssBurstPeakKb: Math.max(peak, b1.rssKb),
      rssAfterBurstKb: b1.rssKb,
      dataplaneCheck,
    };
  } finally {
    await lab?.down().catch(() => undefined);
    forget();
  }
}

export async function measureAgent(
  o: AgentBenchOptions,
  progress: (s: string) => void,
): Promise<AgentResult> {
  const started = performance.now();
  const settleSeconds = o.settleSeconds ?? DEFAULT_SETTLE_SECONDS;
  const idleSeconds = o.idleSeconds ?? DEFAULT_IDLE_SECONDS;
  const rows: AgentRow[] = [];
  for (const d of o.dataplanes) rows.push(await measureOne(o, d, progress));
  const r: AgentResult = {
    benchmark: 'agent',
    machine: machine(),
    options: {
      endpoints: o.endpoints,
      veths: o.veths,
      rules: o.rules,
      policies: o.policies,
      burst: o.burst,
      dataplanes: o.dataplanes,
      settleSeconds,
      idleSeconds,
    },
    setup:
      `${o.endpoints} WorkloadEndpoints in the store: ${o.veths} on the agent's node with a real veth each (pair made in the node namespace, no pod namespace), ` +
      `${o.endpoints - o.veths} on 20 other nodes (store only); ${o.rules} ingress rules in ${o.policies} NetworkPolicies (half /32 sources, half label selectors); ` +
      `one agent process (tortie node run), CPU from /proc/<pid>/stat utime+stime, memory VmRSS from /proc/<pid>/status; ` +
      `idle: over ${idleSeconds} s, from ${settleSeconds} s after the sync`,
    rows,
    elapsedSeconds: (performance.now() - started) / 1000,
    files: [],
  };
  if (o.out) r.files = writeAgentFiles(o.out, r);
  return r;
}

export function agentTable(r: AgentResult): string {
  const mb = (kb: number | undefined) => (kb === undefined ? '-' : fmt(kb / 1024, 1));
  const out = [
    `\nagent process, ${r.options.endpoints} endpoints (${r.options.veths} local veths), ${r.options.rules} rules in ${r.options.policies} policies, burst of ${r.options.burst} changes`,
    `${'dataplane'.padEnd(10)}${'RSS start'.padStart(10)}${'RSS idle'.padStart(10)}${'peak'.padStart(8)}${'sync s'.padStart(8)}${'sync cpu'.padStart(10)}${'idle cpu%'.padStart(10)}${'burst s'.padStart(9)}${'burst cpu s'.padStart(12)}${'cpu%'.padStart(7)}`,
  ];
  for (const x of r.rows) {
    if (x.unavailable) {
      out.push(`${x.dataplane.padEnd(10)}not measured: ${x.unavailable}`);
      continue;
    }
    out.push(
      `${x.dataplane.padEnd(10)}${mb(x.rssStartKb).padStart(10)}${mb(x.rssIdleKb).padStart(10)}${mb(x.rssBurstPeakKb).padStart(8)}` +
        `${fmt(x.syncSeconds!, 1).padStart(8)}${fmt(x.syncCpuSeconds!, 1).padStart(10)}${fmt(x.idleCpuPercent!, 1).padStart(10)}` +
        `${fmt(x.burstSeconds!, 1).padStart(9)}${fmt(x.burstCpuSeconds!, 1).padStart(12)}${fmt(x.burstCpuPercent!, 0).padStart(7)}`,
    );
  }
  out.push('(RSS in MiB)');
  return out.join('\n');
}

export function writeAgentFiles(dir: string, r: AgentResult): string[] {
  const rows = r.rows.filter((x) => !x.unavailable);
  return [
    writeJson(dir, 'agent', r),
    writeText(
      dir,
      'agent.svg',
      barChart({
        title: `agent RSS (MiB), ${r.options.endpoints} endpoints, ${r.options.rules} rules`,
        yLabel: 'MiB',
        categories: ['start', 'idle after sync', 'burst peak'],
        series: rows.map((x) => ({
          name: x.dataplane,
          values: [x.rssStartKb, x.rssIdleKb, x.rssBurstPeakKb].map((v) =>
            v === undefined ? undefined : v / 1024,
          ),
        })),
      }),
    ),
  ];
}

export async function runAgentBench(o: AgentBenchOptions): Promise<AgentResult> {
  const r = await measureAgent(o, progressFor(o.json));
  if (o.json) console.log(JSON.stringify(r));
  else {
    console.log(agentTable(r));
    console.log(r.setup);
    if (r.files.length) console.log(`\nwrote ${r.files.join(', ')}`);
    console.log(`(${r.elapsedSeconds.toFixed(0)} s)`);
  }
  return r;
}

/**
 * `bench cni`: CNI ADD and DEL latency, tortie against Debian's reference plugins
 * (`bridge` + `host-local` from /usr/lib/cni), side by side in one run.
 *
 * tortie is measured as a runtime sees it: its compiled plugin hands each call to a
 * running agent (a one-node ClusterLab, the agent a `tortie node run` process), which
 * takes the address, plumbs the veth, records the endpoint and answers only once it has
 * programmed the endpoint (policy, attachment, route). The reference plugins run inside
 * the node namespace through `nsenter --net` (so their bridge is created there, not on
 * the machine) — the nsenter exec is counted in their figures and measured apart
 * (`nsenterP50Ms`).
 *
 * Two rounds: sequential (tortie pod i, reference pod i, ...: both see the same load),
 * then `concurrent` calls at once (20 by default, as a node starting many pods), each
 * call timed from spawn to exit. Everything is in the lab's namespaces (named after the
 * lab id) and removed at the end, also on failure.
 *
 *   node dist/bench/cni.js [--pods 100] [--concurrent 20] [--json]
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { builtPluginPath } from '../src/cni/install.js';
import { invokePlugin, type PluginOutcome } from '../src/cni/invoke.js';
import {
  ClusterLab,
  NETWORK,
  clusterNames,
  destroyClusterLab,
  labCniSocket,
  podNetnsName,
} from '../src/lab/cluster/cluster-lab.js';
import { createNetns, deleteNetns } from '../src/plumbing/index.js';
import { runCommand } from '../src/plumbing/command.js';
import { benchId, onInterrupt } from './common.js';

export interface CniBenchOptions {
  pods: number;
  /** Calls at once in the concurrent round (default 20). */
  concurrent?: number;
  json: boolean;
  /** Directory of the reference plugins (default /usr/lib/cni). */
  referenceDir?: string;
  /** The lab's id (default a fresh bench id). */
  id?: string;
  /** Print nothing (`bench all` prints the table with the rest). */
  quiet?: boolean;
}

export interface LatencyRow {
  plugin: string;
  /** 1: sequential; more: that many calls at once. */
  concurrency: number;
  addP50Ms: number;
  addP99Ms: number;
  delP50Ms: number;
  delP99Ms: number;
  addMeanMs: number;
  delMeanMs: number;
}

export interface CniBenchResult {
  pods: number;
  concurrent: number;
  rows: LatencyRow[];
  /** tortie VERSION: the compiled plugin's process start, answered without the agent. */
  tortieVersionP50Ms: number;
  /** `nsenter --net=NODE true`: the part of the reference's figures that is nsenter. */
  nsenterP50Ms: number;
}

const REFERENCE_DIR = '/usr/lib/cni';
const DEFAULT_CONCURRENT = 20;

type Plugin = (command: 'ADD' | 'DEL', i: number) => Promise<PluginOutcome>;

export async function runCniBench(options: CniBenchOptions): Promise<CniBenchResult> {
  const referenceDir = options.referenceDir ?? REFERENCE_DIR;
  const concurrent = options.concurrent ?? DEFAULT_CONCURRENT;
  for (const plugin of ['bridge', 'host-local']) {
    if (!existsSync(join(referenceDir, plugin))) {
      throw new Error(
        `${join(referenceDir, plugin)} is missing: apt-get install containernetworking-plugins`,
      );
    }
  }
  if (!existsSync(builtPluginPath())) {
    throw new Error(`${builtPluginPath()} is missing: build first (npm run build)`);
  }
  const id = options.id ?? benchId();
  const forget = onInterrupt(() => destroyClusterLab(id));
  const work = await mkdtemp(join(tmpdir(), `${clusterNames(id).tempDir}cni-bench-`));
  const netnsNames: string[] = [];
  try {
    const lab = await ClusterLab.up({ id, nodes: 1, encap: 'none', agents: 'process' });
    const node = lab.nodes[0]!;
    const plugin = lab.cniPlugin;
    const tortieConfig = {
      cniVersion: '1.0.0',
      name: NETWORK,
      type: 'tortie',
      datastore: { endpoints: lab.etcd!.endpoints, prefix: clusterNames(id).etcdPrefix },
      nodename: node.name,
      host_netns: node.netns,
      agent_socket: labCniSocket(id, node.name),
      ipam: { type: 'tortie-ipam' },
    };
    const bridge = `t${id}br`.slice(0, 15);
    const referenceConfig = {
      cniVersion: '1.0.0',
      name: 'bench-ref',
      type: 'bridge',
      bridge,
      isGateway: true,
      ipMasq: false,
      ipam: { type: 'host-local', subnet: '10.89.0.0/16', dataDir: join(work, 'host-local') },
    };
    const total = options.pods + concurrent + 1;
    const pods = { t: [] as string[], r: [] as string[] };
    for (let i = 0; i < total; i++) {
      for (const side of ['t', 'r'] as const) {
        const name = podNetnsName(id, 'bench', `${side}${i}`);
        netnsNames.push(name);
        pods[side].push(await createNetns(name));
      }
    }
    const tortie: Plugin = (command, i) =>
      invokePlugin({
        plugin,
        command,
        containerId: `bench-t-${i}`,
        netns: pods.t[i] as string,
        ifName: 'eth0',
        args: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=t${i}`,
        config: tortieConfig,
      });
    const reference: Plugin = (command, i) =>
      invokePlugin({
        plugin: join(referenceDir, 'bridge'),
        command,
        containerId: `bench-r-${i}`,
        netns: pods.r[i] as string,
        ifName: 'eth0',
        path: [referenceDir],
        config: referenceConfig,
        inNetns: node.netns,
      });

    const timed = async (call: () => Promise<PluginOutcome>, what: string): Promise<number> => {
      const outcome = await call();
      if (outcome.exitCode !== 0) {
        throw new Error(
          `${what} failed (exit ${String(outcome.exitCode)}): ${outcome.stdout.trim() || outcome.stderr.trim()}`,
        );
      }
      return outcome.ms;
    };
    // One warm-up call each (page cache, the first block claim), not counted: the last pod.
    const warm = total - 1;
    await timed(() => tortie('ADD', warm), 'tortie ADD warm-up');
    await timed(() => tortie('DEL', warm), 'tortie DEL warm-up');
    await timed(() => reference('ADD', warm), 'bridge ADD warm-up');
    await timed(() => reference('DEL', warm), 'bridge DEL warm-up');

    const sequential = {
      tAdd: [] as number[],
      tDel: [] as number[],
      rAdd: [] as number[],
      rDel: [] as number[],
    };
    for (let i = 0; i < options.pods; i++) {
      sequential.tAdd.push(await timed(() => tortie('ADD', i), `tortie ADD pod ${i}`));
      sequential.rAdd.push(await timed(() => reference('ADD', i), `bridge ADD pod ${i}`));
    }
    for (let i = 0; i < options.pods; i++) {
      sequential.tDel.push(await timed(() => tortie('DEL', i), `tortie DEL pod ${i}`));
      sequential.rDel.push(await timed(() => reference('DEL', i), `bridge DEL pod ${i}`));
    }
    // `concurrent` calls of one plugin at once, then the other's (each its own burst).
    const burst = (p: Plugin, command: 'ADD' | 'DEL', what: string) =>
      Promise.all(
        Array.from({ length: concurrent }, (_, k) =>
          timed(() => p(command, options.pods + k), `${what} ${command} pod ${options.pods + k}`),
        ),
      );
    const parallel = {
      tAdd: await burst(tortie, 'ADD', 'tortie'),
      rAdd: await burst(reference, 'ADD', 'bridge'),
      tDel: await burst(tortie, 'DEL', 'tortie'),
      rDel: await burst(reference, 'DEL', 'bridge'),
    };

    const version: number[] = [];
    const nsenter: number[] = [];
    for (let i = 0; i < 20; i++) {
      version.push(
        (await invokePlugin({ plugin, command: 'VERSION', config: { cniVersion: '1.0.0' } })).ms,
      );
      const started = performance.now();
      await runCommand('nsenter', [`--net=${node.netns}`, '--', 'true']);
      nsenter.push(performance.now() - started);
    }

    const result: CniBenchResult = {
      pods: options.pods,
      concurrent,
      rows: [
        row('tortie', 1, sequential.tAdd, sequential.tDel),
        row('bridge + host-local', 1, sequential.rAdd, sequential.rDel),
        row('tortie', concurrent, parallel.tAdd, parallel.tDel),
        row('bridge + host-local', concurrent, parallel.rAdd, parallel.rDel),
      ],
      tortieVersionP50Ms: round(percentile(version, 50)),
      nsenterP50Ms: round(percentile(nsenter, 50)),
    };
    if (!options.quiet) print(result, options.json);
    return result;
  } finally {
    await Promise.allSettled(netnsNames.map((name) => deleteNetns(name)));
    await destroyClusterLab(id);
    await rm(work, { recursive: true, force: true });
    forget();
  }
}

function row(plugin: string, concurrency: number, add: number[], del: number[]): LatencyRow {
  return {
    plugin,
    concurrency,
    addP50Ms: round(percentile(add, 50)),
    addP99Ms: round(percentile(add, 99)),
    delP50Ms: round(percentile(del, 50)),
    delP99Ms: round(percentile(del, 99)),
    addMeanMs: round(add.reduce((a, b) => a + b, 0) / add.length),
    delMeanMs: round(del.reduce((a, b) => a + b, 0) / del.length),
  };
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

function print(result: CniBenchResult, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(result));
    return;
  }
  console.log(cniTable(result));
  console.log(`\n== goals of issue 15\n${cniGoals(result).join('\n')}`);
}

/** The latency table: sequential and concurrent rows, tortie beside the reference. */
export function cniTable(result: CniBenchResult): string {
  const columns = ['ADD p50', 'ADD p99', 'DEL p50', 'DEL p99'];
  const lines = [
    `CNI latency (ms, spawn to exit): ${result.pods} pods one at a time, then ${result.concurrent} at once`,
    `${'plugin'.padEnd(22)}${'calls'.padStart(12)}${columns.map((h) => h.padStart(10)).join('')}`,
  ];
  for (const r of result.rows) {
    const cells = [r.addP50Ms, r.addP99Ms, r.delP50Ms, r.delP99Ms].map((v) =>
      v.toFixed(1).padStart(10),
    );
    const calls = r.concurrency === 1 ? 'sequential' : `${r.concurrency} at once`;
    lines.push(`${r.plugin.padEnd(22)}${calls.padStart(12)}${cells.join('')}`);
  }
  lines.push(
    `tortie VERSION (the plugin's process start) p50 ${result.tortieVersionP50Ms} ms; nsenter in the reference figures p50 ${result.nsenterP50Ms} ms`,
  );
  return lines.join('\n');
}

/**
 * Issue 15's CNI goal: tortie's ADD and DEL p50 at or below bridge + host-local's,
 * measured in the same run; one line per call kind and round.
 */
export function cniGoals(result: CniBenchResult): string[] {
  const out: string[] = [];
  for (const concurrency of [...new Set(result.rows.map((r) => r.concurrency))]) {
    const t = result.rows.find((r) => r.plugin === 'tortie' && r.concurrency === concurrency);
    const ref = result.rows.find((r) => r.plugin !== 'tortie' && r.concurrency === concurrency);
    if (!t || !ref) continue;
    const calls = concurrency === 1 ? 'one at a time' : `${concurrency} at once`;
    for (const [what, mine, theirs] of [
      ['ADD', t.addP50Ms, ref.addP50Ms],
      ['DEL', t.delP50Ms, ref.delP50Ms],
    ] as const) {
      out.push(
        `CNI ${what} p50 ≤ bridge + host-local, ${calls}: ${mine.toFixed(1)} ms against ${theirs.toFixed(1)} ms (${(mine / theirs).toFixed(2)}×) — ${mine <= theirs ? 'met' : 'missed'}`,
      );
    }
  }
  return out;
}

// `node dist/bench/cni.js [--pods N] [--concurrent N] [--json]`
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const number = (flag: string, fallback: number): number => {
    const at = args.indexOf(flag);
    const n = at >= 0 ? Number(args[at + 1]) : fallback;
    if (!Number.isInteger(n) || n < 1) {
      console.error(`${flag} needs a positive integer`);
      process.exit(2);
    }
    return n;
  };
  const idAt = args.indexOf('--id');
  runCniBench({
    pods: number('--pods', 100),
    concurrent: number('--concurrent', DEFAULT_CONCURRENT),
    json: args.includes('--json'),
    ...(idAt >= 0 ? { id: String(args[idAt + 1]) } : {}),
  }).catch((err: unknown) => {
    console.error(`bench cni: ${(err as Error).message}`);
    process.exit(1);
  });
}

/**
 * `bench cni`: CNI ADD and DEL latency, tortie against Debian's reference plugins
 * (`bridge` + `host-local` from /usr/lib/cni), side by side in one run.
 *
 * Everything happens in network namespaces this run creates (a node, and one pod
 * namespace per pod and plugin) with a private etcd it starts; all of it is removed at the
 * end, also on failure. Both plugins are run as a runtime runs them — one process per
 * call, config on stdin — and timed from spawn to exit. Calls are sequential and
 * interleaved (tortie pod i, reference pod i, ...) so that both see the same machine load.
 *
 * Where each plugin runs: tortie in the benchmark's own namespace (it reaches etcd on
 * loopback, and puts the host end in the node namespace through `host_netns`); the
 * reference plugins inside the node namespace through `nsenter --net` (so that their
 * bridge is created there, not on the machine) — the nsenter exec (~4 ms) is counted in
 * the reference's figures and measured apart (`nsenterP50Ms`).
 *
 * With `grpc`, a third row times tortie on the `etcd3` gRPC client it would load without
 * its JSON-gateway substitute (src/datastore/etcd/gateway.ts), to show what that substitute buys.
 *
 *   node dist/bench/cni.js [--pods 100] [--json] [--grpc]
 */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { installCni, builtPluginPath } from '../src/cni/install.js';
import { invokePlugin, type PluginOutcome } from '../src/cni/invoke.js';
import { startEtcd, type EtcdCluster } from '../src/lab/etcd.js';
import { createNetns, deleteNetns } from '../src/plumbing/index.js';
import { runCommand } from '../src/plumbing/command.js';
import { benchHex } from './common.js';

export interface CniBenchOptions {
  pods: number;
  json: boolean;
  /** Directory of the reference plugins (default /usr/lib/cni). */
  referenceDir?: string;
  /** Also time tortie on the `etcd3` gRPC client (TORTIE_CNI_ETCD_CLIENT=grpc) instead of its JSON-gateway client. */
  grpc?: boolean;
}

export interface LatencyRow {
  plugin: string;
  addP50Ms: number;
  addP99Ms: number;
  delP50Ms: number;
  delP99Ms: number;
  addMeanMs: number;
  delMeanMs: number;
}

export interface CniBenchResult {
  pods: number;
  rows: LatencyRow[];
  /** tortie VERSION: process start plus the plugin's own startup, without etcd. */
  tortieVersionP50Ms: number;
  /** `nsenter --net=NODE true`: the part of the reference's figures that is nsenter. */
  nsenterP50Ms: number;
}

const REFERENCE_DIR = '/usr/lib/cni';

export async function runCniBench(options: CniBenchOptions): Promise<CniBenchResult> {
  const referenceDir = options.referenceDir ?? REFERENCE_DIR;
  for (const plugin of ['bridge', 'host-local']) {
    if (!existsSync(join(referenceDir, plugin))) {
      throw new Error(
        `${join(referenceDir, plugin)} is missing: apt-get install containernetworking-plugins`,
      );
    }
  }
  if (!existsSync(builtPluginPath())) {
    throw new Error(
      `${builtPluginPath()} is missing: build first (npx tsc -p tsconfig.build.json)`,
    );
  }
  const id = benchHex();
  const names: string[] = [];
  const newNetns = async (role: string): Promise<string> => {
    const name = `tortie-b${id}-${role}`;
    names.push(name);
    return createNetns(name);
  };
  const work = await mkdtemp(join(tmpdir(), `tortie-cni-bench-${id}-`));
  let etcd: EtcdCluster | undefined;
  try {
    etcd = await startEtcd(`b${id}`);
    const prefix = `/tortie-b${id}`;
    await createPool(etcd.endpoints, prefix);
    const { shim } = await installCni({ binDir: join(work, 'bin') });

    const node = await newNetns('node');
    await runCommand('ip', ['-n', `tortie-b${id}-node`, '-batch', '-'], {
      stdin:
        [
          `link add tb${id}up type veth peer name tb${id}upp`,
          `link set dev tb${id}up up`,
          'route add default dev tb' + id + 'up',
          'link set dev lo up',
        ].join('\n') + '\n',
    });
    const tortieConfig = {
      cniVersion: '1.0.0',
      name: 'bench-tortie',
      type: 'tortie',
      datastore: { endpoints: etcd.endpoints, prefix },
      nodename: 'bench-node',
      host_netns: node,
      ipam: { type: 'tortie-ipam' },
    };
    const referenceConfig = {
      cniVersion: '1.0.0',
      name: 'bench-ref',
      type: 'bridge',
      bridge: `tb${id}br`,
      isGateway: true,
      ipMasq: false,
      ipam: { type: 'host-local', subnet: '10.89.0.0/16', dataDir: join(work, 'host-local') },
    };

    const tortiePods: string[] = [];
    const grpcPods: string[] = [];
    const referencePods: string[] = [];
    for (let i = 0; i < options.pods; i++) {
      tortiePods.push(await newNetns(`t${i}`));
      referencePods.push(await newNetns(`r${i}`));
      if (options.grpc) grpcPods.push(await newNetns(`g${i}`));
    }

    const tortieOn =
      (pods: string[], id: string, client: 'lite' | 'grpc') =>
      (command: 'ADD' | 'DEL', i: number): Promise<PluginOutcome> =>
        invokePlugin({
          plugin: shim,
          command,
          containerId: `bench-${id}-${i}`,
          netns: pods[i] as string,
          ifName: 'eth0',
          config: tortieConfig,
          env: { TORTIE_CNI_ETCD_CLIENT: client },
        });
    const tortie = tortieOn(tortiePods, 't', 'lite');
    const tortieGrpc = tortieOn(grpcPods, 'g', 'grpc');
    const reference = (command: 'ADD' | 'DEL', i: number): Promise<PluginOutcome> =>
      invokePlugin({
        plugin: join(referenceDir, 'bridge'),
        command,
        containerId: `bench-r-${i}`,
        netns: referencePods[i] as string,
        ifName: 'eth0',
        path: [referenceDir],
        config: referenceConfig,
        inNetns: node,
      });

    const times = {
      tortieAdd: [] as number[],
      tortieDel: [] as number[],
      grpcAdd: [] as number[],
      grpcDel: [] as number[],
      refAdd: [] as number[],
      refDel: [] as number[],
    };
    const timed = async (
      into: number[],
      call: () => Promise<PluginOutcome>,
      what: string,
    ): Promise<void> => {
      const outcome = await call();
      if (outcome.exitCode !== 0) {
        throw new Error(
          `${what} failed (exit ${String(outcome.exitCode)}): ${outcome.stdout.trim() || outcome.stderr.trim()}`,
        );
      }
      into.push(outcome.ms);
    };
    // One warm-up call each (page cache, first etcd block claim), not counted.
    await timed([], () => tortie('ADD', 0), 'tortie ADD warm-up');
    await timed([], () => tortie('DEL', 0), 'tortie DEL warm-up');
    await timed([], () => reference('ADD', 0), 'bridge ADD warm-up');
    await timed([], () => reference('DEL', 0), 'bridge DEL warm-up');
    for (let i = 0; i < options.pods; i++) {
      await timed(times.tortieAdd, () => tortie('ADD', i), `tortie ADD pod ${i}`);
      if (options.grpc)
        await timed(times.grpcAdd, () => tortieGrpc('ADD', i), `tortie (gRPC) ADD pod ${i}`);
      await timed(times.refAdd, () => reference('ADD', i), `bridge ADD pod ${i}`);
    }
    for (let i = 0; i < options.pods; i++) {
      await timed(times.tortieDel, () => tortie('DEL', i), `tortie DEL pod ${i}`);
      if (options.grpc)
        await timed(times.grpcDel, () => tortieGrpc('DEL', i), `tortie (gRPC) DEL pod ${i}`);
      await timed(times.refDel, () => reference('DEL', i), `bridge DEL pod ${i}`);
    }

    const version: number[] = [];
    const nsenter: number[] = [];
    for (let i = 0; i < 20; i++) {
      version.push(
        (await invokePlugin({ plugin: shim, command: 'VERSION', config: { cniVersion: '1.0.0' } }))
          .ms,
      );
      const started = performance.now();
      await runCommand('nsenter', [`--net=${node}`, '--', 'true']);
      nsenter.push(performance.now() - started);
    }

    const result: CniBenchResult = {
      pods: options.pods,
      rows: [
        row('tortie', times.tortieAdd, times.tortieDel),
        ...(options.grpc ? [row('tortie (etcd3 gRPC)', times.grpcAdd, times.grpcDel)] : []),
        row('bridge + host-local', times.refAdd, times.refDel),
      ],
      tortieVersionP50Ms: round(percentile(version, 50)),
      nsenterP50Ms: round(percentile(nsenter, 50)),
    };
    print(result, options.json);
    return result;
  } finally {
    await Promise.allSettled(names.map((name) => deleteNetns(name)));
    await etcd?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

async function createPool(endpoints: string[], prefix: string): Promise<void> {
  const { Datastore } = await import('../src/datastore/index.js');
  const store = await Datastore.connect({ endpoints, prefix });
  try {
    await store.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: { name: 'bench-pool' },
        spec: { cidr: '10.88.0.0/16', blockSize: 26 },
      },
    ]);
  } finally {
    await store.close();
  }
}

function row(plugin: string, add: number[], del: number[]): LatencyRow {
  return {
    plugin,
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
  console.log(`CNI latency over ${result.pods} pods (ms, spawn to exit, sequential)`);
  const columns = ['ADD p50', 'ADD p99', 'DEL p50', 'DEL p99'];
  console.log(`${'plugin'.padEnd(22)}${columns.map((h) => h.padStart(10)).join('')}`);
  for (const r of result.rows) {
    const cells = [r.addP50Ms, r.addP99Ms, r.delP50Ms, r.delP99Ms].map((v) =>
      v.toFixed(1).padStart(10),
    );
    console.log(`${r.plugin.padEnd(22)}${cells.join('')}`);
  }
  console.log(
    `tortie VERSION (startup without etcd) p50 ${result.tortieVersionP50Ms} ms; nsenter in the reference figures p50 ${result.nsenterP50Ms} ms`,
  );
}

// `node dist/bench/cni.js [--pods N] [--json] [--grpc]`
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const podsAt = args.indexOf('--pods');
  const pods = podsAt >= 0 ? Number(args[podsAt + 1]) : 100;
  if (!Number.isInteger(pods) || pods < 1) {
    console.error('--pods needs a positive integer');
    process.exit(2);
  }
  runCniBench({ pods, json: args.includes('--json'), grpc: args.includes('--grpc') }).catch(
    (err: unknown) => {
      console.error(`bench cni: ${(err as Error).message}`);
      process.exit(1);
    },
  );
}

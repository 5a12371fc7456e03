#!/usr/bin/env node
/**
 * `tortie`: the command line. Errors print their message (never a stack trace) and exit 1;
 * bad arguments exit 2.
 */
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { randomBytes } from 'node:crypto';
import { addGlobalOptions, UsageError, type GlobalOptions } from './context.js';
import { registerCniCommands } from './cni.js';
import { registerIpamCommands } from './ipam.js';
import { registerLabCommands } from './lab.js';
import { registerClusterCommands } from './lab-cluster.js';
import { registerNodeCommands } from './node.js';
import { ipamConnection } from './ipam-connect.js';
import { registerResourceCommands } from './resources.js';

const program = new Command();
program
  .name('tortie')
  .description('Calico-model container networking with an eBPF dataplane')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

addGlobalOptions(program);
registerResourceCommands(program);
registerCniCommands(program);
registerLabCommands(program);
registerClusterCommands(program.commands.find((c) => c.name() === 'lab')!);
registerNodeCommands(program);
registerIpamCommands(
  program,
  ipamConnection(() => program.opts<GlobalOptions>()),
);

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError(`"${value}" is not a positive integer`);
  return n;
}

function labId(value: string): string {
  if (!/^[a-z0-9]{1,12}$/.test(value))
    throw new InvalidArgumentError(`"${value}": use 1-12 lower-case letters or digits`);
  return value;
}

program
  .command('demo')
  .description(
    'one node, six pods in two namespaces, Kubernetes NetworkPolicies: the reachability matrix before and after',
  )
  .option('--id <id>', 'lab id (names of namespaces and the bpffs root)', labId)
  .option('--keep', 'leave the lab up to explore it (remove it with --down)', false)
  .option('--down', 'remove the lab with this --id', false)
  .option('--policies <file>', 'YAML of policies to apply instead of examples/demo-policies.yaml')
  .action(async (o: { id?: string; keep: boolean; down: boolean; policies?: string }) => {
    const { runDemo, downDemo } = await import('../lab/demo.js');
    if (o.down) {
      if (!o.id) throw new InvalidArgumentError('--down needs the --id of the lab to remove');
      await downDemo(o.id);
      console.log(`lab ${o.id} removed`);
      return;
    }
    process.exitCode = await runDemo({
      id: o.id ?? randomBytes(3).toString('hex'),
      keep: o.keep,
      policies: o.policies,
    });
  });

const bpf = program.command('bpf').description('inspect the pinned BPF maps');
bpf
  .command('counters')
  .description('packets and bytes by endpoint, reason and direction')
  .option('--pin-root <dir>', 'bpffs root of the maps', '/sys/fs/bpf/tortie')
  .option('--json', 'print JSON', false)
  .action(async (o: { pinRoot: string; json: boolean }) => {
    const { readCounters } = await import('./inspect.js');
    const rows = readCounters(o.pinRoot);
    if (o.json) {
      console.log(
        JSON.stringify(
          rows.map((r) => ({ ...r, packets: Number(r.packets), bytes: Number(r.bytes) })),
        ),
      );
      return;
    }
    console.log(
      `${'endpoint'.padEnd(9)}${'direction'.padEnd(10)}${'reason'.padEnd(24)}${'packets'.padStart(10)}${'bytes'.padStart(12)}`,
    );
    for (const r of rows) {
      console.log(
        `${String(r.epId).padEnd(9)}${r.dir.padEnd(10)}${r.reason.padEnd(24)}${String(r.packets).padStart(10)}${String(r.bytes).padStart(12)}`,
      );
    }
  });

program
  .command('monitor')
  .description(
    'stream drop events live: reason, direction, endpoint, source and destination named as ns/pod (from the store), the deciding rule (from the agent)',
  )
  .option('--pin-root <dir>', 'bpffs root of the maps (default /sys/fs/bpf/tortie)')
  .option(
    '--node <name>',
    "the node whose drops to stream: its pin root from its agent's heartbeat",
  )
  .option('--json', 'one JSON object per event', false)
  .option('--agent-url <url>', "the node agent's ops server (default: found in its heartbeat)")
  .option('--no-store', 'do not connect to etcd: print addresses and rule ids only')
  .action(
    async (
      o: { pinRoot?: string; node?: string; json: boolean; agentUrl?: string; store: boolean },
      cmd,
    ) => {
      const { monitor } = await import('./inspect.js');
      const { datastoreFrom } = await import('./context.js');
      const globals = (cmd as Command).optsWithGlobals<GlobalOptions>();
      let pinRoot = o.pinRoot ?? '/sys/fs/bpf/tortie';
      if (o.node !== undefined) {
        if (o.pinRoot !== undefined) throw new UsageError('give --node or --pin-root, not both');
        const { readNodeStatus } = await import('../agent/status.js');
        const ds = await datastoreFrom(globals, 3000);
        try {
          const hb = await readNodeStatus(ds, o.node);
          if (hb?.pinRoot === undefined)
            throw new UsageError(
              `node ${o.node}: no heartbeat with a pin root (is its agent running?); give --pin-root instead`,
            );
          pinRoot = hb.pinRoot;
        } finally {
          await ds.close();
        }
      }
      await monitor({
        pinRoot,
        json: o.json,
        ...(o.agentUrl === undefined ? {} : { agentUrl: o.agentUrl }),
        ...(o.store ? { store: () => datastoreFrom(globals, 3000) } : {}),
      });
    },
  );

const bench = program.command('bench').description('benchmarks (tables; --json for machines)');
bench
  .command('verdict')
  .description(
    'ns per packet (BPF_PROG_TEST_RUN) for a new and an established flow, 0 to 100,000 rules',
  )
  .option('--rules <list>', 'comma-separated rule counts', '0,100,1000,10000,100000')
  .option('--repeat <n>', 'test-run repeat count', positiveInt, 100_000)
  .option('--runs <n>', 'runs per cell (the median is reported)', positiveInt, 5)
  .option('--json', 'print {"rows": [...]} as JSON', false)
  .action(async (o: { rules: string; repeat: number; runs: number; json: boolean }) => {
    const rules = o.rules.split(',').map((r) => {
      const n = Number(r);
      if (!Number.isInteger(n) || n < 0)
        throw new InvalidArgumentError(`--rules: "${r}" is not a rule count`);
      return n;
    });
    const { runVerdictBench } = await import('../../bench/verdict.js');
    await runVerdictBench({ rules, repeat: o.repeat, runs: o.runs, json: o.json });
  });

bench
  .command('cni')
  .description(
    'CNI ADD/DEL latency p50/p99: tortie beside the reference bridge + host-local plugins',
  )
  .option('--pods <n>', 'pods to add and delete', positiveInt, 100)
  .option(
    '--grpc',
    "use the etcd3 gRPC client in tortie's plugin instead of the JSON gateway one",
    false,
  )
  .option('--json', 'print the results as JSON', false)
  .action(async (o: { pods: number; grpc: boolean; json: boolean }) => {
    const { runCniBench } = await import('../../bench/cni.js');
    await runCniBench({ pods: o.pods, json: o.json, grpc: o.grpc });
  });

bench
  .command('convergence')
  .description(
    'BGP convergence when a node joins (every other node has its block), node mesh vs route reflectors',
  )
  .option(
    '--nodes <list>',
    'comma-separated lab sizes N (N - 1 nodes, then node N joins)',
    (v: string) =>
      v.split(',').map((x) => {
        const n = Number(x);
        if (!Number.isInteger(n) || n < 3 || n > 50)
          throw new InvalidArgumentError(`--nodes: "${x}" is not a lab size (3 to 50)`);
        return n;
      }),
    [3, 6, 10],
  )
  .option(
    '--topologies <list>',
    'comma-separated: mesh, rr',
    (v: string) =>
      v.split(',').map((t) => {
        if (t !== 'mesh' && t !== 'rr')
          throw new InvalidArgumentError(`--topologies: "${t}" is not mesh or rr`);
        return t;
      }),
    ['mesh', 'rr'] as ('mesh' | 'rr')[],
  )
  .option('--runs <n>', 'runs per cell (each on a fresh lab)', positiveInt, 3)
  .option('--timeout <ms>', 'per wait (lab converged, join converged)', positiveInt, 30_000)
  .option('--json', 'print the results as one JSON document', false)
  .action(
    async (o: {
      nodes: number[];
      topologies: ('mesh' | 'rr')[];
      runs: number;
      timeout: number;
      json: boolean;
    }) => {
      const { runConvergenceBench } = await import('../../bench/convergence.js');
      await runConvergenceBench({
        nodes: o.nodes,
        topologies: o.topologies,
        runs: o.runs,
        json: o.json,
        timeoutMs: o.timeout,
      });
    },
  );

// pod-to-pod, update, agent, all: the benchmark suite (bench/cli.ts).
const { registerBenchSuite } = await import('../../bench/cli.js');
registerBenchSuite(bench);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exit(e.exitCode === 0 ? 0 : 2);
  }
  console.error(`tortie: ${(e as Error).message}`);
  process.exit(1);
}

/**
 * `tortie bench …`: the benchmarks register themselves here, on the program the entry
 * (bin/tortie.ts) builds from src/cli — src/ never imports bench/. Each prints tables, or
 * one JSON document with --json; --out writes the JSON results and SVG charts. A bench's
 * code is loaded only when it runs.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  listOf,
  positiveInt,
  positiveNumber,
  ruleCounts,
  seconds,
  wholeSeconds,
} from '../src/cli/args.js';

const rules = ruleCounts(100_000);
/** Rule counts, or "none". */
const rulesOrNone = (value: string): number[] => (value === 'none' ? [] : rules(value));

/** A list of rule counts with its default shown as typed (0,100,…). */
function ruleList(
  flags: string,
  description: string,
  parse: (value: string) => number[],
  defaults: number[],
): Option {
  return new Option(flags, description).argParser(parse).default(defaults, defaults.join(','));
}

const out = (o: { out?: string }) => (o.out === undefined ? {} : { out: o.out });

export function registerBenchCommands(program: Command): Command {
  const bench = program.command('bench').description('benchmarks (tables; --json for machines)');
  bench
    .command('verdict')
    .description(
      'ns per packet (BPF_PROG_TEST_RUN) for a new and an established flow, 0 to 100,000 rules',
    )
    .addOption(
      ruleList(
        '--rules <list>',
        'comma-separated rule counts',
        rules,
        [0, 100, 1000, 10_000, 100_000],
      ),
    )
    .option('--repeat <n>', 'test-run repeat count', positiveInt, 100_000)
    .option('--runs <n>', 'runs per cell (the median is reported)', positiveInt, 5)
    .option('--json', 'print {"rows": [...]} as JSON', false)
    .option(
      '--source-ports',
      'the admitting rule also matches the source port: the decision takes the third (source-port) stage',
      false,
    )
    .action(
      async (o: {
        rules: number[];
        repeat: number;
        runs: number;
        json: boolean;
        sourcePorts: boolean;
      }) => {
        const { runVerdictBench } = await import('./verdict.js');
        await runVerdictBench(o);
      },
    );

  bench
    .command('cni')
    .description(
      'CNI ADD/DEL latency p50/p99: tortie beside the reference bridge + host-local plugins',
    )
    .option('--pods <n>', 'pods to add and delete one at a time', positiveInt, 100)
    .option('--concurrent <n>', 'calls at once in the concurrent round', positiveInt, 20)
    .option('--json', 'print the results as JSON', false)
    .action(async (o: { pods: number; concurrent: number; json: boolean }) => {
      const { runCniBench } = await import('./cni.js');
      await runCniBench(o);
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
          if (!/^\d+$/.test(x.trim()) || n < 3 || n > 50)
            throw new InvalidArgumentError(`--nodes: "${x}" is not a lab size (3 to 50)`);
          return n;
        }),
      [3, 6, 10],
    )
    .option(
      '--topologies <list>',
      'comma-separated: mesh, rr',
      listOf('--topologies', ['mesh', 'rr'] as const),
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
        const { runConvergenceBench } = await import('./convergence.js');
        await runConvergenceBench({
          nodes: o.nodes,
          topologies: o.topologies,
          runs: o.runs,
          json: o.json,
          timeoutMs: o.timeout,
        });
      },
    );

  bench
    .command('pod-to-pod')
    .description(
      'pod to pod on one node and across two nodes, baseline (kernel) / bpf / iptables (and bpf with IPIP across nodes) side by side: request/response rate and p50/p99, stream throughput, new connections per second; then the bpf/baseline ratios and the goals of issue 15 (met, missed, not measured)',
    )
    .addOption(
      ruleList('--rules <list>', 'comma-separated rule counts', rules, [0, 100, 1000, 10_000]),
    )
    .option(
      '--placements <list>',
      'where the allowing rule is: last, first',
      listOf('--placements', ['last', 'first'] as const),
      ['last', 'first'],
    )
    .option(
      '--modes <list>',
      'baseline, bpf, iptables',
      listOf('--modes', ['baseline', 'bpf', 'iptables'] as const),
      ['baseline', 'bpf', 'iptables'],
    )
    .addOption(
      ruleList(
        '--cross-rules <list>',
        'rule counts across nodes (client on node 0, server on node 1 of a 2-node lab); "none": skip',
        rulesOrNone,
        [0, 100, 1000, 10_000],
      ),
    )
    .option(
      '--cross-modes <list>',
      'across nodes: baseline, bpf, bpf-ipip, iptables',
      listOf('--cross-modes', ['baseline', 'bpf', 'bpf-ipip', 'iptables'] as const),
      ['baseline', 'bpf', 'bpf-ipip', 'iptables'],
    )
    .option('--cross-only', 'only the cross-node half (--rules ignored)', false)
    .option('--runs <n>', 'runs per cell (median and spread reported)', positiveInt, 3)
    .option('--duration <s>', 'seconds per measurement', positiveInt, 2)
    .option(
      '--warmup <s>',
      'seconds of wrk before each run of a cell, not counted (default 1; 0: none)',
      wholeSeconds,
    )
    .option('--out <dir>', 'write pod-to-pod.json and SVG charts here')
    .option('--json', 'print the results as one JSON document', false)
    .action(
      async (o: {
        rules: number[];
        placements: ('last' | 'first')[];
        modes: ('baseline' | 'bpf' | 'iptables')[];
        crossRules: number[];
        crossModes: ('baseline' | 'bpf' | 'bpf-ipip' | 'iptables')[];
        crossOnly: boolean;
        runs: number;
        duration: number;
        warmup?: number;
        out?: string;
        json: boolean;
      }) => {
        const { runPodToPodBench } = await import('./pod-to-pod.js');
        await runPodToPodBench({
          ...o,
          ...out(o),
        });
      },
    );

  bench
    .command('update')
    .description(
      'one policy change at N rules until a probe sees it enforced, bpf vs iptables (p50/p99), and the goal: p50 < 10 ms, p99 < 25 ms at 10,000 rules',
    )
    .addOption(
      ruleList(
        '--rules <list>',
        'comma-separated rule counts in place, up to 100000 (e.g. 0,100,1000,10000,100000)',
        rules,
        [0, 100, 1000, 10_000],
      ),
    )
    .option('--modes <list>', 'bpf, iptables', listOf('--modes', ['bpf', 'iptables'] as const), [
      'bpf',
      'iptables',
    ])
    .option('--changes <n>', 'changes per cell', positiveInt, 10)
    .option('--period-ms <ms>', "the probe's connect period", positiveNumber, 1)
    .option(
      '--same-objects',
      'program the same World objects each change (default: a new World parsed from JSON per change, as the agent gets it)',
      false,
    )
    .option('--out <dir>', 'write update.json and update.svg here')
    .option('--json', 'print the results as one JSON document', false)
    .option('--id <id>', 'lab id (1-12 lower-case letters or digits; default: bn + random hex)')
    .action(
      async (o: {
        rules: number[];
        modes: ('bpf' | 'iptables')[];
        changes: number;
        periodMs: number;
        sameObjects: boolean;
        out?: string;
        json: boolean;
        id?: string;
      }) => {
        const { runUpdateBench } = await import('./update.js');
        await runUpdateBench({ ...o, ...out(o) });
      },
    );

  bench
    .command('agent')
    .description(
      'RSS and CPU of the agent process with 1,000 endpoints and 10,000 rules: idle after sync, and over a burst of policy changes',
    )
    .option('--endpoints <n>', 'WorkloadEndpoints in the store', positiveInt, 1000)
    .option('--veths <n>', 'of them local, with a real veth on the node', positiveInt, 50)
    .option('--rules <n>', 'rules over all policies', positiveInt, 10_000)
    .option('--policies <n>', 'policies the rules are spread over', positiveInt, 100)
    .option('--burst <n>', 'policy changes in the burst', positiveInt, 100)
    .option('--settle <s>', 'seconds after the sync before idle is measured (default 3)', seconds)
    .option('--idle <s>', 'seconds idle CPU is measured over (default 5)', positiveNumber)
    .option(
      '--dataplanes <list>',
      'bpf, iptables',
      listOf('--dataplanes', ['bpf', 'iptables'] as const),
      ['bpf', 'iptables'],
    )
    .option('--out <dir>', 'write agent.json and agent.svg here')
    .option('--json', 'print the results as one JSON document', false)
    .action(
      async (o: {
        endpoints: number;
        veths: number;
        rules: number;
        policies: number;
        burst: number;
        settle?: number;
        idle?: number;
        dataplanes: ('bpf' | 'iptables')[];
        out?: string;
        json: boolean;
      }) => {
        const { runAgentBench } = await import('./agent.js');
        const { settle, idle, ...rest } = o;
        await runAgentBench({ ...rest, settleSeconds: settle, idleSeconds: idle, ...out(o) });
      },
    );

  bench
    .command('all')
    .description(
      'every benchmark at its default sizes (verdict, pod-to-pod, update, agent); results and charts to docs/bench, tables to docs/benchmarks.md',
    )
    .option('--out <dir>', 'JSON results and SVG charts (default: docs/bench of the package)')
    .option('--doc <file>', 'the Markdown file to update (default: docs/benchmarks.md)')
    .option('--quick', 'tiny sizes (a smoke run of the whole suite)', false)
    .option(
      '--render',
      'only rewrite the Markdown and charts from the JSON results in --out',
      false,
    )
    .option('--json', 'print every result as one JSON document', false)
    .action(
      async (o: { out?: string; doc?: string; quick: boolean; render: boolean; json: boolean }) => {
        const { runAllBenches } = await import('./all.js');
        await runAllBenches(o);
      },
    );

  bench
    .command('xdp')
    .description(
      "a flood from deny-listed sources at a node's uplink: packets/s dropped and the legitimate flow's throughput, XDP deny list vs iptables raw + ipset",
    )
    .addOption(
      ruleList(
        '--cidrs <list>',
        'comma-separated deny-list sizes (prefixes, 1 to 20,000)',
        (list: string) =>
          list.split(',').map((x) => {
            const n = Number(x);
            if (!/^\d+$/.test(x.trim()) || n < 1 || n > 20_000)
              throw new InvalidArgumentError(
                `--cidrs: "${x}" is not a deny-list size (1 to 20,000)`,
              );
            return n;
          }),
        [1, 1000, 10_000],
      ),
    )
    .option('--seconds <s>', 'flood duration per cell', positiveInt, 5)
    .option('--json', 'print the results as one JSON document', false)
    .action(async (o: { cidrs: number[]; seconds: number; json: boolean }) => {
      const { runXdpBench } = await import('./xdp.js');
      await runXdpBench(o);
    });
  return bench;
}

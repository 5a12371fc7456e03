/**
 * The `tortie bench` commands of the benchmark suite (pod-to-pod, update, agent, all),
 * registered on the `bench` command of src/cli/main.ts. Each prints tables, or one JSON
 * document with --json; --out writes the JSON results and SVG charts.
 */
import { InvalidArgumentError, type Command } from 'commander';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError(`"${value}" is not a positive integer`);
  return n;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError(`"${value}" is not a positive number`);
  return n;
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError(`"${value}" is not a number of seconds (0 or more)`);
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError(`"${value}" is not a whole number of seconds (0 or more)`);
  return n;
}

function ruleCounts(list: string): number[] {
  return list.split(',').map((r) => {
    const n = Number(r);
    if (!Number.isInteger(n) || n < 0 || n > 100_000)
      throw new InvalidArgumentError(`--rules: "${r}" is not a rule count (0 to 100000)`);
    return n;
  });
}

function listOf<T extends string>(what: string, allowed: readonly T[]) {
  return (value: string): T[] =>
    value.split(',').map((x) => {
      if (!(allowed as readonly string[]).includes(x))
        throw new InvalidArgumentError(`${what}: "${x}" is not one of ${allowed.join(', ')}`);
      return x as T;
    });
}

const out = (o: { out?: string }) => (o.out === undefined ? {} : { out: o.out });

export function registerBenchSuite(bench: Command): void {
  bench
    .command('pod-to-pod')
    .description(
      'pod to pod on one node and across two nodes, baseline (kernel) / bpf / iptables (and bpf with IPIP across nodes) side by side: request/response rate and p50/p99, stream throughput, new connections per second',
    )
    .option('--rules <list>', 'comma-separated rule counts', '0,100,1000,10000')
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
    .option(
      '--cross-rules <list>',
      'rule counts across nodes (client on node 0, server on node 1 of a 2-node lab); "none": skip',
      '0,100,1000,10000',
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
      nonNegativeInt,
    )
    .option('--out <dir>', 'write pod-to-pod.json and SVG charts here')
    .option('--json', 'print the results as one JSON document', false)
    .action(
      async (o: {
        rules: string;
        placements: ('last' | 'first')[];
        modes: ('baseline' | 'bpf' | 'iptables')[];
        crossRules: string;
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
          rules: ruleCounts(o.rules),
          crossRules: o.crossRules === 'none' ? [] : ruleCounts(o.crossRules),
          ...out(o),
        });
      },
    );

  bench
    .command('update')
    .description(
      'one policy change at N rules until a probe sees it enforced, bpf vs iptables (p50/p99)',
    )
    .option('--rules <list>', 'comma-separated rule counts in place', '0,100,1000,10000')
    .option('--modes <list>', 'bpf, iptables', listOf('--modes', ['bpf', 'iptables'] as const), [
      'bpf',
      'iptables',
    ])
    .option('--changes <n>', 'changes per cell', positiveInt, 10)
    .option('--period-ms <ms>', "the probe's connect period", positiveNumber, 1)
    .option('--out <dir>', 'write update.json and update.svg here')
    .option('--json', 'print the results as one JSON document', false)
    .action(
      async (o: {
        rules: string;
        modes: ('bpf' | 'iptables')[];
        changes: number;
        periodMs: number;
        out?: string;
        json: boolean;
      }) => {
        const { runUpdateBench } = await import('./update.js');
        await runUpdateBench({ ...o, rules: ruleCounts(o.rules), ...out(o) });
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
    .option(
      '--settle <s>',
      'seconds after the sync before idle is measured (default 3)',
      nonNegativeNumber,
    )
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
}

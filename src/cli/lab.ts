/**
 * `tortie lab …`: the lab commands. Here `lab conformance`, which runs NetworkPolicy
 * conformance case files (../shared/netpol-case-format.md) on a lab with the BPF
 * dataplane: by default 2 nodes (etcd, an agent per node, the real CNI plugin, IPIP
 * between the nodes, pods spread so that about half of the probes cross nodes);
 * `--nodes 1` is the one-node lab (no agent, no etcd). The exit code is 0 only when no
 * case failed.
 */
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import {
  CLUSTER_ID_MAX,
  collect,
  encap,
  dataplane,
  intIn,
  labId,
  nodeCount,
  regex,
} from './args.js';
import { UsageError } from './usage.js';

export interface ConformanceCommandOptions {
  cases: string[];
  json: boolean;
  id?: string;
  filter?: RegExp;
  timeout: number;
  evaluator?: boolean;
  /** Nodes of the lab (default 2); 1: the one-node lab. */
  nodes?: number;
  /** Between nodes (default ipip; none with iptables); only with 2 nodes or more. vxlan: iptables only. */
  encap?: 'ipip' | 'none' | 'vxlan';
  /** The dataplane under test (default bpf); iptables: the one-node lab by default, or --nodes 2+. */
  dataplane?: 'bpf' | 'iptables';
  /**
   * Where namespaces, pods, labels and policies go (default etcd): kubernetes is a real
   * kube-apiserver, the lab playing kubelet, the agents on the Kubernetes datastore.
   */
  datastore?: 'etcd' | 'kubernetes';
}

/** Refuses combinations the single options cannot see; undefined when they are fine. */
export function conformanceOptionsProblem(o: ConformanceCommandOptions): string | undefined {
  const nodes = o.nodes ?? (o.dataplane === 'iptables' ? 1 : 2);
  if (o.evaluator) return undefined;
  if (o.dataplane === 'iptables' && o.encap === 'ipip')
    return '--dataplane iptables cannot encapsulate IPIP (no ipip module): use --encap none or vxlan';
  if (o.dataplane !== 'iptables' && o.encap === 'vxlan')
    return '--encap vxlan is for --dataplane iptables (the BPF dataplane does IPIP)';
  if (nodes === 1 && o.encap !== undefined)
    return '--encap is for labs of 2 nodes or more (--nodes 1 has no traffic between nodes)';
  if (o.datastore === 'kubernetes' && nodes === 1)
    return '--datastore kubernetes needs a lab of 2 nodes or more (the one-node lab has no agent)';
  if (o.datastore === 'kubernetes' && o.dataplane === 'iptables')
    return '--datastore kubernetes runs the BPF dataplane (leave --dataplane unset)';
  if (nodes > 1 && o.id !== undefined && o.id.length > CLUSTER_ID_MAX)
    return `--id "${o.id}": a lab of ${nodes} nodes takes 1-${CLUSTER_ID_MAX} lower-case letters or digits`;
  return undefined;
}

/**
 * Runs the files on a fresh one-node lab and prints the results; resolves with the exit
 * code (0: nothing failed). The lab is removed at the end, on an error, and on SIGINT /
 * SIGTERM.
 */
export async function runConformanceCommand(
  o: ConformanceCommandOptions,
  out: (line: string) => void = (l) => console.log(l),
): Promise<number> {
  const problem = conformanceOptionsProblem(o);
  if (problem !== undefined) throw new UsageError(problem);
  const conformance = await import('../lab/conformance/index.js');
  const files = conformance.loadCaseFiles(o.cases);
  const nodes = o.nodes ?? (o.dataplane === 'iptables' ? 1 : 2);
  const id = o.id ?? `c${randomBytes(3).toString('hex')}`;
  // The first SIGINT / SIGTERM stops the run after the step under way, and the lab is
  // removed on the normal path; a second one leaves at once.
  const abort = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (abort.signal.aborted) process.exit(signal === 'SIGINT' ? 130 : 143);
    process.stderr.write(`\n${signal}: stopping after the current step, then removing the lab\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let n = 0;
    const result = await conformance.runCaseFiles(
      files,
      async () => {
        if (o.evaluator) return new conformance.EvaluatorLab();
        // A second model gets a second lab (after the first is gone), under its own id.
        const k = n++;
        if (o.dataplane === 'iptables' && nodes === 1) {
          const { IptablesConformanceLab } = await import('../lab/conformance/iptables-lab.js');
          return IptablesConformanceLab.create({ id: k === 0 ? id : `${id.slice(0, 10)}${k}` });
        }
        if (nodes === 1)
          return conformance.OneNodeConformanceLab.create({
            id: k === 0 ? id : `${id.slice(0, 10)}${k}`,
          });
        const clusterId = k === 0 ? id : `${id.slice(0, CLUSTER_ID_MAX - String(k).length)}${k}`;
        if (o.datastore === 'kubernetes') {
          const { KubeConformanceLab } = await import('../lab/cluster/kube-conformance.js');
          return KubeConformanceLab.create({
            id: clusterId,
            nodes,
            encap: o.encap ?? 'ipip',
          });
        }
        const { ClusterConformanceLab } = await import('../lab/cluster/conformance.js');
        return ClusterConformanceLab.create({
          id: clusterId,
          nodes,
          encap: o.encap ?? (o.dataplane === 'iptables' ? 'none' : 'ipip'),
          ...(o.dataplane === 'iptables' ? { dataplane: 'iptables' as const } : {}),
        });
      },
      {
        timeoutMs: o.timeout,
        signal: abort.signal,
        ...(o.filter === undefined ? {} : { filter: o.filter }),
        ...(o.json ? {} : { onCase: (c) => out(conformance.formatCase(c)) }),
      },
    );
    if (o.json) out(JSON.stringify(conformance.toJsonReport(result)));
    else out(`\n${conformance.formatSummary(result)}`);
    if (abort.signal.aborted) {
      process.stderr.write('interrupted: the cases above are all that ran\n');
      return 130;
    }
    return result.failed === 0 ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function registerLabCommands(program: Command): void {
  const lab =
    program.commands.find((c) => c.name() === 'lab') ??
    program.command('lab').description('a cluster on this machine, in network namespaces');
  lab
    .command('conformance')
    .description(
      'run NetworkPolicy conformance case files on a lab (default: BPF dataplane, 2 nodes, IPIP, half the probes across nodes); exit 0 only when nothing failed',
    )
    .requiredOption(
      '--cases <file>',
      'a case file, or a directory of *.json case files (repeatable)',
      collect,
    )
    .option(
      '--json',
      'print {"cases": [...], "passed", "failed", "skipped", "probes", "crossNodeProbes"}',
      false,
    )
    .option(
      '--nodes <n>',
      'nodes of the lab: 2 or more is etcd + an agent per node + the CNI plugin; 1 is the one-node lab (default 2)',
      nodeCount,
    )
    .option(
      '--encap <mode>',
      'between nodes: ipip, none or vxlan (default ipip; with --dataplane iptables: none, or vxlan)',
      encap,
    )
    .option(
      '--dataplane <name>',
      'bpf (default) or iptables (the Felix-style iptables dataplane: the one-node lab, or agents with --dataplane iptables with --nodes 2 or more)',
      dataplane,
    )
    .option(
      '--id <id>',
      `lab id (names of its namespaces and bpffs roots; 1-${CLUSTER_ID_MAX} characters with 2 nodes or more; default random)`,
      labId,
    )
    .addHelpText(
      'after',
      "\n  --datastore kubernetes (tortie's global option, on the command line): namespaces, pods (the lab plays kubelet), labels and NetworkPolicies through a real kube-apiserver, the agents on the Kubernetes datastore, exact waits by their programmed resourceVersion per kind",
    )
    .option('--filter <regex>', 'run only the cases whose id matches', regex)
    .option(
      '--timeout <ms>',
      'probe timeout (a disagreeing cell is probed again with twice that)',
      intIn(50, 60_000, 'milliseconds'),
      1000,
    )
    .option(
      '--evaluator',
      "answer every probe with the reference evaluator instead of a lab (no root, no packets): checks case files against tortie's stated semantics",
      false,
    )
    .action(async (o: ConformanceCommandOptions, cmd: Command) => {
      const { labDatastore } = await import('./lab-cluster.js');
      const datastore = labDatastore(cmd);
      if (datastore === 'kubernetes') o.datastore = datastore;
      // Combinations no single option can check are a usage mistake (exit 2), refused by
      // runConformanceCommand before anything runs.
      process.exitCode = await runConformanceCommand(o);
    });
}

/** `tortie demo`: the one-node lab with Kubernetes NetworkPolicies (src/lab/demo.ts). */
export function registerDemoCommand(program: Command): void {
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
      if (o.down && o.id === undefined)
        throw new UsageError('--down needs the --id of the lab to remove');
      const { runDemo, downDemo } = await import('../lab/demo.js');
      if (o.down) {
        await downDemo(o.id!);
        console.log(`lab ${o.id} removed`);
        return;
      }
      process.exitCode = await runDemo({
        id: o.id ?? randomBytes(3).toString('hex'),
        keep: o.keep,
        policies: o.policies,
      });
    });
}

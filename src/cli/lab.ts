/**
 * `tortie lab …`: the lab commands. For now `lab conformance`, which runs NetworkPolicy
 * conformance case files (../shared/netpol-case-format.md) on a one-node lab with the BPF
 * dataplane; the exit code is 0 only when no case failed.
 */
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';

export interface ConformanceCommandOptions {
  cases: string[];
  json: boolean;
  id?: string;
  filter?: RegExp;
  timeout: number;
  evaluator?: boolean;
}

function labId(value: string): string {
  if (!/^[a-z0-9]{1,12}$/.test(value))
    throw new InvalidArgumentError(`"${value}": use 1-12 lower-case letters or digits`);
  return value;
}

function regex(value: string): RegExp {
  try {
    return new RegExp(value);
  } catch (e) {
    throw new InvalidArgumentError(
      `"${value}" is not a regular expression: ${(e as Error).message}`,
    );
  }
}

function milliseconds(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 50 || n > 60_000)
    throw new InvalidArgumentError(`"${value}": give milliseconds, 50-60000`);
  return n;
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
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
  const conformance = await import('../lab/conformance/index.js');
  const files = conformance.loadCaseFiles(o.cases);
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
        return conformance.OneNodeConformanceLab.create({
          id: n++ === 0 ? id : `${id.slice(0, 10)}${n}`,
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
      'run NetworkPolicy conformance case files on a one-node lab (BPF dataplane); exit 0 only when nothing failed',
    )
    .requiredOption(
      '--cases <file>',
      'a case file, or a directory of *.json case files (repeatable)',
      collect,
    )
    .option('--json', 'print {"cases": [...], "passed", "failed", "skipped", "probes"}', false)
    .option('--id <id>', 'lab id (names of its namespaces and bpffs root; default random)', labId)
    .option('--filter <regex>', 'run only the cases whose id matches', regex)
    .option(
      '--timeout <ms>',
      'probe timeout (a disagreeing cell is probed again with twice that)',
      milliseconds,
      1000,
    )
    .option(
      '--evaluator',
      "answer every probe with the reference evaluator instead of a lab (no root, no packets): checks case files against tortie's stated semantics",
      false,
    )
    .action(async (o: ConformanceCommandOptions) => {
      process.exitCode = await runConformanceCommand(o);
    });
}

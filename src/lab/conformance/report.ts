/**
 * How results are printed. Human: a line per case (PASS, FAIL with each failing step's
 * wrong cells drawn as a matrix, SKIP with why) and a summary line. JSON (`--json`):
 *
 *   { "cases": [ { "id", "status": "pass"|"fail"|"skip", "reason"?, "error"?,
 *                  "steps": [ { "wrong": [[from, to, expected, observed], ...],
 *                               "status", "reason"?, "probe", "actions" } ] } ],
 *     "passed": N, "failed": N, "skipped": N, "probes": N,
 *     "crossNodeProbes"?: N }     (labs with several nodes: probes between pods on different nodes)
 */
import { formatMatrix } from '../../util/matrix.js';
import type { CaseResult, RunResult, StepResult } from './run.js';

const LEGEND =
  '(row = client, column = server; . as expected, 1 connected but expected blocked, ' +
  '0 blocked but expected connected, - not judged)';

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** The step's wrong cells in a table of every pod; the other judged cells are dots. */
export function drawWrongCells(
  pods: readonly string[],
  wrong: StepResult['wrong'],
  selfIgnored: boolean,
  indent = '      ',
): string {
  const byCell = new Map(wrong.map(([f, t, , observed]) => [`${f} ${t}`, observed]));
  return formatMatrix(
    pods,
    (from, to) => {
      const observed = byCell.get(`${from} ${to}`);
      if (observed !== undefined) return observed ? '1' : '0';
      return selfIgnored && from === to ? '-' : '.';
    },
    { indent },
  );
}

function stepLabel(c: CaseResult, s: StepResult, i: number): string {
  const n = c.steps.length;
  const where = n > 1 ? `step ${i + 1}/${n}` : 'step';
  const actions = s.actions.length > 0 ? ` (${s.actions.join(', ')})` : '';
  return `${where}${actions}, ${s.probe.protocol}/${s.probe.port}`;
}

/** A case's line (and, for a failure, its matrices). */
export function formatCase(c: CaseResult): string {
  const id = c.id;
  switch (c.status) {
    case 'skip':
      return `SKIP  ${id}: ${c.reason ?? 'skipped'}`;
    case 'pass': {
      const skipped = c.steps.filter((s) => s.status === 'skip');
      const note =
        skipped.length === 0
          ? ''
          : `; ${skipped.length} of ${c.steps.length} steps skipped (${[...new Set(skipped.map((s) => s.reason))].join('; ')})`;
      const recovered = c.steps.reduce((n, s) => n + s.recovered, 0);
      const again = recovered === 0 ? '' : `; ${recovered} cells agreed only when probed again`;
      const steps = c.steps.length === 1 ? '1 step' : `${c.steps.length} steps`;
      return `PASS  ${id}  (${steps}, ${seconds(c.ms)}${again}${note})`;
    }
    case 'fail': {
      const lines = [`FAIL  ${id}${c.source === undefined ? '' : `  [${c.source}]`}`];
      c.steps.forEach((s, i) => {
        if (s.status !== 'fail') return;
        const judged = c.pods.length * c.pods.length - (c.selfIgnored ? c.pods.length : 0);
        lines.push(
          `    ${stepLabel(c, s, i)}: ${s.wrong.length} of ${judged} cells wrong`,
          drawWrongCells(c.pods, s.wrong, c.selfIgnored),
        );
      });
      if (c.steps.some((s) => s.status === 'fail')) lines.push(`    ${LEGEND}`);
      if (c.error !== undefined) lines.push(`    error: ${c.error}`);
      return lines.join('\n');
    }
  }
}

/** "52% across nodes" (labs that know nodes), or undefined. */
export function acrossNodes(r: Pick<RunResult, 'probes' | 'crossNodeProbes'>): string | undefined {
  if (r.crossNodeProbes === undefined) return undefined;
  const pct = r.probes === 0 ? 0 : Math.round((100 * r.crossNodeProbes) / r.probes);
  return `${pct}% across nodes`;
}

export function formatSummary(r: RunResult): string {
  const n = r.cases.length;
  const skippedSteps = r.cases
    .filter((c) => c.status !== 'skip')
    .reduce((k, c) => k + c.steps.filter((s) => s.status === 'skip').length, 0);
  const extra = skippedSteps > 0 ? ` (and ${skippedSteps} steps of other cases)` : '';
  return (
    `${n} ${n === 1 ? 'case' : 'cases'}: ${r.passed} passed, ${r.failed} failed, ` +
    `${r.skipped} skipped${extra}; ${r.probes} probes` +
    (acrossNodes(r) === undefined ? '' : ` (${acrossNodes(r)})`) +
    ` in ${seconds(r.ms)}` +
    (r.lab === '' ? '' : ` (${r.lab})`)
  );
}

export function formatHuman(r: RunResult): string {
  return [...r.cases.map(formatCase), '', formatSummary(r)].join('\n');
}

export interface JsonReport {
  cases: {
    id: string;
    status: CaseResult['status'];
    reason?: string;
    error?: string;
    steps: {
      wrong: [string, string, boolean, boolean][];
      status: StepResult['status'];
      reason?: string;
      probe: StepResult['probe'];
      actions: string[];
    }[];
  }[];
  passed: number;
  failed: number;
  skipped: number;
  probes: number;
  crossNodeProbes?: number;
}

export function toJsonReport(r: RunResult): JsonReport {
  return {
    cases: r.cases.map((c) => ({
      id: c.id,
      status: c.status,
      ...(c.reason === undefined ? {} : { reason: c.reason }),
      ...(c.error === undefined ? {} : { error: c.error }),
      steps: c.steps.map((s) => ({
        wrong: s.wrong.map((w) => [...w] as [string, string, boolean, boolean]),
        status: s.status,
        ...(s.reason === undefined ? {} : { reason: s.reason }),
        probe: s.probe,
        actions: [...s.actions],
      })),
    })),
    passed: r.passed,
    failed: r.failed,
    skipped: r.skipped,
    probes: r.probes,
    ...(r.crossNodeProbes === undefined ? {} : { crossNodeProbes: r.crossNodeProbes }),
  };
}

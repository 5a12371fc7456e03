/**
 * What `tortie bench pod-to-pod` says in one look, after its tables: bpf/baseline ratios
 * (request/response rate, new connections, stream throughput) per row, same node and
 * across nodes (encap none, and IPIP), and the goals of issue 15 judged on them, each met,
 * missed or not measured. Pure functions of the result, so `tortie bench all --render`
 * judges an older JSON document the same way.
 *
 * A ratio is median over median (bench/pod-to-pod.ts: the median of the runs of a cell),
 * the baseline being the row's baseline cell (no policy). A goal at 10,000 rules holds
 * when every measured placement of the allowing rule meets it: the worst is reported.
 */
import { fmt, type Stat } from './common.js';
import type { Placement } from './lab.js';
import type { Cell, PodToPodResult } from './pod-to-pod.js';

export type Where = 'same node' | 'across nodes';
/** bpf: same node, or across nodes with encap none; bpf-ipip: across nodes, IPIP in BPF. */
export type Path = 'bpf' | 'bpf-ipip';
export type Metric = 'rr' | 'conn' | 'stream';

export interface Ratio {
  where: Where;
  path: Path;
  rules: number;
  placement: Placement;
  /** path/baseline of the medians; undefined where a cell is missing. */
  rr?: number;
  conn?: number;
  stream?: number;
}

export interface Goal {
  text: string;
  where: Where;
  path: Path;
  metric: Exclude<Metric, 'stream'>;
  rules: number;
  /** The ratio to reach: path ≥ min × baseline. */
  min: number;
  status: 'met' | 'missed' | 'not measured';
  /** The worst ratio over the measured placements, and where it was. */
  ratio?: number;
  placement?: Placement;
  /** Medians and spreads of the two cells behind `ratio`. */
  cells?: { path: Stat; baseline: Stat };
}

export const GOAL_RULES = 10_000;

const METRIC: Record<Metric, { name: string; get: (c: Cell) => Stat; unit: string }> = {
  rr: { name: 'request/response', get: (c) => c.rr.rate, unit: '/s' },
  conn: { name: 'new connections', get: (c) => c.conn.rate, unit: '/s' },
  stream: { name: 'throughput', get: (c) => c.stream.gbps, unit: ' Gbit/s' },
};

/** The goals of issue 15 on pod-to-pod figures. */
const GOALS: { where: Where; path: Path; metric: Goal['metric']; min: number }[] = [
  { where: 'across nodes', path: 'bpf', metric: 'rr', min: 1 },
  { where: 'across nodes', path: 'bpf', metric: 'conn', min: 1 },
  { where: 'across nodes', path: 'bpf-ipip', metric: 'rr', min: 0.95 },
  { where: 'across nodes', path: 'bpf-ipip', metric: 'conn', min: 0.95 },
  { where: 'same node', path: 'bpf', metric: 'rr', min: 1 },
  { where: 'same node', path: 'bpf', metric: 'conn', min: 1 },
];

function cellsOf(r: PodToPodResult, where: Where): readonly Cell[] {
  return where === 'same node' ? r.cells : (r.crossNodeCells ?? []);
}

function pathName(where: Where, path: Path): string {
  if (where === 'same node') return path;
  return path === 'bpf' ? 'bpf, encap none' : 'bpf, IPIP';
}

function ratioOf(cell: Cell | undefined, base: Cell | undefined, m: Metric): number | undefined {
  if (!cell || !base) return undefined;
  const b = METRIC[m].get(base).median;
  const x = METRIC[m].get(cell).median;
  return b > 0 && Number.isFinite(x) ? x / b : undefined;
}

/** One row per (where, path, rules, placement) with a measured path cell. */
export function podToPodRatios(r: PodToPodResult): Ratio[] {
  const out: Ratio[] = [];
  for (const where of ['same node', 'across nodes'] as const) {
    const cells = cellsOf(r, where);
    for (const path of ['bpf', 'bpf-ipip'] as const)
      for (const c of cells.filter((x) => x.mode === path)) {
        const base = cells.find((x) => x.mode === 'baseline' && x.rules === c.rules);
        const ratio: Ratio = { where, path, rules: c.rules, placement: c.placement };
        for (const m of ['rr', 'conn', 'stream'] as const) {
          const v = ratioOf(c, base, m);
          if (v !== undefined) ratio[m] = v;
        }
        out.push(ratio);
      }
  }
  return out.sort(
    (a, b) =>
      a.where.localeCompare(b.where) * -1 ||
      a.path.localeCompare(b.path) ||
      a.rules - b.rules ||
      b.placement.localeCompare(a.placement),
  );
}

/** The issue 15 goals against `r`: met, missed, or not measured (no 10,000-rule cells). */
export function podToPodGoals(r: PodToPodResult): Goal[] {
  return GOALS.map((g) => {
    const text = `${g.where}, ${pathName(g.where, g.path)}, ${fmt(GOAL_RULES)} rules: ${g.path} ≥ ${g.min.toFixed(2)}× baseline on ${METRIC[g.metric].name}`;
    const cells = cellsOf(r, g.where);
    const base = cells.find((c) => c.mode === 'baseline' && c.rules === GOAL_RULES);
    const judged = cells
      .filter((c) => c.mode === g.path && c.rules === GOAL_RULES)
      .map((c) => ({ c, ratio: ratioOf(c, base, g.metric) }))
      .filter((x): x is { c: Cell; ratio: number } => x.ratio !== undefined)
      .sort((a, b) => a.ratio - b.ratio);
    const worst = judged[0];
    const goal: Goal = { text, ...g, rules: GOAL_RULES, status: 'not measured' };
    if (!worst || !base) return goal;
    return {
      ...goal,
      status: worst.ratio >= g.min ? 'met' : 'missed',
      ratio: worst.ratio,
      placement: worst.c.placement,
      cells: { path: METRIC[g.metric].get(worst.c), baseline: METRIC[g.metric].get(base) },
    };
  });
}

/** One line per goal: status, goal, the worst ratio and the two medians ± spreads. */
export function goalLine(g: Goal): string {
  if (g.status === 'not measured' || g.ratio === undefined || !g.cells)
    return `${g.text}: not measured (no ${fmt(g.rules)}-rule ${g.path} and baseline cells ${g.where})`;
  const unit = METRIC[g.metric].unit;
  const s = (x: Stat) => `${fmt(x.median)} ±${fmt(x.spread)}${unit}`;
  return `${g.text}: ${g.ratio.toFixed(2)}× — ${g.status}${g.status === 'missed' ? ` by ${((g.min - g.ratio) * 100).toFixed(0)}%` : ''} (allowing rule ${g.placement}; ${g.path} ${s(g.cells.path)}, baseline ${s(g.cells.baseline)})`;
}

/** The ratio table: one line per bpf / bpf-ipip cell against its row's baseline. */
export function podToPodRatioTable(r: PodToPodResult): string {
  const ratios = podToPodRatios(r);
  if (ratios.length === 0) return '';
  const x = (v: number | undefined) => (v === undefined ? '-' : `${v.toFixed(2)}x`).padStart(10);
  return [
    `\n== bpf / baseline (median over median of ${r.options.runs} runs; ≥ 1.00x: bpf at least as fast)`,
    `${'where'.padEnd(13)}${'path'.padEnd(17)}${'rules'.padStart(7)} ${'allow'.padEnd(6)}${'req/resp'.padStart(10)}${'new conn'.padStart(10)}${'stream'.padStart(10)}`,
    ...ratios.map(
      (q) =>
        `${q.where.padEnd(13)}${pathName(q.where, q.path).padEnd(17)}${String(q.rules).padStart(7)} ${q.placement.padEnd(6)}${x(q.rr)}${x(q.conn)}${x(q.stream)}`,
    ),
  ].join('\n');
}

/** What `tortie bench pod-to-pod` prints after its tables: the ratios, then the goals. */
export function podToPodSummary(r: PodToPodResult): string {
  return [
    podToPodRatioTable(r),
    '\n== goals of issue 15',
    ...podToPodGoals(r).map((g) => `${g.status.padEnd(13)}${goalLine(g)}`),
  ].join('\n');
}

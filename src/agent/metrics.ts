/**
 * Prometheus text exposition (format 0.0.4), written by hand: a handful of gauges,
 * counters and one histogram do not need a client library. `renderMetrics` is pure.
 */

export type Labels = Readonly<Record<string, string>>;

export interface Sample {
  readonly labels?: Labels;
  readonly value: number | bigint;
}

export interface MetricFamily {
  readonly name: string;
  readonly help: string;
  readonly type: 'gauge' | 'counter' | 'histogram';
  readonly samples: readonly Sample[];
}

/** Cumulative buckets, as Prometheus histograms have them. */
export class Histogram {
  private readonly counts: number[];
  private sumValue = 0;
  private countValue = 0;

  constructor(readonly buckets: readonly number[]) {
    this.counts = buckets.map(() => 0);
  }

  observe(value: number): void {
    this.buckets.forEach((b, i) => {
      if (value <= b) this.counts[i]!++;
    });
    this.sumValue += value;
    this.countValue++;
  }

  get count(): number {
    return this.countValue;
  }

  get sum(): number {
    return this.sumValue;
  }

  /** The family's samples: `_bucket` per bound and +Inf, `_sum`, `_count`. */
  samples(name: string, labels: Labels = {}): { name: string; labels: Labels; value: number }[] {
    return [
      ...this.buckets.map((b, i) => ({
        name: `${name}_bucket`,
        labels: { ...labels, le: formatNumber(b) },
        value: this.counts[i]!,
      })),
      { name: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: this.countValue },
      { name: `${name}_sum`, labels, value: this.sumValue },
      { name: `${name}_count`, labels, value: this.countValue },
    ];
  }
}

/** Reconcile latency buckets, seconds. */
export const RECONCILE_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

function formatNumber(v: number | bigint): string {
  if (typeof v === 'bigint') return v.toString();
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatLabels(labels: Labels | undefined): string {
  const entries = Object.entries(labels ?? {});
  if (entries.length === 0) return '';
  return `{${entries.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
}

/** The exposition text of these families, with HELP and TYPE lines. */
export function renderMetrics(
  families: readonly MetricFamily[],
  histograms: readonly { name: string; help: string; histogram: Histogram; labels?: Labels }[] = [],
): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help.replace(/\n/g, ' ')}`);
    lines.push(`# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples)
      lines.push(`${f.name}${formatLabels(s.labels)} ${formatNumber(s.value)}`);
  }
  for (const h of histograms) {
    lines.push(`# HELP ${h.name} ${h.help.replace(/\n/g, ' ')}`);
    lines.push(`# TYPE ${h.name} histogram`);
    for (const s of h.histogram.samples(h.name, h.labels)) {
      lines.push(`${s.name}${formatLabels(s.labels)} ${formatNumber(s.value)}`);
    }
  }
  return lines.join('\n') + '\n';
}

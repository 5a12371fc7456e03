/**
 * /status and /metrics as compositions of the managers' parts. Each part is read on its
 * own: one that throws is left out and named (status `errors`, metrics
 * `tortie_agent_metrics_errors{part}`), the others are served (docs/agent.md).
 */
import type { HistogramFamily, Manager, MetricsOut, StatusPart } from './manager.js';
import type { MetricFamily } from './metrics.js';

/**
 * The managers' status parts merged, in list order (a later part's field wins). A part
 * that throws is left out and named in `errors`; the others are served.
 */
export function mergeStatus(managers: readonly Manager[]): StatusPart {
  let out: StatusPart = {};
  const errors: Record<string, string> = {};
  for (const m of managers) {
    let part: StatusPart;
    try {
      part = m.status();
    } catch (e) {
      errors[m.name] = (e as Error).message;
      continue;
    }
    Object.assign(errors, part.errors);
    out = { ...out, ...part };
  }
  const { errors: _drop, ...rest } = out;
  return Object.keys(errors).length === 0 ? rest : { ...rest, errors };
}

/** The managers' metric families; `failed`: part → message, for the parts left out. */
export function collectMetrics(managers: readonly Manager[]): {
  families: MetricFamily[];
  histograms: HistogramFamily[];
  failed: Map<string, string>;
} {
  const failed = new Map<string, string>();
  const out: MetricsOut = {
    families: [],
    histograms: [],
    part: (name, read) => {
      const mark = out.families.length;
      const hmark = out.histograms.length;
      try {
        read();
      } catch (e) {
        // Nothing half-written: the families this part pushed before it threw go too.
        out.families.length = mark;
        out.histograms.length = hmark;
        failed.set(name, (e as Error).message);
      }
    },
  };
  for (const m of managers) out.part(m.name, () => m.metrics(out));
  return { families: out.families, histograms: out.histograms, failed };
}

/** The family that names the parts of this scrape left out (1 each). */
export function metricsErrorsFamily(failed: ReadonlyMap<string, string>): MetricFamily {
  return {
    name: 'tortie_agent_metrics_errors',
    help: 'Parts of this scrape that could not be read and were left out (the log says why): 1 per part.',
    type: 'gauge',
    samples: [...failed.keys()].sort().map((part) => ({ labels: { part }, value: 1 })),
  };
}

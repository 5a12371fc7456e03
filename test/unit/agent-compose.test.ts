import { describe, expect, it } from 'vitest';
import { collectMetrics, mergeStatus, metricsErrorsFamily } from '../../src/agent/compose.js';
import type { Manager, MetricsOut, StatusPart } from '../../src/agent/manager.js';
import { renderMetrics } from '../../src/agent/metrics.js';

function part(name: string, status: () => StatusPart, metrics: (out: MetricsOut) => void): Manager {
  return { name, reconcile: () => ({}), status, metrics, stop: () => undefined };
}

const gauge = (name: string, value: number) => ({
  name,
  help: name,
  type: 'gauge' as const,
  samples: [{ value }],
});

describe('composing /status and /metrics from the managers', () => {
  it("one manager's metrics that throw leave the others' families served", () => {
    const managers = [
      part(
        'a',
        () => ({}),
        (out) => out.families.push(gauge('tortie_a', 1)),
      ),
      part(
        'broken',
        () => ({}),
        (out) => {
          out.families.push(gauge('tortie_half_written', 1));
          throw new Error('EBADF: map closed');
        },
      ),
      part(
        'c',
        () => ({}),
        (out) => out.families.push(gauge('tortie_c', 3)),
      ),
    ];
    const { families, failed } = collectMetrics(managers);
    expect(families.map((f) => f.name)).toEqual(['tortie_a', 'tortie_c']);
    expect([...failed]).toEqual([['broken', 'EBADF: map closed']]);
    const text = renderMetrics([...families, metricsErrorsFamily(failed)]);
    expect(text).toContain('tortie_agent_metrics_errors{part="broken"} 1');
    expect(text).toContain('tortie_c 3');
  });

  it('a part inside a manager fails on its own', () => {
    const m = part(
      'm',
      () => ({}),
      (out) => {
        out.part('counters', () => {
          throw new Error('EPERM');
        });
        out.families.push(gauge('tortie_maps', 2));
      },
    );
    const { families, failed } = collectMetrics([m]);
    expect(families.map((f) => f.name)).toEqual(['tortie_maps']);
    expect([...failed]).toEqual([['counters', 'EPERM']]);
  });

  it('no failure: the errors family is there with no samples', () => {
    const text = renderMetrics([metricsErrorsFamily(new Map())]);
    expect(text).toBe(
      '# HELP tortie_agent_metrics_errors Parts of this scrape that could not be read and were left out (the log says why): 1 per part.\n# TYPE tortie_agent_metrics_errors gauge\n',
    );
  });

  it("status parts merge in order; a status that throws is named in errors, the others' kept", () => {
    const merged = mergeStatus([
      part(
        'routes',
        () => ({ routes: [], knownNodes: ['192.0.2.2'] }),
        () => undefined,
      ),
      part(
        'policy',
        () => ({ drops: {}, errors: { drops: 'cannot read the dataplane counters: EBADF' } }),
        () => undefined,
      ),
      part(
        'nat',
        () => {
          throw new Error('closed');
        },
        () => undefined,
      ),
    ]);
    expect(merged).toEqual({
      routes: [],
      knownNodes: ['192.0.2.2'],
      drops: {},
      errors: { drops: 'cannot read the dataplane counters: EBADF', nat: 'closed' },
    });
    expect(
      mergeStatus([
        part(
          'x',
          () => ({ nat: { rules: 1, error: undefined } }),
          () => {},
        ),
      ]),
    ).toEqual({
      nat: { rules: 1, error: undefined },
    });
  });
});

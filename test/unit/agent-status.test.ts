import { describe, expect, it } from 'vitest';
import { Histogram, renderMetrics } from '../../src/agent/metrics.js';
import {
  EndpointNotProgrammedError,
  endpointStatusKey,
  parseEndpointStatusKey,
  waitForEndpointProgrammed,
  type EndpointStatus,
  type StatusReader,
} from '../../src/agent/status.js';

const status = (revision: string): EndpointStatus => ({
  programmed: true,
  policyRev: 3,
  revision,
  node: 'n1',
  interfaceName: 'tor0123456789ab',
  ifindex: 7,
  endpointId: 1,
  ip: '10.0.0.1',
  programmedAt: '2025-01-01T00:00:00Z',
});

/** A store whose one key appears after `afterCalls` reads; `failFirst` reads throw. */
function fakeStore(
  value: () => EndpointStatus | undefined,
  failFirst = 0,
): StatusReader & { reads: string[] } {
  const reads: string[] = [];
  let n = 0;
  return {
    prefix: '/t',
    reads,
    etcd: {
      kv: {
        range: async (req) => {
          reads.push(Buffer.from(req.key as Buffer).toString());
          if (n++ < failFirst) throw new Error('14 UNAVAILABLE: connect ECONNREFUSED');
          const v = value();
          return {
            header: { revision: '1' },
            kvs:
              v === undefined
                ? []
                : [{ key: Buffer.from(req.key as Buffer), value: Buffer.from(JSON.stringify(v)) }],
            more: false,
            count: v === undefined ? '0' : '1',
          } as never;
        },
      },
    },
  };
}

describe('endpoint status keys', () => {
  it('live under <prefix>/status/endpoints/<node>/<namespace>/<name>', () => {
    const key = endpointStatusKey('/tortie', 'n1', 'prod', 'web-0');
    expect(key).toBe('/tortie/status/endpoints/n1/prod/web-0');
    expect(parseEndpointStatusKey('/tortie', key)).toEqual({
      node: 'n1',
      namespace: 'prod',
      name: 'web-0',
    });
    expect(parseEndpointStatusKey('/tortie', '/tortie/status/nodes/n1')).toBeUndefined();
  });
});

describe('waitForEndpointProgrammed (what CNI ADD calls)', () => {
  it('resolves once the agent reports the endpoint programmed', async () => {
    let present: EndpointStatus | undefined;
    setTimeout(() => (present = status('12')), 60);
    const store = fakeStore(() => present);
    const s = await waitForEndpointProgrammed(store, {
      node: 'n1',
      namespace: 'prod',
      name: 'web-0',
      timeoutMs: 2000,
    });
    expect(s.revision).toBe('12');
    expect(store.reads[0]).toBe('/t/status/endpoints/n1/prod/web-0');
    expect(store.reads.length).toBeGreaterThan(1);
  });

  it("a status for an older revision of the endpoint (the same name's previous pod) does not count", async () => {
    let current = status('12');
    setTimeout(() => (current = status('20')), 80);
    const s = await waitForEndpointProgrammed(
      fakeStore(() => current),
      {
        node: 'n1',
        namespace: 'prod',
        name: 'web-0',
        revision: '15',
        timeoutMs: 2000,
      },
    );
    expect(s.revision).toBe('20');
  });

  it('fails closed: rejects after the timeout, saying why', async () => {
    const t0 = Date.now();
    const err = await waitForEndpointProgrammed(
      fakeStore(() => undefined),
      {
        node: 'n1',
        namespace: 'prod',
        name: 'web-0',
        timeoutMs: 150,
      },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EndpointNotProgrammedError);
    expect((err as Error).message).toMatch(
      /endpoint prod\/web-0 was not programmed by the agent of node n1 within 150 ms/,
    );
    expect(Date.now() - t0).toBeLessThan(1000);
    const stale = await waitForEndpointProgrammed(
      fakeStore(() => status('3')),
      {
        node: 'n1',
        namespace: 'prod',
        name: 'web-0',
        revision: '9',
        timeoutMs: 100,
      },
    ).catch((e: unknown) => e);
    expect((stale as Error).message).toMatch(/reports revision 3, not yet 9/);
  });

  it('etcd errors while waiting are retried until the deadline', async () => {
    const s = await waitForEndpointProgrammed(
      fakeStore(() => status('5'), 2),
      {
        node: 'n1',
        namespace: 'prod',
        name: 'web-0',
        timeoutMs: 2000,
      },
    );
    expect(s.programmed).toBe(true);
    const err = await waitForEndpointProgrammed(
      fakeStore(() => status('5'), 1000),
      {
        node: 'n1',
        namespace: 'prod',
        name: 'web-0',
        timeoutMs: 100,
      },
    ).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/etcd did not answer \(14 UNAVAILABLE/);
  });
});

describe('Prometheus text', () => {
  it('families with HELP and TYPE, escaped labels, a cumulative histogram', () => {
    const h = new Histogram([0.01, 0.1, 1]);
    h.observe(0.005);
    h.observe(0.05);
    h.observe(5);
    const text = renderMetrics(
      [
        {
          name: 'tortie_dataplane_packets_total',
          help: 'Packets by reason.',
          type: 'counter',
          samples: [{ labels: { reason: 'DROP_POLICY', note: 'a "b"\\c' }, value: 12n }],
        },
      ],
      [{ name: 'tortie_agent_reconcile_duration_seconds', help: 'Reconcile time.', histogram: h }],
    );
    expect(text).toBe(
      [
        '# HELP tortie_dataplane_packets_total Packets by reason.',
        '# TYPE tortie_dataplane_packets_total counter',
        'tortie_dataplane_packets_total{reason="DROP_POLICY",note="a \\"b\\"\\\\c"} 12',
        '# HELP tortie_agent_reconcile_duration_seconds Reconcile time.',
        '# TYPE tortie_agent_reconcile_duration_seconds histogram',
        'tortie_agent_reconcile_duration_seconds_bucket{le="0.01"} 1',
        'tortie_agent_reconcile_duration_seconds_bucket{le="0.1"} 2',
        'tortie_agent_reconcile_duration_seconds_bucket{le="1"} 2',
        'tortie_agent_reconcile_duration_seconds_bucket{le="+Inf"} 3',
        'tortie_agent_reconcile_duration_seconds_sum 5.055',
        'tortie_agent_reconcile_duration_seconds_count 3',
        '',
      ].join('\n'),
    );
  });
});

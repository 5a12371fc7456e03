import { afterEach, describe, expect, it, vi } from 'vitest';
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

/**
 * A store whose one key holds `value(n)` at its n-th read (from 0), so what the agent
 * reports changes after a number of reads, not after a time; `failFirst` reads throw.
 */
function fakeStore(
  value: (read: number) => EndpointStatus | undefined,
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
          const read = n++;
          if (read < failFirst) throw new Error('14 UNAVAILABLE: connect ECONNREFUSED');
          const v = value(read);
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
  it('live under <prefix>/tortie/status/endpoints/<node>/<namespace>/<name>', () => {
    const key = endpointStatusKey('/tortie', 'n1', 'prod', 'web-0');
    expect(key).toBe('/tortie/tortie/status/endpoints/n1/prod/web-0');
    expect(parseEndpointStatusKey('/tortie', key)).toEqual({
      node: 'n1',
      namespace: 'prod',
      name: 'web-0',
    });
    expect(parseEndpointStatusKey('/tortie', '/tortie/tortie/status/nodes/n1')).toBeUndefined();
  });
});

describe('waitForEndpointProgrammed (what CNI ADD calls)', () => {
  // Waits that should succeed get a deadline no slow machine reaches; the store changes by
  // reads. Waits that should time out run on a fake clock the test moves.
  const NEVER_MS = 600_000;
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Settles `p` into a value the test can look at synchronously. */
  function track<T>(p: Promise<T>): { settled: boolean; error: unknown } {
    const t = { settled: false, error: undefined as unknown };
    p.then(
      () => (t.settled = true),
      (e: unknown) => {
        t.settled = true;
        t.error = e;
      },
    );
    return t;
  }

  it('resolves once the agent reports the endpoint programmed', async () => {
    const store = fakeStore((read) => (read >= 3 ? status('12') : undefined));
    const s = await waitForEndpointProgrammed(store, {
      node: 'n1',
      namespace: 'prod',
      name: 'web-0',
      timeoutMs: NEVER_MS,
    });
    expect(s.revision).toBe('12');
    expect(store.reads[0]).toBe('/t/tortie/status/endpoints/n1/prod/web-0');
    expect(store.reads.length).toBe(4);
  });

  it("a status for an older revision of the endpoint (the same name's previous pod) does not count", async () => {
    const store = fakeStore((read) => status(read >= 3 ? '20' : '12'));
    const s = await waitForEndpointProgrammed(store, {
      node: 'n1',
      namespace: 'prod',
      name: 'web-0',
      revision: '15',
      timeoutMs: NEVER_MS,
    });
    expect(s.revision).toBe('20');
    expect(store.reads.length).toBe(4);
  });

  it('fails closed: rejects when the timeout has passed, not before, saying why', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const store = fakeStore(() => undefined);
    const wait = track(
      waitForEndpointProgrammed(store, {
        node: 'n1',
        namespace: 'prod',
        name: 'web-0',
        timeoutMs: 150,
      }),
    );
    await vi.advanceTimersByTimeAsync(149);
    expect(wait.settled).toBe(false);
    expect(store.reads.length).toBeGreaterThan(1); // it kept asking meanwhile
    await vi.advanceTimersByTimeAsync(1);
    expect(wait.settled).toBe(true);
    expect(wait.error).toBeInstanceOf(EndpointNotProgrammedError);
    expect((wait.error as Error).message).toMatch(
      /endpoint prod\/web-0 was not programmed by the agent of node n1 within 150 ms/,
    );

    const stale = track(
      waitForEndpointProgrammed(
        fakeStore(() => status('3')),
        {
          node: 'n1',
          namespace: 'prod',
          name: 'web-0',
          revision: '9',
          timeoutMs: 100,
        },
      ),
    );
    await vi.advanceTimersByTimeAsync(100);
    expect(stale.settled).toBe(true);
    expect((stale.error as Error).message).toMatch(/reports revision 3, not yet 9/);
  });

  it('etcd errors while waiting are retried until the deadline', async () => {
    const s = await waitForEndpointProgrammed(
      fakeStore(() => status('5'), 2),
      {
        node: 'n1',
        namespace: 'prod',
        name: 'web-0',
        timeoutMs: NEVER_MS,
      },
    );
    expect(s.programmed).toBe(true);

    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const failing = fakeStore(() => status('5'), Infinity);
    const err = track(
      waitForEndpointProgrammed(failing, {
        node: 'n1',
        namespace: 'prod',
        name: 'web-0',
        timeoutMs: 100,
      }),
    );
    await vi.advanceTimersByTimeAsync(100);
    expect(err.settled).toBe(true);
    expect(failing.reads.length).toBeGreaterThan(1);
    expect((err.error as Error).message).toMatch(/etcd did not answer \(14 UNAVAILABLE/);
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

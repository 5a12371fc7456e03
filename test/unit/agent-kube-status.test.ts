/**
 * Agent status without etcd leases (the Kubernetes datastore): the heartbeat is a record
 * renewed every TTL/3 with its renew time and TTL, judged by readers; a clean stop
 * deletes it; endpoint records are written as on etcd and stay. The store here is an
 * in-memory map behind the KV calls the reporter uses (range, txn), which is all it
 * asks of a client.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { IRangeRequest, ITxnRequest } from 'etcd3';
import { silentLogger } from '../../src/agent/log.js';
import { StatusReporter } from '../../src/agent/reporter.js';
import {
  endpointStatusKey,
  heartbeatFresh,
  nodeStatusKey,
  readNodeStatus,
  type EndpointStatus,
  type NodeStatus,
} from '../../src/agent/status.js';

function memoryStore() {
  const data = new Map<string, string>();
  const puts: { key: string; lease: unknown }[] = [];
  const kv = {
    range: async (req: IRangeRequest) => {
      const key = Buffer.from(req.key as Buffer).toString();
      const end = req.range_end === undefined ? undefined : Buffer.from(req.range_end).toString();
      const kvs = [...data]
        .filter(([k]) => (end === undefined ? k === key : k >= key && k < end))
        .map(([k, v]) => ({ key: Buffer.from(k), value: Buffer.from(v) }));
      return { header: { revision: '1' }, kvs, more: false, count: String(kvs.length) };
    },
    txn: async (req: ITxnRequest) => {
      for (const op of req.success ?? []) {
        if (op.request_put) {
          const key = Buffer.from(op.request_put.key as Buffer).toString();
          data.set(key, Buffer.from(op.request_put.value as Buffer).toString());
          puts.push({ key, lease: op.request_put.lease });
        }
        if (op.request_delete_range)
          data.delete(Buffer.from(op.request_delete_range.key as Buffer).toString());
      }
      return { header: { revision: '1' }, succeeded: true, responses: [] };
    },
  };
  return { data, puts, etcd: { kv, close: () => undefined } };
}

const nodeStatus = (): NodeStatus => ({
  node: 'n1',
  pid: 1,
  startedAt: '2026-01-01T00:00:00Z',
  heartbeatAt: new Date().toISOString(),
  synced: true,
  ready: true,
  endpoints: { local: 1, programmed: 1, unresolved: 0 },
  routes: 0,
  drops: {},
});

const endpoint: EndpointStatus = {
  programmed: true,
  policyRev: 1,
  revision: '42',
  node: 'n1',
  interfaceName: 'tor0',
  ifindex: 3,
  endpointId: 1,
  ip: '10.0.0.2',
  programmedAt: '2026-01-01T00:00:00Z',
};

afterEach(() => {
  vi.useRealTimers();
});

describe('status without leases (Kubernetes datastore)', () => {
  it('heartbeat renewed every TTL/3 with its TTL, no lease; endpoint records; a clean stop removes only the heartbeat', async () => {
    vi.useFakeTimers({ now: Date.parse('2026-01-01T00:00:00Z') });
    const store = memoryStore();
    const r = new StatusReporter({
      etcd: store.etcd as never,
      leases: false,
      prefix: '/calico',
      node: 'n1',
      ttlSeconds: 3,
      reportIntervalSeconds: 60,
      nodeStatus,
      log: silentLogger(),
    });
    r.start();
    await vi.advanceTimersByTimeAsync(1);
    const hbKey = nodeStatusKey('/calico', 'n1');
    const first = JSON.parse(store.data.get(hbKey)!) as NodeStatus;
    expect(first.ttlSeconds).toBe(3);
    expect(first.heartbeatAt).toBe('2026-01-01T00:00:00.000Z');
    expect(store.puts.every((p) => p.lease === undefined)).toBe(true);

    const epKey = endpointStatusKey('/calico', 'n1', 'default', 'web');
    r.setEndpoints(new Map([[epKey, endpoint]]));
    await vi.advanceTimersByTimeAsync(1);
    expect(JSON.parse(store.data.get(epKey)!)).toMatchObject({ revision: '42' });

    // One renew interval (TTL/3 = 1 s) later the heartbeat was written again.
    await vi.advanceTimersByTimeAsync(1000);
    const renewed = JSON.parse(store.data.get(hbKey)!) as NodeStatus;
    expect(Date.parse(renewed.heartbeatAt)).toBeGreaterThan(Date.parse(first.heartbeatAt));
    expect(heartbeatFresh(renewed, Date.parse(renewed.heartbeatAt) + 3000)).toBe(true);
    expect(heartbeatFresh(renewed, Date.parse(renewed.heartbeatAt) + 3001)).toBe(false);

    await r.stop();
    expect(store.data.has(hbKey)).toBe(false);
    expect(store.data.has(epKey)).toBe(true);
    expect(
      await readNodeStatus({ etcd: store.etcd as never, prefix: '/calico' }, 'n1'),
    ).toBeUndefined();
  });

  it('a lease-bound heartbeat (etcd) is fresh while it exists', () => {
    expect(heartbeatFresh({ ...nodeStatus(), heartbeatAt: '2000-01-01T00:00:00Z' })).toBe(true);
  });

  it('leases asked for on a client without lease calls: refused at start, not at the first write', () => {
    const store = memoryStore();
    const r = new StatusReporter({
      etcd: store.etcd as never,
      leases: true,
      prefix: '/calico',
      node: 'n1',
      ttlSeconds: 3,
      reportIntervalSeconds: 60,
      nodeStatus,
      log: silentLogger(),
    });
    expect(() => r.start()).toThrow(/no lease calls/);
  });
});

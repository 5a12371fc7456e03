/**
 * The node heartbeat and the endpoint status keys (./status.ts has the layout), kept in
 * one of two ways:
 *
 *  - etcd (`leases: true`): one lease per agent, everything bound to it; keepalives every
 *    TTL/3 are the heartbeat. A lease that expired (etcd unreachable for longer than the
 *    TTL) is replaced by a new one and every key is written again under it. Stopping
 *    does not revoke the lease: an agent restarting within the TTL must not look like a
 *    node that left. The keys expire on their own when no agent comes back.
 *  - Kubernetes (`leases: false`; tortiestatuses.tortie.io objects): the API server has
 *    no leases, so the heartbeat is written again every TTL/3 with its renew time
 *    (`heartbeatAt`) and TTL (`ttlSeconds`), and readers judge it (`heartbeatFresh`). A
 *    clean stop deletes the heartbeat; an agent that died leaves one that goes stale.
 *    Endpoint records carry no renew time: they say what the dataplane holds, which
 *    outlives the agent; a reader that wants a live agent joins them with the heartbeat.
 */
import type { IRequestOp, LeaseClient } from 'etcd3';
import { prefixEnd, type EtcdKvClient } from '../datastore/index.js';
import type { Logger } from 'pino';
import {
  endpointStatusPrefix,
  nodeStatusKey,
  type EndpointStatus,
  type NodeStatus,
} from './status.js';

/** etcd refuses transactions with more operations than --max-txn-ops (128 by default). */
const MAX_OPS = 128;
const CALL_TIMEOUT_MS = 2000;

/** The lease calls of etcd's client (absent on the Kubernetes datastore). */
export interface LeaseCalls {
  readonly leaseClient: Pick<LeaseClient, 'leaseGrant' | 'leaseRevoke' | 'leaseKeepAlive'>;
}

export interface ReporterOptions {
  /** With `leaseClient`, and `leases` true: lease-bound keys; otherwise renewed records. */
  readonly etcd: EtcdKvClient & Partial<LeaseCalls>;
  readonly leases: boolean;
  readonly prefix: string;
  readonly node: string;
  readonly ttlSeconds: number;
  readonly reportIntervalSeconds: number;
  readonly nodeStatus: () => NodeStatus;
  readonly log: Logger;
  /** Told whenever an etcd call of the reporter succeeded (true) or failed (false). */
  readonly onEtcd?: (ok: boolean) => void;
}

export class StatusReporter {
  private leaseId: string | undefined;
  private readonly desired = new Map<string, string>();
  /** What is written under the current lease. */
  private written = new Map<string, string>();
  /** Endpoint keys are managed only once the agent has programmed (it knows its endpoints). */
  private endpointsKnown = false;
  private cleaned = false;
  private keepTimer: NodeJS.Timeout | undefined;
  private reportTimer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  /** Grants so far (1 + the number of times the lease was lost). */
  grants = 0;
  lastHeartbeatAt: Date | undefined;

  constructor(private readonly o: ReporterOptions) {}

  start(): void {
    if (this.o.leases && this.o.etcd.leaseClient === undefined)
      throw new Error('status reporter: leases asked for, but the client has no lease calls');
    const keepMs = Math.max(500, (this.o.ttlSeconds * 1000) / 3);
    // Renewed records: the heartbeat written again is the keepalive.
    this.keepTimer = setInterval(
      () => (this.o.leases ? void this.keepalive() : this.schedule(true)),
      keepMs,
    );
    this.intervalSeconds = this.o.reportIntervalSeconds;
    this.reportTimer = setInterval(() => this.schedule(true), this.intervalSeconds * 1000);
    this.schedule(true);
  }

  private intervalSeconds = 0;

  /** The heartbeat's report interval from now on (FelixConfiguration reportingInterval). */
  setReportInterval(seconds: number): void {
    if (this.stopped || this.reportTimer === undefined || seconds === this.intervalSeconds) return;
    this.intervalSeconds = seconds;
    clearInterval(this.reportTimer);
    this.reportTimer = setInterval(() => this.schedule(true), seconds * 1000);
  }

  /** The heartbeat's report interval in force. */
  get reportIntervalSeconds(): number {
    return this.intervalSeconds;
  }

  /** The programmed endpoints' statuses, by key; written (and stale ones deleted) soon. */
  setEndpoints(statuses: ReadonlyMap<string, EndpointStatus>): void {
    for (const key of [...this.desired.keys()]) {
      if (key !== this.nodeKey && !statuses.has(key)) this.desired.delete(key);
    }
    for (const [key, s] of statuses) {
      // programmedAt changes on every write: compare without it.
      const prev = this.desired.get(key);
      if (prev !== undefined && sameStatus(prev, s)) continue;
      this.desired.set(key, JSON.stringify(s));
    }
    this.endpointsKnown = true;
    this.schedule(false);
  }

  /** Write the node heartbeat now (e.g. readiness changed). */
  reportNow(): void {
    this.schedule(true);
  }

  /** Resolves when everything desired so far is written (or a write failed). */
  async settled(): Promise<void> {
    while (this.flushing || this.flushTimer) {
      await (this.flushing ?? new Promise((r) => setTimeout(r, 5)));
    }
  }

  get connectedLease(): string | undefined {
    return this.leaseId;
  }

  async stop(opts: { revoke?: boolean } = {}): Promise<void> {
    this.stopped = true;
    clearInterval(this.keepTimer);
    clearInterval(this.reportTimer);
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flushing;
    if (!this.o.leases) {
      // A clean stop: no heartbeat left to go stale (the endpoint records stay: the
      // dataplane keeps them programmed, and the next agent takes them over).
      if (this.written.has(this.nodeKey))
        await this.o.etcd.kv
          .txn(
            { success: [{ request_delete_range: { key: Buffer.from(this.nodeKey) } }] },
            { deadline: Date.now() + CALL_TIMEOUT_MS },
          )
          .then(() => this.written.delete(this.nodeKey))
          .catch((e: Error) =>
            this.o.log.warn({ err: e.message }, 'could not remove the heartbeat (it goes stale)'),
          );
      return;
    }
    if (opts.revoke && this.leaseId !== undefined) {
      await this.o.etcd
        .leaseClient!.leaseRevoke({ ID: this.leaseId }, { deadline: Date.now() + CALL_TIMEOUT_MS })
        .catch(() => undefined);
    }
  }

  private get nodeKey(): string {
    return nodeStatusKey(this.o.prefix, this.o.node);
  }

  private schedule(withNode: boolean): void {
    if (this.stopped) return;
    if (withNode) this.desired.set(this.nodeKey, JSON.stringify(this.heartbeat()));
    if (this.flushing) {
      this.again = true;
      return;
    }
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.schedule(false);
        }
      });
    }, 0);
  }

  private async flush(): Promise<void> {
    try {
      if (this.o.leases && this.leaseId === undefined) await this.grant();
      if (!this.cleaned && this.endpointsKnown) await this.deleteStrays();
      const puts: IRequestOp[] = [];
      const deletes: IRequestOp[] = [];
      for (const [key, value] of this.desired) {
        if (!this.endpointsKnown && key !== this.nodeKey) continue;
        if (this.written.get(key) !== value)
          puts.push({
            request_put: {
              key: Buffer.from(key),
              value: Buffer.from(value),
              ...(this.leaseId === undefined ? {} : { lease: this.leaseId }),
            },
          });
      }
      if (this.endpointsKnown) {
        for (const key of this.written.keys()) {
          if (!this.desired.has(key))
            deletes.push({ request_delete_range: { key: Buffer.from(key) } });
        }
      }
      const ops = [...puts, ...deletes];
      for (let i = 0; i < ops.length; i += MAX_OPS) {
        await this.o.etcd.kv.txn(
          { success: ops.slice(i, i + MAX_OPS) },
          { deadline: Date.now() + CALL_TIMEOUT_MS },
        );
      }
      for (const op of puts)
        this.written.set(op.request_put!.key!.toString(), op.request_put!.value!.toString());
      for (const op of deletes) this.written.delete(op.request_delete_range!.key!.toString());
      if (puts.some((p) => p.request_put!.key!.toString() === this.nodeKey))
        this.lastHeartbeatAt = new Date();
      this.o.onEtcd?.(true);
    } catch (e) {
      this.o.onEtcd?.(false);
      this.o.log.debug({ err: (e as Error).message }, 'status write failed; retrying');
      if (!this.stopped) {
        clearTimeout(this.flushTimer);
        this.flushTimer = setTimeout(() => {
          this.flushTimer = undefined;
          this.schedule(false);
        }, 500);
      }
    }
  }

  private async grant(): Promise<void> {
    const res = await this.o.etcd.leaseClient!.leaseGrant(
      { TTL: this.o.ttlSeconds },
      { deadline: Date.now() + CALL_TIMEOUT_MS },
    );
    this.leaseId = res.ID;
    this.written = new Map();
    this.grants++;
    this.cleaned = false;
    this.o.log.info({ lease: res.ID, ttlSeconds: this.o.ttlSeconds }, 'lease granted');
    // The heartbeat carries fresh data under the new lease.
    this.desired.set(this.nodeKey, JSON.stringify(this.heartbeat()));
  }

  /** The heartbeat's value: with its TTL when it is a renewed record (no lease). */
  private heartbeat(): NodeStatus {
    const status = this.o.nodeStatus();
    return this.o.leases ? status : { ...status, ttlSeconds: this.o.ttlSeconds };
  }

  /** Endpoint status keys of this node that a previous agent left and nobody wants now. */
  private async deleteStrays(): Promise<void> {
    const prefix = endpointStatusPrefix(this.o.prefix, this.o.node);
    const res = await this.o.etcd.kv.range(
      { key: Buffer.from(prefix), range_end: prefixEnd(prefix), keys_only: true },
      { deadline: Date.now() + CALL_TIMEOUT_MS },
    );
    const strays = res.kvs.map((kv) => kv.key.toString()).filter((k) => !this.desired.has(k));
    for (let i = 0; i < strays.length; i += MAX_OPS) {
      await this.o.etcd.kv.txn(
        {
          success: strays
            .slice(i, i + MAX_OPS)
            .map((k) => ({ request_delete_range: { key: Buffer.from(k) } })),
        },
        { deadline: Date.now() + CALL_TIMEOUT_MS },
      );
    }
    this.cleaned = true;
  }

  private async keepalive(): Promise<void> {
    const id = this.leaseId;
    if (id === undefined || this.stopped) {
      if (!this.flushing && !this.flushTimer) this.schedule(false);
      return;
    }
    try {
      const ttl = await this.keepaliveOnce(id);
      this.o.onEtcd?.(true);
      if (ttl <= 0 && this.leaseId === id) {
        this.o.log.warn(
          { lease: id },
          'lease expired (etcd was unreachable for longer than its TTL); granting a new one',
        );
        this.leaseId = undefined;
        this.schedule(true);
      }
    } catch (e) {
      this.o.onEtcd?.(false);
      this.o.log.debug({ err: (e as Error).message }, 'lease keepalive failed');
    }
  }

  private async keepaliveOnce(id: string): Promise<number> {
    const stream = await this.o.etcd.leaseClient!.leaseKeepAlive();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        stream.end();
        reject(new Error('lease keepalive: no answer'));
      }, CALL_TIMEOUT_MS);
      stream.on('data', (res: { TTL: string }) => {
        clearTimeout(timer);
        stream.end();
        resolve(Number(res.TTL));
      });
      stream.on('error', (err: Error) => {
        clearTimeout(timer);
        reject(err);
      });
      stream.write({ ID: id });
    });
  }
}

function sameStatus(prevJson: string, next: EndpointStatus): boolean {
  const prev = JSON.parse(prevJson) as EndpointStatus;
  return (
    prev.policyRev === next.policyRev &&
    prev.revision === next.revision &&
    prev.ifindex === next.ifindex &&
    prev.endpointId === next.endpointId &&
    prev.ip === next.ip &&
    prev.interfaceName === next.interfaceName
  );
}

/**
 * Following an etcd prefix that is not a resource kind (IPAM blocks, node heartbeats):
 * list it, then watch from the list's revision; changes update a local copy, and the
 * owner is told when the copy changed. Losing the watch (etcd or the API server gone,
 * compaction, a stream the server ended) means a new list when the store answers again:
 * a change made while away is never missed. A periodic list is the safety net.
 *
 * It speaks the store client's raw calls (`kv.range`, the watch stream of
 * `watchClient.watch()`), so it follows etcd and the Kubernetes datastore alike.
 */
import type { IWatchResponse } from 'etcd3';
import type { Logger } from 'pino';
import type { EtcdWatchClient } from '../datastore/index.js';
import { prefixEnd } from '../datastore/index.js';

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 3000;
const CALL_TIMEOUT_MS = 3000;

export interface FollowerOptions {
  readonly etcd: EtcdWatchClient;
  readonly prefix: string;
  /** Only keys are needed (values are not fetched). */
  readonly keysOnly?: boolean;
  readonly log: Logger;
  /** The copy changed (or was listed for the first time). */
  readonly onChange: (snapshot: ReadonlyMap<string, Buffer>) => void;
  readonly relistIntervalMs?: number;
}

type Stream = Awaited<ReturnType<EtcdWatchClient['watchClient']['watch']>>;

export class PrefixFollower {
  private readonly copy = new Map<string, Buffer>();
  private stream: Stream | undefined;
  private timer: NodeJS.Timeout | undefined;
  private relistTimer: NodeJS.Timeout | undefined;
  private backoff = BACKOFF_MIN_MS;
  private stopped = false;
  private listing = false;
  /** Listed at least once. */
  synced = false;
  /** The watch is established. */
  connected = false;

  constructor(private readonly o: FollowerOptions) {}

  start(): void {
    void this.relist();
    this.relistTimer = setInterval(() => {
      if (!this.listing) void this.relist();
    }, this.o.relistIntervalMs ?? 60_000);
  }

  get snapshot(): ReadonlyMap<string, Buffer> {
    return this.copy;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.relistTimer);
    this.closeWatch();
    await Promise.resolve();
  }

  private closeWatch(): void {
    const s = this.stream;
    this.stream = undefined;
    this.connected = false;
    if (s) {
      try {
        s.cancel();
      } catch {
        /* already closed */
      }
    }
  }

  private retry(why: string): void {
    if (this.stopped) return;
    this.connected = false;
    this.o.log.debug({ prefix: this.o.prefix, why }, 'following again later');
    clearTimeout(this.timer);
    const delay = this.backoff * (0.5 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.timer = setTimeout(() => void this.relist(), delay);
  }

  /** Lists the prefix, replaces the copy, and watches from the list's revision. */
  private async relist(): Promise<void> {
    if (this.stopped || this.listing) return;
    this.listing = true;
    try {
      const end = prefixEnd(this.o.prefix);
      const res = await this.o.etcd.kv.range(
        { key: Buffer.from(this.o.prefix), range_end: end, keys_only: this.o.keysOnly === true },
        { deadline: Date.now() + CALL_TIMEOUT_MS },
      );
      if (this.stopped) return;
      const next = new Map<string, Buffer>();
      for (const kv of res.kvs) next.set(kv.key.toString(), kv.value ?? Buffer.alloc(0));
      const changed = !this.synced || !sameContent(this.copy, next);
      this.copy.clear();
      for (const [k, v] of next) this.copy.set(k, v);
      this.synced = true;
      if (this.stream === undefined || !this.connected) {
        this.closeWatch();
        await this.watchFrom((BigInt(res.header.revision) + 1n).toString());
      }
      this.backoff = BACKOFF_MIN_MS;
      if (changed) this.o.onChange(this.copy);
    } catch (e) {
      this.retry((e as Error).message);
    } finally {
      this.listing = false;
    }
  }

  private async watchFrom(revision: string): Promise<void> {
    const stream = await this.o.etcd.watchClient.watch();
    if (this.stopped) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    stream.on('data', (res: IWatchResponse) => this.onResponse(stream, res));
    stream.on('error', (err: Error) => this.lost(stream, err.message));
    stream.on('end', () => this.lost(stream, 'the watch stream ended'));
    stream.write({
      create_request: {
        key: Buffer.from(this.o.prefix),
        range_end: prefixEnd(this.o.prefix),
        start_revision: revision,
      },
    });
  }

  private lost(stream: Stream, why: string): void {
    if (stream !== this.stream || this.stopped) return;
    this.closeWatch();
    this.retry(why);
  }

  private onResponse(stream: Stream, res: IWatchResponse): void {
    if (stream !== this.stream || this.stopped) return;
    if (res.canceled) {
      // Compacted, or the server dropped the watch: list again (the diff is delivered).
      this.closeWatch();
      this.backoff = BACKOFF_MIN_MS;
      this.retry(res.cancel_reason || `watch canceled (compacted to ${res.compact_revision})`);
      return;
    }
    if (res.created) this.connected = true;
    let changed = false;
    for (const ev of res.events ?? []) {
      const key = ev.kv.key.toString();
      if (ev.type === 'Delete') {
        if (this.copy.delete(key)) changed = true;
        continue;
      }
      const value = this.o.keysOnly ? Buffer.alloc(0) : ev.kv.value;
      const prev = this.copy.get(key);
      this.copy.set(key, value);
      if (prev === undefined || !prev.equals(value)) changed = true;
    }
    if (changed) this.o.onChange(this.copy);
  }
}

function sameContent(a: ReadonlyMap<string, Buffer>, b: ReadonlyMap<string, Buffer>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || !w.equals(v)) return false;
  }
  return true;
}

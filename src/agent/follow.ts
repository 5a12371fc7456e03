/**
 * Following an etcd prefix that is not a resource kind (IPAM blocks, node heartbeats):
 * list it, then watch from the list's revision; changes update a local copy, and the
 * owner is told when the copy changed. Losing the watch (etcd gone, compaction) means a
 * new list when etcd answers again: a change made while away is never missed. A periodic
 * list is the safety net.
 */
import type { Etcd3, Watcher } from 'etcd3';
import type { Logger } from 'pino';

const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 3000;
const CALL_TIMEOUT_MS = 3000;

export interface FollowerOptions {
  readonly etcd: Etcd3;
  readonly prefix: string;
  /** Only keys are needed (values are not fetched). */
  readonly keysOnly?: boolean;
  readonly log: Logger;
  /** The copy changed (or was listed for the first time). */
  readonly onChange: (snapshot: ReadonlyMap<string, Buffer>) => void;
  readonly relistIntervalMs?: number;
}

export class PrefixFollower {
  private readonly copy = new Map<string, Buffer>();
  private watcher: Watcher | undefined;
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
    await this.closeWatch();
  }

  private async closeWatch(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    this.connected = false;
    if (w) await w.cancel().catch(() => undefined);
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
      if (this.watcher === undefined || !this.connected) {
        await this.closeWatch();
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
    const builder = this.o.etcd.watch().prefix(this.o.prefix).startRevision(revision);
    const w = await builder.create();
    if (this.stopped) {
      await w.cancel().catch(() => undefined);
      return;
    }
    this.watcher = w;
    this.connected = true;
    w.on('put', (kv) => {
      if (w !== this.watcher) return;
      const key = kv.key.toString();
      const value = this.o.keysOnly ? Buffer.alloc(0) : kv.value;
      const prev = this.copy.get(key);
      this.copy.set(key, value);
      if (prev === undefined || !prev.equals(value)) this.o.onChange(this.copy);
    });
    w.on('delete', (kv) => {
      if (w !== this.watcher) return;
      if (this.copy.delete(kv.key.toString())) this.o.onChange(this.copy);
    });
    w.on('disconnected', () => {
      if (w === this.watcher) this.connected = false;
    });
    w.on('connected', () => {
      // etcd3 resumes the watch where it stopped; list anyway, cheaply, to be sure.
      if (w === this.watcher && !this.connected) {
        this.connected = true;
        void this.relist();
      }
    });
    w.on('error', (err) => {
      if (w !== this.watcher) return;
      void this.closeWatch().then(() => this.retry(err.message));
    });
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

function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

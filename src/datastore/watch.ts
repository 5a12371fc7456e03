/**
 * A resumable watch over one or more kinds.
 *
 * - Without a start revision it lists first and delivers every object as a synthetic
 *   `put`, then `synced` (cause "initial"). With one (a list's revision) it delivers the
 *   changes made after it.
 * - It keeps the last revision it received and resumes from the next one when the
 *   stream breaks (a member killed, a network blip), so nothing is lost or repeated.
 * - When etcd no longer has that revision (compaction) it resyncs: lists again and
 *   delivers the difference from what it had delivered as synthetic `put`/`delete`
 *   events, then `synced` (cause "compacted").
 *
 * Its own gRPC watch stream (not the etcd3 Watcher, which resumes from the revision of
 * the last response header and can skip events in a large catch-up).
 */
import type { IKeyValue, IWatchResponse } from 'etcd3';
import type { EtcdWatchClient } from './etcd/client.js';
import { decodeKeyValue, type StoredResource } from './codec.js';
import { classifyEtcdError } from './etcd/errors.js';
import { DatastoreError, fromEtcdError } from './errors.js';
import { kindPrefix, parseResourceKey, resourcesPrefix, type KindName } from './kinds.js';
import { prefixEnd, readSnapshot, type CallOptions } from './txn.js';

export type WatchEvent =
  | {
      readonly type: 'put';
      readonly kind: KindName;
      readonly resource: StoredResource;
      /** What the watcher had delivered for this key before, if anything. */
      readonly previous?: StoredResource;
      readonly revision: string;
      /** Made up by a list (initial sync or resync), not seen in the event history. */
      readonly synthetic: boolean;
    }
  | {
      readonly type: 'delete';
      readonly kind: KindName;
      readonly name: string;
      readonly namespace?: string;
      readonly previous?: StoredResource;
      readonly revision: string;
      readonly synthetic: boolean;
    }
  | {
      readonly type: 'synced';
      readonly revision: string;
      readonly cause: 'initial' | 'compacted' | 'canceled';
    };

export type WatchHandler = (event: WatchEvent) => void | Promise<void>;

export type WatchStatus = 'connected' | 'disconnected';

export interface WatchOptions {
  /** Deliver the changes made after this revision (e.g. a list's `revision`). */
  readonly revision?: string;
  /** A handler that threw, a value that does not decode, a failed resync attempt. */
  readonly onError?: (err: Error) => void;
  readonly onStatus?: (status: WatchStatus, detail?: string) => void;
}

export interface WatchContext {
  readonly etcd: EtcdWatchClient;
  readonly prefix: string;
  readonly endpoints: readonly string[];
  readonly callOptions: () => CallOptions;
  /** Told when the watcher is cancelled (the store forgets it). */
  readonly onCancel?: (w: ResourceWatcher) => void;
}

type Stream = Awaited<ReturnType<EtcdWatchClient['watchClient']['watch']>>;

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 3000;

export class ResourceWatcher {
  private readonly range: string;
  private readonly kinds: ReadonlySet<KindName>;
  /** What has been delivered, by key: the source of `previous` and of resync deletes. */
  private readonly cache = new Map<string, StoredResource>();
  private last = 0n;
  private stream: Stream | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoff = BACKOFF_MIN_MS;
  private queue: Promise<void> = Promise.resolve();
  private cancelled = false;
  private resyncCount = 0;

  private constructor(
    private readonly ctx: WatchContext,
    kinds: readonly KindName[],
    private readonly handler: WatchHandler,
    private readonly options: WatchOptions,
  ) {
    this.kinds = new Set(kinds);
    this.range =
      kinds.length === 1
        ? kindPrefix(kinds[0]!, undefined, ctx.prefix)
        : resourcesPrefix(ctx.prefix);
  }

  /** Starts watching; resolves once the initial state is queued for delivery. */
  static async start(
    ctx: WatchContext,
    kinds: readonly KindName[],
    handler: WatchHandler,
    options: WatchOptions = {},
  ): Promise<ResourceWatcher> {
    if (kinds.length === 0) throw new DatastoreError('invalid', 'watch: name at least one kind');
    const w = new ResourceWatcher(ctx, kinds, handler, options);
    try {
      if (options.revision === undefined) await w.resync('initial');
      else await w.seed(options.revision);
    } catch (e) {
      throw fromEtcdError(e, ctx.endpoints);
    }
    w.open();
    return w;
  }

  /** The last revision received (events up to it are delivered or queued). */
  get revision(): string {
    return this.last.toString();
  }

  /** How many times the watcher had to list again after losing its place. */
  get resyncs(): number {
    return this.resyncCount;
  }

  /** Resolves when every event received so far has been handled. */
  idle(): Promise<void> {
    return this.queue;
  }

  /** Stops the stream; resolves after the handler has returned for the last event. */
  async cancel(): Promise<void> {
    this.cancelled = true;
    this.ctx.onCancel?.(this);
    clearTimeout(this.timer);
    this.closeStream();
    await this.queue;
  }

  // --- state ------------------------------------------------------------------------

  private wanted(key: string): KindName | undefined {
    const ref = parseResourceKey(key, this.ctx.prefix);
    return ref !== undefined && this.kinds.has(ref.kind) ? ref.kind : undefined;
  }

  private deliver(event: WatchEvent): void {
    this.queue = this.queue.then(async () => {
      if (this.cancelled) return;
      try {
        await this.handler(event);
      } catch (e) {
        this.report(e);
      }
    });
  }

  private report(e: unknown): void {
    const err = e instanceof Error ? e : new Error(String(e));
    if (this.options.onError) this.options.onError(err);
  }

  private decode(kv: IKeyValue): { kind: KindName; resource: StoredResource } | undefined {
    try {
      return decodeKeyValue(kv, this.ctx.prefix);
    } catch (e) {
      this.report(e);
      return undefined;
    }
  }

  /** The state at `revision`, known without delivering it: the caller listed it already. */
  private async seed(revision: string): Promise<void> {
    if (!/^\d+$/.test(revision))
      throw new DatastoreError(
        'invalid',
        `watch: revision ${JSON.stringify(revision)} is not a number`,
      );
    let kvs: IKeyValue[];
    try {
      const res = await this.ctx.etcd.kv.range(
        { key: Buffer.from(this.range), range_end: prefixEnd(this.range), revision },
        this.ctx.callOptions(),
      );
      kvs = res.kvs;
    } catch (e) {
      if (classifyEtcdError(e)?.kind === 'compacted') {
        throw new DatastoreError(
          'conflict',
          `watch: revision ${revision} has been compacted away; list again and watch from the list's revision`,
          [],
          { cause: e },
        );
      }
      throw e;
    }
    for (const kv of kvs) {
      if (this.wanted(kv.key.toString()) === undefined) continue;
      const decoded = this.decode(kv);
      if (decoded) this.cache.set(kv.key.toString(), decoded.resource);
    }
    this.last = BigInt(revision);
  }

  /** Lists everything and delivers the difference from the cache. */
  private async resync(cause: 'initial' | 'compacted' | 'canceled'): Promise<void> {
    const snap = await readSnapshot(
      this.ctx.etcd,
      { prefixes: [this.range] },
      this.ctx.callOptions(),
    );
    const seen = new Set<string>();
    for (const kv of snap.prefixes.get(this.range) ?? []) {
      const key = kv.key.toString();
      if (this.wanted(key) === undefined) continue;
      const decoded = this.decode(kv);
      if (!decoded) continue;
      seen.add(key);
      const previous = this.cache.get(key);
      if (previous?.metadata.resourceVersion === decoded.resource.metadata.resourceVersion)
        continue;
      this.cache.set(key, decoded.resource);
      this.deliver({
        type: 'put',
        kind: decoded.kind,
        resource: decoded.resource,
        ...(previous ? { previous } : {}),
        revision: kv.mod_revision,
        synthetic: true,
      });
    }
    for (const [key, previous] of [...this.cache]) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      const ref = parseResourceKey(key, this.ctx.prefix)!;
      this.deliver({ type: 'delete', ...ref, previous, revision: snap.revision, synthetic: true });
    }
    this.last = BigInt(snap.revision);
    if (cause !== 'initial') this.resyncCount++;
    this.deliver({ type: 'synced', revision: snap.revision, cause });
  }

  // --- the stream -------------------------------------------------------------------

  private open(): void {
    if (this.cancelled) return;
    this.ctx.etcd.watchClient
      .watch()
      .then((stream) => {
        if (this.cancelled) {
          stream.cancel();
          return;
        }
        this.stream = stream;
        stream.on('data', (res) => this.onResponse(stream, res));
        stream.on('error', (err) => this.lost(stream, err.message));
        stream.on('end', () => this.lost(stream, 'the watch stream ended'));
        stream.write({
          create_request: {
            key: Buffer.from(this.range),
            range_end: prefixEnd(this.range),
            start_revision: (this.last + 1n).toString(),
          },
        });
      })
      .catch((e: Error) => this.retryLater(`cannot open a watch stream: ${e.message}`));
  }

  private closeStream(): void {
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      try {
        s.cancel();
      } catch {
        /* already closed */
      }
    }
  }

  private lost(stream: Stream, why: string): void {
    if (stream !== this.stream || this.cancelled) return;
    this.stream = undefined;
    this.retryLater(why);
  }

  private retryLater(why: string, action: () => Promise<void> | void = () => this.open()): void {
    if (this.cancelled) return;
    this.options.onStatus?.('disconnected', why);
    const delay = this.backoff * (0.5 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      Promise.resolve(action()).catch((e: Error) => {
        this.report(fromEtcdError(e, this.ctx.endpoints));
        this.retryLater(e.message, action);
      });
    }, delay);
  }

  private onResponse(stream: Stream, res: IWatchResponse): void {
    if (stream !== this.stream || this.cancelled) return;
    if (res.canceled) {
      // Compaction (compact_revision set), or etcd dropped the watch: list again.
      this.closeStream();
      const compacted = res.compact_revision !== undefined && res.compact_revision !== '0';
      const cause = compacted ? 'compacted' : 'canceled';
      this.options.onStatus?.(
        'disconnected',
        compacted
          ? `revision ${this.last + 1n} was compacted (etcd keeps from ${res.compact_revision})`
          : `etcd canceled the watch: ${res.cancel_reason || 'no reason given'}`,
      );
      this.backoff = BACKOFF_MIN_MS;
      this.retryLater('resyncing', async () => {
        await this.resync(cause);
        this.open();
      });
      return;
    }
    if (res.created) {
      this.backoff = BACKOFF_MIN_MS;
      this.options.onStatus?.('connected');
    }
    // One transaction's events share a revision and arrive in one response: skip only
    // what an earlier response (before a reconnect) already brought. On the Kubernetes
    // datastore one stream merges a watch per resource, so an older revision of another
    // key may follow a newer one: an event at or below the floor is skipped only when the
    // key already holds that revision or a later one, or it deletes a key not held.
    const floor = this.last;
    for (const ev of res.events ?? []) {
      const rev = BigInt(ev.kv.mod_revision);
      const key = ev.kv.key.toString();
      const previous = this.cache.get(key);
      if (rev <= floor) {
        const had = previous?.metadata.resourceVersion;
        if (had === undefined ? ev.type === 'Delete' : BigInt(had) >= rev) continue;
      }
      if (rev > this.last) this.last = rev;
      const kind = this.wanted(key);
      if (kind === undefined) continue;
      if (ev.type === 'Delete') {
        this.cache.delete(key);
        const ref = parseResourceKey(key, this.ctx.prefix)!;
        this.deliver({
          type: 'delete',
          ...ref,
          ...(previous ? { previous } : {}),
          revision: ev.kv.mod_revision,
          synthetic: false,
        });
        continue;
      }
      const decoded = this.decode(ev.kv);
      if (!decoded) continue;
      this.cache.set(key, decoded.resource);
      this.deliver({
        type: 'put',
        kind,
        resource: decoded.resource,
        ...(previous ? { previous } : {}),
        revision: ev.kv.mod_revision,
        synthetic: false,
      });
    }
  }
}

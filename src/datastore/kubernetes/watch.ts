/**
 * etcd's watch stream on the Kubernetes API: one emulated stream (the duplex stream
 * ../watch.ts writes a create_request to) fed by one Kubernetes watch per resource whose
 * keys the range meets, each with bookmarks.
 *
 *   - Each resource's watch resumes from its own last resourceVersion when the API server
 *     closes it (its timeout, a restart, the connection lost): nothing is lost or repeated.
 *     The stream itself never ends on its own.
 *   - 410 Gone (the version is older than the API server's etcd keeps) ends the stream as
 *     etcd would: a response with `canceled` and `compact_revision`; the store's watcher
 *     then lists again and delivers the difference (../watch.ts).
 *   - Events carry the object's key and value (`kv`, mod_revision = its resourceVersion)
 *     and the last value this stream saw for the key (`prev_kv`). Within one resource they
 *     come in revision order; across resources they interleave as the API server sends
 *     them (a revision is not global order here: readers compare revisions per key).
 *   - A bookmark becomes a progress response (no events) once every resource has one: its
 *     header.revision is the oldest of their resourceVersions.
 */
import { EventEmitter } from 'node:events';
import type { IEvent, IKeyValue, IWatchRequest, IWatchResponse } from 'etcd3';
import type { KubeWatchHandle } from './client.js';
import { header, keyValue, type KeyRange, type KubeKv } from './kv.js';
import type { KeyMapping, KubeObject } from './mapping.js';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 3000;

function response(revision: string, fields: Partial<IWatchResponse> = {}): IWatchResponse {
  return {
    header: header(revision),
    watch_id: '0',
    created: false,
    canceled: false,
    compact_revision: '0',
    cancel_reason: '',
    fragment: false,
    events: [],
    ...fields,
  };
}

function inRange(key: Buffer, r: KeyRange): boolean {
  if (r.end === undefined || r.end.length === 0) return key.equals(r.start);
  if (Buffer.compare(key, r.start) < 0) return false;
  return (r.end.length === 1 && r.end[0] === 0) || Buffer.compare(key, r.end) < 0;
}

/** One resource's Kubernetes watch, resumed from its own resourceVersion. */
class ResourceFeed {
  private handle: KubeWatchHandle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private backoff = BACKOFF_MIN_MS;
  private stopped = false;
  /** The key each object (namespace/name) was last seen under. */
  private readonly keyOf = new Map<string, string>();
  bookmarked = false;

  constructor(
    private readonly stream: KubeWatchStream,
    private readonly kv: KubeKv,
    private readonly mapping: KeyMapping,
    private readonly range: KeyRange,
    /** Events after this resourceVersion are delivered. */
    public rv: string,
  ) {}

  start(): void {
    if (this.stopped) return;
    this.handle = this.kv.api.watch(
      this.mapping.resource,
      this.rv,
      (ev) => this.onEvent(ev),
      (why) => this.onEnd(why),
    );
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.handle?.close();
  }

  private onEnd(why: string): void {
    if (this.stopped) return;
    this.handle = undefined;
    const delay = this.backoff * (0.5 + Math.random() / 2);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.stream.note(`${why}; resuming from resourceVersion ${this.rv}`);
    this.timer = setTimeout(() => this.start(), delay);
  }

  private onEvent(ev: Parameters<Parameters<KubeKv['api']['watch']>[2]>[0]): void {
    if (this.stopped) return;
    if (ev.type === 'ERROR') {
      const code = ev.object.code ?? 0;
      if (code === 410) {
        const m = /\((\d+)\)/.exec(ev.object.message ?? '');
        this.stream.compacted(
          m ? m[1]! : String(BigInt(this.rv) + 1n),
          ev.object.message ?? '410 Gone',
        );
      } else {
        // A refusal that resuming will not cure (a CRD gone, permissions): the store's
        // watcher lists again, and reports the list's failure.
        this.stream.canceledBy(
          `the API server refused the watch of ${this.mapping.resource.plural}: ${ev.object.message ?? code}`,
        );
      }
      return;
    }
    const obj = ev.object;
    const rv = obj.metadata?.resourceVersion;
    if (rv === undefined || !/^\d+$/.test(rv)) return;
    this.backoff = BACKOFF_MIN_MS;
    this.rv = rv;
    if (ev.type === 'BOOKMARK') {
      this.bookmarked = true;
      this.stream.progress();
      return;
    }
    const id = `${obj.metadata.namespace ?? ''}/${obj.metadata.name}`;
    const prevKey = this.keyOf.get(id);
    const events: IEvent[] = [];
    const now = ev.type === 'DELETED' ? undefined : this.mapping.toKv(obj, this.kv.prefix);
    if (prevKey !== undefined && prevKey !== now?.key) {
      this.keyOf.delete(id);
      events.push(this.stream.event('Delete', prevKey, undefined, rv));
    } else if (ev.type === 'DELETED' && prevKey === undefined) {
      const was = this.mapping.toKv(obj as KubeObject, this.kv.prefix);
      if (was !== undefined) events.push(this.stream.event('Delete', was.key, undefined, rv));
    }
    if (now !== undefined) {
      this.keyOf.set(id, now.key);
      events.push(this.stream.event('Put', now.key, now.value, rv));
    }
    const wanted = events.filter((e) => inRange(e.kv.key, this.range));
    if (wanted.length > 0) this.stream.deliver(rv, wanted);
  }
}

/** The duplex stream etcd3's raw watch client returns, as ../watch.ts uses it. */
export class KubeWatchStream extends EventEmitter {
  private feeds: ResourceFeed[] = [];
  private done = false;
  private readonly last = new Map<string, IKeyValue>();
  /** Why a resource's watch last broke (for the 'status' listeners of a debugging caller). */
  lastProblem: string | undefined;

  constructor(private readonly kv: KubeKv) {
    super();
  }

  write(req: IWatchRequest): void {
    if (this.done) return;
    const c = req.create_request;
    if (c === undefined) {
      if (req.cancel_request !== undefined) this.cancel();
      return;
    }
    if (this.feeds.length > 0) {
      this.fail(new Error('one watch per stream on the Kubernetes datastore'));
      return;
    }
    if (c.key === undefined) {
      this.fail(new Error('watch: no key given'));
      return;
    }
    const range: KeyRange = {
      start: Buffer.from(c.key),
      end: c.range_end === undefined ? undefined : Buffer.from(c.range_end),
    };
    const start = c.start_revision === undefined ? 0n : BigInt(c.start_revision);
    void this.open(range, start);
  }

  private async open(range: KeyRange, start: bigint): Promise<void> {
    let from: string;
    try {
      from =
        start > 0n ? (start - 1n).toString() : await this.kv.currentRevision(Date.now() + 10_000);
    } catch (e) {
      this.fail(e as Error);
      return;
    }
    if (this.done) return;
    const mappings =
      range.end === undefined || range.end.length === 0
        ? [this.kv.mappingFor(range.start.toString())?.mapping].filter(
            (m): m is KeyMapping => m !== undefined,
          )
        : this.kv.mappingsIn(range);
    this.feeds = mappings.map((m) => new ResourceFeed(this, this.kv, m, range, from));
    this.emit('data', response(from, { created: true }));
    for (const f of this.feeds) f.start();
  }

  /** An event for a key, with the last value this stream saw for it as prev_kv. */
  event(type: 'Put' | 'Delete', key: string, value: string | undefined, rv: string): IEvent {
    const kv = keyValue(key, value ?? '', rv);
    const prev = this.last.get(key);
    if (type === 'Put') this.last.set(key, kv);
    else this.last.delete(key);
    return { type, kv, prev_kv: prev as IKeyValue };
  }

  deliver(rv: string, events: IEvent[]): void {
    if (this.done) return;
    this.emit('data', response(rv, { events }));
  }

  note(why: string): void {
    this.lastProblem = why;
  }

  /** A progress response once every resource has a bookmark: the oldest of their versions. */
  progress(): void {
    if (this.done || this.feeds.some((f) => !f.bookmarked)) return;
    const oldest = this.feeds.map((f) => BigInt(f.rv)).reduce((a, b) => (b < a ? b : a));
    this.emit('data', response(oldest.toString()));
  }

  compacted(compactRevision: string, why: string): void {
    if (this.done) return;
    this.stopFeeds();
    this.emit(
      'data',
      response(compactRevision, {
        canceled: true,
        compact_revision: compactRevision,
        cancel_reason: why,
      }),
    );
  }

  canceledBy(why: string): void {
    if (this.done) return;
    this.stopFeeds();
    this.emit('data', response('0', { canceled: true, cancel_reason: why }));
  }

  private fail(e: Error): void {
    if (this.done) return;
    this.stopFeeds();
    this.emit('error', e);
  }

  private stopFeeds(): void {
    this.done = true;
    for (const f of this.feeds) f.stop();
  }

  cancel(): void {
    this.stopFeeds();
  }

  end(): void {
    this.stopFeeds();
  }
}

/** etcd3's Watcher as the agent's prefix followers use it. */
export class KubeWatcher extends EventEmitter {
  constructor(private readonly stream: KubeWatchStream) {
    super();
  }

  cancel(): Promise<void> {
    this.stream.cancel();
    return Promise.resolve();
  }
}

export interface WatchBuilder {
  key(key: string | Buffer): WatchBuilder;
  prefix(prefix: string | Buffer): WatchBuilder;
  startRevision(revision: string): WatchBuilder;
  create(): Promise<KubeWatcher>;
}

/** etcd3's `watch()` builder: 'connected', 'put' (kv), 'delete' (kv), 'error' on compaction. */
export function watchBuilder(kv: KubeKv): WatchBuilder {
  let range: { key: Buffer; range_end?: Buffer } | undefined;
  let start: string | undefined;
  const b: WatchBuilder = {
    key(k) {
      range = { key: Buffer.from(k) };
      return b;
    },
    prefix(p) {
      const key = Buffer.from(p);
      const end = Buffer.from(key);
      let i = end.length - 1;
      while (i >= 0 && end[i] === 0xff) i--;
      range = { key, range_end: i < 0 ? Buffer.from([0]) : (end[i]!++, end.subarray(0, i + 1)) };
      return b;
    },
    startRevision(r) {
      start = r;
      return b;
    },
    async create() {
      if (range === undefined) throw new Error('watch: give key() or prefix() first');
      const stream = new KubeWatchStream(kv);
      const w = new KubeWatcher(stream);
      const created = new Promise<void>((resolve, reject) => {
        stream.on('data', (res: IWatchResponse) => {
          if (res.created) {
            w.emit('connected', res);
            resolve();
          }
          if (res.canceled) {
            const err = new Error(
              res.compact_revision !== '0'
                ? `etcdserver: mvcc: required revision has been compacted (${res.cancel_reason})`
                : res.cancel_reason,
            );
            w.emit('error', err);
          }
          for (const ev of res.events)
            w.emit(ev.type === 'Put' ? 'put' : 'delete', ev.kv, ev.prev_kv);
        });
        stream.on('error', (err: Error) => {
          reject(err);
          w.emit('error', err);
        });
      });
      stream.write({
        create_request: { ...range, ...(start === undefined ? {} : { start_revision: start }) },
      });
      await created;
      return w;
    },
  };
  return b;
}

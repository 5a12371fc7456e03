/**
 * etcd's KV calls (../etcd/client.ts) served by the Kubernetes API: the client the store,
 * IPAM and the agent use when the datastore is Kubernetes. Each key range is one API
 * resource (./mapping.ts: the CRD-backed ones of ./crds.ts, Kubernetes' own objects of
 * ./native/, which win where both claim a range).
 *
 *   - range: a key is read as its object (a list by name, so that it can be read at a
 *     revision); a prefix as the list of every resource whose range it meets, each object
 *     turned into its key and value, filtered to the range, in key order (limit, more and
 *     count as etcd answers them). The first list of a call is a fresh (quorum) read; the
 *     others are read at its resourceVersion exactly, so a call sees one moment of the
 *     API server's etcd. header.revision is that resourceVersion; a key's mod_revision is
 *     its object's resourceVersion.
 *   - txn: ./txn.ts (reads as above; writes key by key, each guarded by resourceVersion).
 *   - watchClient.watch(): ./watch.ts.
 *
 * Keys no resource holds read as absent; writing one is refused (`invalid`).
 */
import type {
  IKeyValue,
  IRangeRequest,
  IRangeResponse,
  IResponseHeader,
  ITxnRequest,
  ITxnResponse,
} from 'etcd3';
import type { EtcdCallOptions, EtcdKv, EtcdWatchClient } from '../etcd/client.js';
import { etcdError } from '../etcd/errors.js';
import { DatastoreError } from '../errors.js';
import { KubeClient, isKubeApiError, type KubeList } from './client.js';
import { CRD_MAPPINGS } from './crds.js';
import type { KeyMapping, KubeObject } from './mapping.js';
import { NATIVE_MAPPINGS } from './native/index.js';
import { runTxn } from './txn.js';
import { KubeWatchStream, watchBuilder, type WatchBuilder } from './watch.js';
import { prefixEnd } from '../etcd/keys.js';

const DEFAULT_TIMEOUT_MS = 10_000;

/** [start, end): end undefined for one key, "\0" for every key from start on. */
export interface KeyRange {
  readonly start: Buffer;
  readonly end?: Buffer;
}

function inRange(key: Buffer, r: KeyRange): boolean {
  if (r.end === undefined || r.end.length === 0) return key.equals(r.start);
  if (Buffer.compare(key, r.start) < 0) return false;
  return (r.end.length === 1 && r.end[0] === 0) || Buffer.compare(key, r.end) < 0;
}

export function header(revision: string): IResponseHeader {
  return { cluster_id: '0', member_id: '0', revision, raft_term: '0' };
}

/** A key and value as etcd3 returns them; the object's resourceVersion is its mod_revision. */
export function keyValue(key: string, value: string, resourceVersion: string): IKeyValue {
  return {
    key: Buffer.from(key),
    value: Buffer.from(value),
    create_revision: resourceVersion,
    mod_revision: resourceVersion,
    version: '1',
    lease: '0',
  };
}

/** A resourceVersion as a revision: the API server's etcd revision, an integer. */
export function checkRevision(rv: string | undefined, what: string): string {
  if (rv === undefined || !/^\d+$/.test(rv))
    throw etcdError(
      'internal',
      `${what}: resourceVersion ${JSON.stringify(rv)} is not an integer; the Kubernetes datastore needs an API server whose resourceVersions are its etcd revisions`,
    );
  return rv;
}

/** A failure of the API while reading, as the etcd error kind callers tell apart. */
export function readFailure(e: unknown, what: string): Error {
  if (isKubeApiError(e, 410))
    return etcdError('compacted', `${what}: ${e.message} (required revision has been compacted)`, {
      cause: e,
    });
  // Refusals that are about this cluster, not about etcd: said in its terms.
  if (isKubeApiError(e, 401) || isKubeApiError(e, 403))
    return new DatastoreError(
      'unavailable',
      `${what}: the Kubernetes API refused this client (${e.message}): its user or service account needs tortie's ClusterRole (manifests/)`,
      [],
      { cause: e },
    );
  if (isKubeApiError(e, 404))
    return new DatastoreError(
      'unavailable',
      `${what}: ${e.message}: are tortie's CustomResourceDefinitions installed (kubectl apply -f manifests/)?`,
      [],
      { cause: e },
    );
  if (isKubeApiError(e)) {
    const kind = e.status >= 500 || e.status === 429 ? 'unavailable' : 'invalid';
    return etcdError(kind, `${what}: ${e.message}`, { cause: e });
  }
  return e instanceof Error ? e : new Error(String(e));
}

export interface KubeKvOptions {
  /** The store's key prefix ("/calico"), as the Datastore over this client uses it. */
  readonly prefix: string;
  /** Native mappings first (they win over the CRD-backed ones where both claim keys). */
  readonly mappings?: readonly KeyMapping[];
}

/** Native mappings, then every CRD mapping no native one overlaps. */
export function registerMappings(
  prefix: string,
  native: readonly KeyMapping[] = NATIVE_MAPPINGS,
  crd: readonly KeyMapping[] = CRD_MAPPINGS,
): KeyMapping[] {
  const nativePrefixes = native.map((m) => m.keyPrefix(prefix));
  const overlaps = (p: string) => nativePrefixes.some((n) => n.startsWith(p) || p.startsWith(n));
  return [...native, ...crd.filter((m) => !overlaps(m.keyPrefix(prefix)))];
}

export class KubeKv implements EtcdWatchClient {
  readonly prefix: string;
  readonly mappings: readonly KeyMapping[];
  readonly kv: EtcdKv;
  readonly watchClient: { watch(): Promise<KubeWatchStream> };

  constructor(
    readonly api: KubeClient,
    options: KubeKvOptions,
  ) {
    this.prefix = options.prefix.replace(/\/+$/, '');
    this.mappings = options.mappings ?? registerMappings(this.prefix);
    this.kv = {
      range: (req, opts) => this.range(req, opts),
      txn: (req, opts) => this.txn(req, opts),
    };
    this.watchClient = { watch: () => Promise.resolve(new KubeWatchStream(this)) };
  }

  close(): void {
    this.api.close();
  }

  /**
   * etcd3's watch builder as the agent's prefix followers use it
   * (`watch().prefix(p).startRevision(r).create()`, 'put' / 'delete' events).
   */
  watch(): WatchBuilder {
    return watchBuilder(this);
  }

  deadline(options?: EtcdCallOptions): number {
    const d = options?.deadline;
    return d === undefined
      ? Date.now() + DEFAULT_TIMEOUT_MS
      : typeof d === 'number'
        ? d
        : d.getTime();
  }

  /** The mapping that holds `key`, and the object's reference; undefined: no resource does. */
  mappingFor(
    key: string,
  ): { mapping: KeyMapping; ref: { name: string; namespace?: string } } | undefined {
    for (const mapping of this.mappings) {
      if (!key.startsWith(mapping.keyPrefix(this.prefix))) continue;
      const ref = mapping.objectRef(key, this.prefix);
      if (ref !== undefined) return { mapping, ref };
    }
    return undefined;
  }

  /** The mappings whose keys may fall in the range. */
  mappingsIn(r: KeyRange): KeyMapping[] {
    return this.mappings.filter((m) => {
      const kp = Buffer.from(m.keyPrefix(this.prefix));
      const mEnd = prefixEnd(kp);
      if (r.end === undefined || r.end.length === 0)
        return r.start.toString().startsWith(kp.toString());
      const toEnd = r.end.length === 1 && r.end[0] === 0;
      return Buffer.compare(r.start, mEnd) < 0 && (toEnd || Buffer.compare(kp, r.end) < 0);
    });
  }

  /** The resource's objects as keys and values in `r`, and the list's resourceVersion. */
  async listIn(
    m: KeyMapping,
    r: KeyRange,
    opts: { revision?: string; deadline: number; name?: { name: string; namespace?: string } },
  ): Promise<{ kvs: IKeyValue[]; revision: string; objects: KubeObject[] }> {
    let list: KubeList;
    try {
      list = await this.api.list(m.resource, {
        resourceVersion: opts.revision,
        deadline: opts.deadline,
        ...(opts.name === undefined
          ? {}
          : {
              fieldSelector: `metadata.name=${opts.name.name}`,
              ...(m.resource.namespaced ? { namespace: opts.name.namespace } : {}),
            }),
      });
    } catch (e) {
      throw readFailure(e, `listing ${m.resource.plural}`);
    }
    const revision = checkRevision(
      list.metadata.resourceVersion,
      `the list of ${m.resource.plural}`,
    );
    const kvs: IKeyValue[] = [];
    for (const obj of list.items) {
      const kv = m.toKv(obj, this.prefix);
      if (kv === undefined) continue;
      const kb = Buffer.from(kv.key);
      if (!inRange(kb, r)) continue;
      kvs.push(keyValue(kv.key, kv.value, checkRevision(obj.metadata.resourceVersion, kv.key)));
    }
    return { kvs, revision, objects: list.items };
  }

  /** The API server's current revision (a cheap list). */
  async currentRevision(deadline: number): Promise<string> {
    const m = this.mappings[this.mappings.length - 1]!;
    try {
      const res = await this.api.request<KubeList>('GET', KubeClient.path(m.resource), {
        query: { limit: '1' },
        deadline,
      });
      return checkRevision(res.metadata?.resourceVersion, `the list of ${m.resource.plural}`);
    } catch (e) {
      throw readFailure(e, `reading the API server's revision`);
    }
  }

  /** Every key and value in the range at `revision` (or now), sorted; the revision read at. */
  async read(
    r: KeyRange,
    opts: { revision?: string; deadline: number },
  ): Promise<{ kvs: IKeyValue[]; revision: string }> {
    if (opts.revision !== undefined && opts.revision !== '0') checkRevision(opts.revision, 'range');
    const pinned = opts.revision === '0' ? undefined : opts.revision;
    if (r.end === undefined || r.end.length === 0) {
      const found = this.mappingFor(r.start.toString());
      if (found === undefined)
        return { kvs: [], revision: pinned ?? (await this.currentRevision(opts.deadline)) };
      const res = await this.listIn(found.mapping, r, {
        ...opts,
        revision: pinned,
        name: found.ref,
      });
      return { kvs: res.kvs, revision: res.revision };
    }
    const mappings = this.mappingsIn(r);
    if (mappings.length === 0)
      return { kvs: [], revision: pinned ?? (await this.currentRevision(opts.deadline)) };
    const first = await this.listIn(mappings[0]!, r, { ...opts, revision: pinned });
    const rest = await Promise.all(
      mappings.slice(1).map((m) => this.listIn(m, r, { ...opts, revision: first.revision })),
    );
    const kvs = [first, ...rest].flatMap((l) => l.kvs).sort((a, b) => Buffer.compare(a.key, b.key));
    return { kvs, revision: first.revision };
  }

  async range(req: IRangeRequest, options?: EtcdCallOptions): Promise<IRangeResponse> {
    if (req.key === undefined) throw etcdError('invalid', 'range: no key given');
    const { kvs, revision } = await this.read(
      {
        start: Buffer.from(req.key),
        end: req.range_end === undefined ? undefined : Buffer.from(req.range_end),
      },
      {
        revision: req.revision === undefined ? undefined : String(req.revision),
        deadline: this.deadline(options),
      },
    );
    return rangeResponse(kvs, revision, req);
  }

  txn(req: ITxnRequest, options?: EtcdCallOptions): Promise<ITxnResponse> {
    return runTxn(this, req, this.deadline(options));
  }
}

/** A read's keys as etcd answers a range request (limit, keys_only, count_only). */
export function rangeResponse(
  kvs: IKeyValue[],
  revision: string,
  req: IRangeRequest,
): IRangeResponse {
  const limit = Number(req.limit ?? 0);
  const shown = limit > 0 ? kvs.slice(0, limit) : kvs;
  return {
    header: header(revision),
    kvs: req.count_only
      ? []
      : req.keys_only
        ? shown.map((kv) => ({ ...kv, value: Buffer.alloc(0) }))
        : shown,
    more: shown.length < kvs.length,
    count: String(kvs.length),
  };
}

/**
 * The resource store on etcd v3: validated writes in one guarded transaction per call,
 * reads with resourceVersion, label edits, and resumable watches.
 */
import { randomUUID } from 'node:crypto';
import type { Etcd3, ICompare, IRequestOp } from 'etcd3';
import type { EtcdClientFactory, EtcdKvClient, EtcdWatchClient } from './etcd/client.js';
import { labelKeyProblem, labelValueProblem } from '../policy/fields.js';
import { decodeKeyValue, encodeResource, type ResourceOf, type StoredResource } from './codec.js';
import { createEtcdClient, DEFAULT_TIMEOUT_MS, type ConnectOptions } from './etcd/connect.js';
import { DatastoreError, detail, fromEtcdError, type ErrorDetail } from './errors.js';
import {
  DEFAULT_PREFIX,
  describeRef,
  KINDS,
  kindPrefix,
  resourceKey,
  type KindName,
} from './kinds.js';
import {
  deleteRefusal,
  isResolved,
  resolveRef,
  type DeleteRefusal,
  type ResolvedRef,
} from './refs.js';
import { validateObject, type ValidObject } from './schema/index.js';
import type { IPPoolSpec } from './schema/ippool.js';
import {
  deleteOp,
  guardedWrite,
  modEquals,
  prefixUnchangedSince,
  putOp,
  readSnapshot,
  type CallOptions,
  type Snapshot,
} from './txn.js';
import { dominantKind, planWrites, type WriteMode } from './write-plan.js';
import { ResourceWatcher, type WatchHandler, type WatchOptions } from './watch.js';

export interface WriteResult {
  readonly action: 'created' | 'updated' | 'unchanged' | 'deleted';
  /** As stored (for deletes: as it was), with its resourceVersion. */
  readonly resource: StoredResource;
}

export interface LabelResult {
  readonly resource: StoredResource;
  readonly changed: boolean;
}

/** Attempts of a read-plan-write cycle that lost a race before the call gives up. */
const MAX_ATTEMPTS = 10;

function asList(input: unknown): unknown[] {
  return Array.isArray(input) ? input : [input];
}

function pause(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
}

/**
 * The store over an etcd client of type C: by default the `etcd3` package's; any client
 * with the KV calls of ./client.ts carries everything but `watch`, which needs a client
 * with etcd's watch stream too.
 */
export class Datastore<C extends EtcdKvClient = Etcd3> {
  private readonly watchers = new Set<ResourceWatcher>();

  private constructor(
    /** The raw etcd client, shared with IPAM (same deadlines and endpoints). */
    readonly etcd: C,
    /** Key prefix of everything tortie stores, without a trailing "/". */
    readonly prefix: string,
    readonly endpoints: readonly string[],
    readonly timeoutMs: number,
    private readonly ownsClient: boolean,
  ) {}

  /**
   * A store on these endpoints; nothing is dialled until the first call. The client is
   * made by `createClient` from the normalised settings, by default the `etcd3` package's
   * (loaded then, not before). close() closes it.
   */
  static connect(options: ConnectOptions): Promise<Datastore<Etcd3>>;
  static connect<C extends EtcdKvClient>(
    options: ConnectOptions,
    createClient: EtcdClientFactory<C>,
  ): Promise<Datastore<C>>;
  static async connect(
    options: ConnectOptions,
    createClient?: EtcdClientFactory<EtcdKvClient>,
  ): Promise<Datastore<EtcdKvClient>> {
    const { etcd, endpoints } =
      createClient === undefined
        ? await createEtcdClient(options)
        : await createEtcdClient(options, createClient);
    return new Datastore<EtcdKvClient>(
      etcd,
      normalisePrefix(options.prefix),
      endpoints,
      options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      true,
    );
  }

  /** A store over a client the caller owns: close() cancels watchers but leaves the client open. */
  static fromClient<C extends EtcdKvClient>(
    etcd: C,
    options: { prefix?: string; timeoutMs?: number; endpoints?: string[] } = {},
  ): Datastore<C> {
    return new Datastore(
      etcd,
      normalisePrefix(options.prefix),
      options.endpoints ?? ['(shared client)'],
      options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      false,
    );
  }

  /** Cancels this store's watchers, then closes the client (if connect() made it). */
  async close(): Promise<void> {
    await Promise.all([...this.watchers].map((w) => w.cancel()));
    this.watchers.clear();
    if (this.ownsClient) this.etcd.close();
  }

  // --- writes -------------------------------------------------------------------------

  /**
   * Creates or updates every object, all or nothing. `seenAbsent`: the caller read these
   * keys a moment ago and found none, so the first attempt writes them as new without
   * reading them again (one round trip instead of two); it is guarded on their absence,
   * and if any appeared meanwhile the write reads and plans again as usual.
   */
  apply(objects: unknown, options: { seenAbsent?: boolean } = {}): Promise<WriteResult[]> {
    return this.write('apply', asList(objects), options.seenAbsent === true);
  }

  /** Creates every object; refused (nothing written) if any of them exists. */
  create(objects: unknown): Promise<WriteResult[]> {
    return this.write('create', asList(objects));
  }

  /**
   * Replaces every object; refused if any is missing, or carries a
   * metadata.resourceVersion other than the stored one.
   */
  replace(objects: unknown): Promise<WriteResult[]> {
    return this.write('replace', asList(objects));
  }

  /** Deletes objects or `{kind, name, namespace}` references, all or nothing. */
  async delete(
    targets: unknown,
    options: { ignoreNotFound?: boolean } = {},
  ): Promise<WriteResult[]> {
    const list = asList(targets);
    const refs: ResolvedRef[] = [];
    const refused: ErrorDetail[] = [];
    list.forEach((t, i) => {
      const r = resolveRef(t, list.length > 1 ? i : undefined);
      if (isResolved(r)) refs.push(r);
      else refused.push(r);
    });
    if (refused.length > 0) throw DatastoreError.fromDetails('invalid', refused);
    const keys = refs.map((r) => this.keyOf(r.kind, r.name, r.namespace));
    this.refuseDuplicates(
      keys,
      refs.map((r) => describeRef(r)),
    );
    return this.call(async (callOptions) => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const snap = await readSnapshot(this.etcd, { keys }, callOptions);
        const refusals: DeleteRefusal[] = [];
        const found: { key: string; resource: StoredResource }[] = [];
        refs.forEach((ref, i) => {
          const kv = snap.keys.get(keys[i]!);
          const resource = kv === undefined ? undefined : decodeKeyValue(kv, this.prefix).resource;
          const refusal = deleteRefusal(ref, resource, refs.length > 1 ? i : undefined);
          if (refusal !== undefined) refusals.push(refusal);
          else if (resource !== undefined) found.push({ key: keys[i]!, resource });
        });
        const problems = refusals.filter(
          (r) => !(options.ignoreNotFound && r.kind === 'not-found'),
        );
        if (problems.length > 0) {
          const kind = problems.some((p) => p.kind === 'not-found') ? 'not-found' : 'conflict';
          throw DatastoreError.fromDetails(
            kind,
            problems.map((p) => p.detail),
          );
        }
        if (found.length === 0) return [];
        const res = await guardedWrite(
          this.etcd,
          found.map((f) => modEquals(f.key, f.resource.metadata.resourceVersion!)),
          found.map((f) => deleteOp(f.key)),
          callOptions,
        );
        if (res.succeeded)
          return found.map((f) => ({ action: 'deleted' as const, resource: f.resource }));
        await pause(attempt);
      }
      throw this.contention('delete');
    });
  }

  /**
   * Sets (string) or removes (null) labels. Changing an existing label's value needs
   * `overwrite`, as `kubectl label` does.
   */
  async label(
    kind: KindName,
    name: string,
    namespace: string | undefined,
    changes: Readonly<Record<string, string | null>>,
    options: { overwrite?: boolean } = {},
  ): Promise<LabelResult> {
    const ns = this.namespaceFor(kind, namespace);
    const who = describeRef({ kind, name, namespace: ns });
    const invalid = Object.entries(changes).flatMap(([k, v]) => {
      const problem = labelKeyProblem(k) ?? (v === null ? undefined : labelValueProblem(v));
      return problem === undefined
        ? []
        : [detail(who, `metadata.labels[${JSON.stringify(k)}]`, problem)];
    });
    if (invalid.length > 0) throw DatastoreError.fromDetails('invalid', invalid);
    const key = this.keyOf(kind, name, ns);
    return this.call(async (callOptions) => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        const snap = await readSnapshot(this.etcd, { keys: [key] }, callOptions);
        const kv = snap.keys.get(key);
        if (kv === undefined) throw new DatastoreError('not-found', `${who} not found`);
        const current = decodeKeyValue(kv, this.prefix).resource;
        const labels: Record<string, string> = { ...(current.metadata.labels ?? {}) };
        for (const [k, v] of Object.entries(changes)) {
          if (v === null) {
            delete labels[k];
          } else {
            if (labels[k] !== undefined && labels[k] !== v && !options.overwrite) {
              throw new DatastoreError(
                'conflict',
                `${who}: label ${k} already has the value ${JSON.stringify(labels[k])}; pass overwrite (--overwrite) to change it`,
              );
            }
            labels[k] = v;
          }
        }
        const next: StoredResource = { ...current, metadata: { ...current.metadata, labels } };
        const value = encodeResource(next);
        if (value === encodeResource(current)) return { resource: current, changed: false };
        const res = await guardedWrite(
          this.etcd,
          [modEquals(key, kv.mod_revision)],
          [putOp(key, value)],
          callOptions,
        );
        if (res.succeeded) {
          return {
            resource: { ...next, metadata: { ...next.metadata, resourceVersion: res.revision } },
            changed: true,
          };
        }
        await pause(attempt);
      }
      throw this.contention('label');
    });
  }

  // --- reads --------------------------------------------------------------------------

  /** One object, or undefined when it does not exist. */
  async get<K extends KindName>(
    kind: K,
    name: string,
    namespace?: string,
  ): Promise<ResourceOf<K> | undefined> {
    const key = this.keyOf(kind, name, this.namespaceFor(kind, namespace));
    return this.call(async (options) => {
      const snap = await readSnapshot(this.etcd, { keys: [key] }, options);
      const kv = snap.keys.get(key);
      return kv === undefined
        ? undefined
        : (decodeKeyValue(kv, this.prefix).resource as ResourceOf<K>);
    });
  }

  /** Every object of a kind (one namespace, or all of them when none is given), by key order. */
  async list<K extends KindName>(
    kind: K,
    options: { namespace?: string } = {},
  ): Promise<ResourceOf<K>[]> {
    return (await this.listWithRevision(kind, options)).items;
  }

  /** As list, with the store revision the list was read at (watch from it to follow changes). */
  async listWithRevision<K extends KindName>(
    kind: K,
    options: { namespace?: string } = {},
  ): Promise<{ items: ResourceOf<K>[]; revision: string }> {
    const prefix = kindPrefix(
      kind,
      KINDS[kind].namespaced ? options.namespace : undefined,
      this.prefix,
    );
    return this.call(async (callOptions) => {
      const snap = await readSnapshot(this.etcd, { prefixes: [prefix] }, callOptions);
      const items = (snap.prefixes.get(prefix) ?? []).map(
        (kv) => decodeKeyValue(kv, this.prefix).resource as ResourceOf<K>,
      );
      return { items, revision: snap.revision };
    });
  }

  /**
   * Follows changes to these kinds; see ResourceWatcher for the delivery guarantees.
   * Resolves once the initial state (without `revision`) is queued for the handler.
   * Needs a client with etcd's watch stream (the `etcd3` package's has it).
   */
  async watch(
    this: Datastore<EtcdWatchClient>,
    kinds: KindName | readonly KindName[],
    handler: WatchHandler,
    options: WatchOptions = {},
  ): Promise<ResourceWatcher> {
    const list = typeof kinds === 'string' ? [kinds] : [...kinds];
    const w = await ResourceWatcher.start(
      {
        etcd: this.etcd,
        prefix: this.prefix,
        endpoints: this.endpoints,
        callOptions: () => this.callOptions(),
        onCancel: (cancelled) => this.watchers.delete(cancelled),
      },
      list,
      handler,
      options,
    );
    this.watchers.add(w);
    return w;
  }

  /** The etcd key of an object (namespaced kinds default to namespace "default"). */
  keyOf(kind: KindName, name: string, namespace?: string): string {
    return resourceKey(kind, name, this.namespaceFor(kind, namespace), this.prefix);
  }

  // --- internals ----------------------------------------------------------------------

  private namespaceFor(kind: KindName, namespace: string | undefined): string | undefined {
    return KINDS[kind].namespaced ? (namespace ?? 'default') : undefined;
  }

  private callOptions(): CallOptions {
    return { deadline: Date.now() + this.timeoutMs };
  }

  /** Runs `fn` under one deadline; etcd failures become DatastoreError. */
  private async call<T>(fn: (options: CallOptions) => Promise<T>): Promise<T> {
    try {
      return await fn(this.callOptions());
    } catch (e) {
      throw fromEtcdError(e, this.endpoints);
    }
  }

  private contention(what: string): DatastoreError {
    return new DatastoreError(
      'conflict',
      `${what}: the objects kept changing under this call (${MAX_ATTEMPTS} attempts); try again`,
    );
  }

  private refuseDuplicates(keys: readonly string[], names: readonly string[]): void {
    const first = new Map<string, number>();
    const dups: ErrorDetail[] = [];
    keys.forEach((k, i) => {
      const j = first.get(k);
      if (j === undefined) first.set(k, i);
      else
        dups.push(
          detail(names[i]!, '', `appears twice in one call (objects ${j + 1} and ${i + 1})`, i),
        );
    });
    if (dups.length > 0) throw DatastoreError.fromDetails('invalid', dups);
  }

  private validateAll(objects: readonly unknown[]): ValidObject[] {
    const valid: ValidObject[] = [];
    const refused: ErrorDetail[] = [];
    objects.forEach((o, i) => {
      const v = validateObject(o, objects.length > 1 ? i : undefined);
      if (v.ok) valid.push(v.object);
      else refused.push(...v.details);
    });
    if (refused.length > 0) throw DatastoreError.fromDetails('invalid', refused);
    return valid;
  }

  private async write(
    mode: WriteMode,
    objects: readonly unknown[],
    seenAbsent = false,
  ): Promise<WriteResult[]> {
    if (objects.length === 0) return [];
    const valid = this.validateAll(objects);
    const keys = valid.map((o) => this.keyOf(o.info.name, o.metadata.name, o.metadata.namespace));
    this.refuseDuplicates(
      keys,
      valid.map((o) =>
        describeRef({ kind: o.info.name, name: o.metadata.name, namespace: o.metadata.namespace }),
      ),
    );
    const poolsPrefix = kindPrefix('IPPool', undefined, this.prefix);
    const writesPools = valid.some((o) => o.info.name === 'IPPool');
    const uids = valid.map(() => randomUUID());
    const now = new Date().toISOString();

    return this.call(async (callOptions) => {
      for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
        // The first attempt of a write whose keys the caller saw absent plans from that
        // (every compare below is then "still absent"); IPPools need their prefix read.
        const hinted = attempt === 1 && seenAbsent && !writesPools;
        const snap: Snapshot = hinted
          ? { revision: '0', keys: new Map(), prefixes: new Map() }
          : await readSnapshot(
              this.etcd,
              { keys, prefixes: writesPools ? [poolsPrefix] : [] },
              callOptions,
            );
        const current = keys.map((k) => {
          const kv = snap.keys.get(k);
          return kv === undefined ? undefined : decodeKeyValue(kv, this.prefix).resource;
        });
        const pools = (snap.prefixes.get(poolsPrefix) ?? []).map(
          (kv) => decodeKeyValue(kv, this.prefix).resource as unknown as StoredResource<IPPoolSpec>,
        );
        const plan = planWrites({ mode, objects: valid, current, pools, now, uids });
        if (plan.refusals.length > 0) {
          throw DatastoreError.fromDetails(
            dominantKind(plan.refusals),
            plan.refusals.map((r) => r.detail),
          );
        }
        // Unchanged objects are not written, nor objects an earlier attempt of this
        // very call already created (their stored uid is the one this call made).
        const changing = plan.writes.filter(
          (w) => w.action !== 'unchanged' && current[w.index]?.metadata.uid !== uids[w.index],
        );
        if (changing.length === 0) {
          return plan.writes.map((w) => ({
            action: w.action,
            resource: current[w.index] ?? w.resource,
          }));
        }
        const compares: ICompare[] = keys.map((k, i) =>
          modEquals(k, current[i]?.metadata.resourceVersion ?? '0'),
        );
        if (writesPools) compares.push(prefixUnchangedSince(poolsPrefix, snap.revision));
        const ops: IRequestOp[] = changing.map((w) => putOp(keys[w.index]!, w.value));
        const res = await guardedWrite(this.etcd, compares, ops, callOptions);
        if (res.succeeded) {
          return plan.writes.map((w) => {
            const wrote = changing.includes(w);
            const resource = wrote
              ? {
                  ...w.resource,
                  metadata: { ...w.resource.metadata, resourceVersion: res.revision },
                }
              : (current[w.index] ?? w.resource);
            return { action: w.action, resource };
          });
        }
        // A stale hint is not contention: read and try again at once.
        if (!hinted) await pause(attempt);
      }
      throw this.contention(mode);
    });
  }
}

function normalisePrefix(prefix: string | undefined): string {
  const p = prefix ?? DEFAULT_PREFIX;
  if (!p.startsWith('/'))
    throw new DatastoreError('invalid', `the key prefix ${JSON.stringify(p)} must start with "/"`);
  return p.replace(/\/+$/, '');
}

/**
 * Exact settling for a ClusterLab with inline agents: "the dataplane has every change made
 * so far" as a store revision, not a sleep.
 *
 *  - Every write the lab makes is noted with its store revision: an apply's results carry
 *    the resourceVersion (the key's mod_revision) of what is stored; a delete's revision
 *    is read from the lab's own watch, which delivers the delete event of that key.
 *  - `waitForDataplane` waits until every node's agent has completed a reconcile of a
 *    model holding every change up to the highest noted revision
 *    (`Agent.waitForRevision`: the agent records the revision of its model when a
 *    reconcile starts, and marks it programmed when that reconcile succeeded).
 *
 * Writes made by others (the CNI plugin's WorkloadEndpoints) are noted by the caller
 * with `note(revision)`.
 */
import { WATCHED_KINDS } from '../../agent/index.js';
import {
  kindOfObject,
  type ResourceWatcher,
  type WatchEvent,
  type WriteResult,
} from '../../datastore/index.js';
import type { ClusterLab } from './cluster-lab.js';

const DEFAULT_TIMEOUT_MS = 30_000;

function refKey(kind: string, namespace: string | undefined, name: string): string {
  return `${kind}/${namespace ?? ''}/${name}`;
}

export class DataplaneSettle {
  private target = 0n;
  /** kind/namespace/name → revision of the last delete event the lab's watch delivered. */
  private readonly deletedAt = new Map<string, bigint>();
  private readonly waiters = new Set<() => void>();
  private watcher: ResourceWatcher | undefined;
  private closed = false;

  private constructor(
    private readonly lab: ClusterLab,
    private readonly timeoutMs: number,
  ) {}

  /** Starts following the store (changes from now on) for the delete revisions. */
  static async start(lab: ClusterLab, opts: { timeoutMs?: number } = {}): Promise<DataplaneSettle> {
    const store = lab.store;
    if (store === undefined) throw new Error('the cluster lab has no store');
    for (const n of lab.nodes) {
      if (n.agent === undefined)
        throw new Error(
          `node ${n.name}: exact settling needs in-process agents (agents: 'inline')`,
        );
    }
    const settle = new DataplaneSettle(lab, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const { revision } = await store.listWithRevision('Namespace');
    settle.target = BigInt(revision);
    settle.watcher = await store.watch(WATCHED_KINDS, (ev) => settle.onEvent(ev), { revision });
    return settle;
  }

  /** The highest store revision noted so far: what `waitForDataplane` waits for. */
  get revision(): bigint {
    return this.target;
  }

  /** A change at this store revision must be in the dataplane before the next wait ends. */
  note(revision: string | bigint | undefined): void {
    if (revision === undefined) return;
    const r = BigInt(revision);
    if (r > this.target) this.target = r;
  }

  /** Notes what apply/create/replace stored (unchanged objects too: they may be recent). */
  noteWrites(results: readonly WriteResult[]): void {
    for (const r of results) this.note(r.resource.metadata.resourceVersion);
  }

  /** Notes the revisions of deletes: waits until the lab's watch delivered each of them. */
  async noteDeletes(results: readonly WriteResult[]): Promise<void> {
    await Promise.all(
      results
        .filter((r) => r.action === 'deleted')
        .map(async (r) => {
          const kind =
            kindOfObject(r.resource.apiVersion, r.resource.kind)?.name ?? r.resource.kind;
          const key = refKey(kind, r.resource.metadata.namespace, r.resource.metadata.name);
          const before = BigInt(r.resource.metadata.resourceVersion ?? '0');
          this.note(await this.deleteRevision(key, before));
        }),
    );
  }

  /**
   * Resolves once every node's agent has programmed a model holding every noted change;
   * rejects naming the agents that did not within the timeout.
   */
  async waitForDataplane(): Promise<void> {
    const want = this.target;
    const results = await Promise.allSettled(
      this.lab.nodes.map((n) => n.agent!.waitForRevision(want, this.timeoutMs)),
    );
    const failed = results.flatMap((r) =>
      r.status === 'rejected' ? [(r.reason as Error).message] : [],
    );
    if (failed.length > 0) throw new Error(`dataplane not settled: ${failed.join('; ')}`);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.cancel();
    for (const w of [...this.waiters]) w();
  }

  private onEvent(ev: WatchEvent): void {
    if (ev.type !== 'delete') return;
    this.deletedAt.set(refKey(ev.kind, ev.namespace, ev.name), BigInt(ev.revision));
    for (const w of [...this.waiters]) w();
  }

  /** The revision of the delete of `key` that came after `after` (its last write). */
  private deleteRevision(key: string, after: bigint): Promise<bigint> {
    const seen = () => {
      const at = this.deletedAt.get(key);
      return at !== undefined && at > after ? at : undefined;
    };
    const now = seen();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const check = () => {
        const at = seen();
        if (at === undefined && !this.closed) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        if (at !== undefined) resolve(at);
        else reject(new Error(`the lab was closed while waiting for the delete of ${key}`));
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `the delete of ${key} did not reach the lab's watch within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      this.waiters.add(check);
    });
  }
}

/**
 * Exact settling on the Kubernetes datastore: "every agent has programmed every change the
 * lab wrote", by resourceVersion per kind, not by sleeps.
 *
 * resourceVersions of different API resources are not ordered against each other for a
 * client (the API promises order per resource only), so the agents report, and the lab
 * waits for, a programmed revision per kind:
 *
 *   - every write the lab makes through the API is noted with the kind it is to tortie
 *     (a Pod → WorkloadEndpoint, a Namespace → Namespace, a NetworkPolicy →
 *     K8sNetworkPolicy) and the resourceVersion the API answered with;
 *   - a delete's revision is not in the API's answer (that is the object as it was): the
 *     lab follows the resources it deletes from (a watch of NetworkPolicies, resumed from
 *     its last resourceVersion when the API server ends it) and notes the revision of the
 *     DELETED event;
 *   - `waitForDataplane` waits until every agent's /status `programmedRevisions` has, for
 *     each kind noted, at least the highest revision noted.
 */
import type { AgentProcess } from './agent-process.js';
import type { KubeApi, KubeWatch, KubeWatchEvent } from './kube-api.js';
import { paths } from './kubelet.js';

const DEFAULT_TIMEOUT_MS = 30_000;

/** tortie's kind for each resource the lab writes. */
export const KIND_OF_RESOURCE = {
  pods: 'WorkloadEndpoint',
  namespaces: 'Namespace',
  networkpolicies: 'K8sNetworkPolicy',
} as const;

export type LabWrittenKind = (typeof KIND_OF_RESOURCE)[keyof typeof KIND_OF_RESOURCE];

export class KubeSettle {
  /** kind → the highest resourceVersion written. */
  private readonly targets = new Map<string, bigint>();
  /** "ns/name" → revision of the last DELETED event of that NetworkPolicy. */
  private readonly deletedAt = new Map<string, bigint>();
  private readonly waiters = new Set<() => void>();
  private watch: KubeWatch | undefined;
  private lastSeen = '0';
  private closed = false;
  private watchError: Error | undefined;

  private constructor(
    private readonly api: KubeApi,
    private readonly agents: () => readonly AgentProcess[],
    private readonly timeoutMs: number,
  ) {}

  /** Starts following NetworkPolicies (for delete revisions) from now on. */
  static async start(
    api: KubeApi,
    agents: () => readonly AgentProcess[],
    opts: { timeoutMs?: number } = {},
  ): Promise<KubeSettle> {
    const s = new KubeSettle(api, agents, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const { resourceVersion } = await api.list(paths.networkPolicies());
    s.lastSeen = resourceVersion;
    s.follow();
    return s;
  }

  /** What `waitForDataplane` waits for: kind → revision. */
  get revisions(): ReadonlyMap<string, bigint> {
    return this.targets;
  }

  /** A write of `kind` the API answered with `resourceVersion`. */
  note(kind: LabWrittenKind, resourceVersion: string | undefined): void {
    if (resourceVersion === undefined) return;
    const rv = BigInt(resourceVersion);
    if (rv > (this.targets.get(kind) ?? 0n)) this.targets.set(kind, rv);
  }

  /**
   * The NetworkPolicy `namespace/name` was deleted; its last resourceVersion was `before`:
   * notes the revision of its delete once the watch delivered it.
   */
  async noteNetworkPolicyDelete(namespace: string, name: string, before: string): Promise<void> {
    const key = `${namespace}/${name}`;
    const after = BigInt(before);
    const seen = () => {
      const at = this.deletedAt.get(key);
      return at !== undefined && at > after ? at : undefined;
    };
    const rv = await new Promise<bigint>((resolve, reject) => {
      const check = () => {
        const at = seen();
        if (at === undefined && !this.closed && this.watchError === undefined) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        if (at !== undefined) resolve(at);
        else
          reject(
            this.watchError ??
              new Error(`the lab was closed while waiting for the delete of ${key}`),
          );
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(
          new Error(
            `the delete of NetworkPolicy ${key} did not reach the lab's watch within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      this.waiters.add(check);
      check();
    });
    this.note('K8sNetworkPolicy', String(rv));
  }

  /**
   * Resolves once every agent has programmed every noted change (per kind); rejects
   * naming the agents that did not within the timeout.
   */
  async waitForDataplane(): Promise<void> {
    const want = new Map(this.targets);
    const results = await Promise.allSettled(
      this.agents().map((a) => a.waitForKindRevisions(want, this.timeoutMs)),
    );
    const failed = results.flatMap((r) =>
      r.status === 'rejected' ? [(r.reason as Error).message] : [],
    );
    if (failed.length > 0) throw new Error(`dataplane not settled: ${failed.join('; ')}`);
  }

  close(): void {
    this.closed = true;
    this.watch?.close();
    for (const w of [...this.waiters]) w();
  }

  /** One watch of every namespace's NetworkPolicies, resumed where it ended. */
  private follow(): void {
    if (this.closed) return;
    this.watch = this.api.watch(
      paths.networkPolicies(),
      this.lastSeen,
      (ev) => this.onEvent(ev),
      (err) => {
        if (this.closed) return;
        // 410 Gone: the revision fell out of the API server's window. A delete the lab
        // waits for would be lost: fail the waits, loudly, rather than guess.
        if (err !== undefined && /: 410 |\b410\b/.test(err.message)) {
          this.watchError = new Error(
            `the lab's NetworkPolicy watch expired (410 Gone at ${this.lastSeen})`,
          );
          for (const w of [...this.waiters]) w();
          return;
        }
        setTimeout(() => this.follow(), err === undefined ? 0 : 200);
      },
    );
  }

  private onEvent(ev: KubeWatchEvent): void {
    if (ev.type === 'ERROR') {
      const status = ev.object as unknown as { code?: number; message?: string };
      this.watch?.close();
      if (status.code === 410) {
        this.watchError = new Error(
          `the lab's NetworkPolicy watch expired (410 Gone at ${this.lastSeen})`,
        );
        for (const w of [...this.waiters]) w();
      } else setTimeout(() => this.follow(), 200);
      return;
    }
    const rv = ev.object.metadata.resourceVersion;
    if (rv !== undefined) this.lastSeen = rv;
    if (ev.type !== 'DELETED' || rv === undefined) return;
    const key = `${ev.object.metadata.namespace ?? ''}/${ev.object.metadata.name}`;
    this.deletedAt.set(key, BigInt(rv));
    for (const w of [...this.waiters]) w();
  }
}

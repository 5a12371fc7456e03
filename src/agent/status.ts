/**
 * What the agent reports in the store, beside the resources, and how others read it:
 *
 *   ${prefix}/tortie/status/nodes/<node>                          the node's heartbeat
 *   ${prefix}/tortie/status/endpoints/<node>/<namespace>/<name>   an endpoint is programmed
 *
 * (under `${prefix}/tortie/`, where tortie keeps what Calico has no key for: see
 * src/datastore/kinds.ts; on the Kubernetes datastore these are tortiestatuses.tortie.io
 * objects.)
 *
 * On etcd both live on the agent's lease: when an agent stops heartbeating for a TTL, its
 * heartbeat and endpoint reports disappear. The Kubernetes API has no leases: there the
 * heartbeat carries its renew time (`heartbeatAt`) and `ttlSeconds`, is written again every
 * TTL/3, and a reader judges it with `heartbeatFresh`; a clean stop deletes it, and
 * endpoint records stay until the next agent of the node replaces them (./reporter.ts).
 *
 * `waitForEndpointProgrammed` is what the CNI plugin calls before ADD returns: the pod
 * must not run before its policy is in the maps. It uses only `etcd.kv.range`, so it
 * works over the CNI's light etcd client as well as over `etcd3`.
 */
import type { BgpSession } from '../bgp/bird.js';
import { tortieKeysPrefix, type EtcdKv } from '../datastore/index.js';
import type { ConntrackSummary } from './conntrack.js';
import type { XdpStatus } from './manager.js';
import type { ConfigReport } from './felix-config.js';
import { prefixEnd } from '../datastore/index.js';

export function statusPrefix(prefix: string): string {
  return `${tortieKeysPrefix(prefix)}status/`;
}

export function nodeStatusPrefix(prefix: string): string {
  return `${statusPrefix(prefix)}nodes/`;
}

export function nodeStatusKey(prefix: string, node: string): string {
  return `${nodeStatusPrefix(prefix)}${node}`;
}

export function endpointStatusPrefix(prefix: string, node?: string): string {
  return `${statusPrefix(prefix)}endpoints/${node === undefined ? '' : `${node}/`}`;
}

export function endpointStatusKey(
  prefix: string,
  node: string,
  namespace: string,
  name: string,
): string {
  return `${endpointStatusPrefix(prefix, node)}${namespace}/${name}`;
}

/** `${prefix}/tortie/status/endpoints/<node>/<ns>/<name>` → its parts; undefined for other keys. */
export function parseEndpointStatusKey(
  prefix: string,
  key: string,
): { node: string; namespace: string; name: string } | undefined {
  const base = endpointStatusPrefix(prefix);
  if (!key.startsWith(base)) return undefined;
  const parts = key.slice(base.length).split('/');
  if (parts.length !== 3 || parts.some((p) => p === '')) return undefined;
  return { node: parts[0]!, namespace: parts[1]!, name: parts[2]! };
}

/** The value of an endpoint status key. */
export interface EndpointStatus {
  readonly programmed: true;
  /** tortie_endpoint.policy_rev of the endpoint as written to the map. */
  readonly policyRev: number;
  /** The WorkloadEndpoint's resourceVersion the agent programmed. */
  readonly revision: string;
  readonly node: string;
  /** Host veth and endpoint id (counters and drop events carry the id). */
  readonly interfaceName: string;
  readonly ifindex: number;
  readonly endpointId: number;
  readonly ip: string;
  readonly programmedAt: string;
}

/** The value of a node heartbeat key. */
export interface NodeStatus {
  readonly node: string;
  /** The agent's version (`v<package.json version>`), for `tortie version`. */
  readonly version?: string;
  readonly ipv4Address?: string;
  readonly pid: number;
  readonly startedAt: string;
  /** The bpffs root of this node's maps (how `tortie monitor --pin-root` finds its agent). */
  readonly pinRoot?: string;
  readonly heartbeatAt: string;
  /**
   * Set when the heartbeat is a renewed record, not lease-bound (the Kubernetes
   * datastore): it counts as alive until heartbeatAt + ttlSeconds (`heartbeatFresh`).
   */
  readonly ttlSeconds?: number;
  /** http://host:port of /healthz, /readyz, /metrics, /status. */
  readonly healthUrl?: string;
  readonly synced: boolean;
  readonly ready: boolean;
  readonly endpoints: {
    readonly local: number;
    readonly programmed: number;
    readonly unresolved: number;
  };
  readonly lastReconcile?: {
    readonly at: string;
    readonly ok: boolean;
    readonly durationMs: number;
    readonly error?: string;
  };
  readonly routes: number;
  /** Dropped packets by reason since the maps were created. */
  readonly drops: Readonly<Record<string, number>>;
  /** tortie_ct's fill and its biggest creators (BPF dataplane only; agent/conntrack.ts). */
  readonly conntrack?: ConntrackSummary;
  /** With `routing: bgp`: BIRD's BGP sessions. */
  readonly bgp?: { readonly sessions: readonly BgpSession[] };
  /** The uplink's XDP deny list (BPF dataplane): its mode, size, what is not accelerated. */
  readonly xdp?: XdpStatus;
  /**
   * FelixConfiguration and AgentConfiguration as the agent takes them: what is applied,
   * what waits for a restart, what is not implemented (`tortie node status` lists it).
   */
  readonly config?: ConfigReport;
}

export interface WaitOptions {
  readonly node: string;
  readonly namespace: string;
  /** The WorkloadEndpoint's name. */
  readonly name: string;
  readonly timeoutMs: number;
  /**
   * The WorkloadEndpoint's resourceVersion as the caller wrote it: a status for an older
   * version (e.g. the same name's previous pod) does not count.
   */
  readonly revision?: string;
  /** Poll interval bounds (ms); defaults 10 and 100. */
  readonly minIntervalMs?: number;
  readonly maxIntervalMs?: number;
}

/** ADD must fail (and the runtime retry): the endpoint was not programmed in time. */
export class EndpointNotProgrammedError extends Error {
  override readonly name = 'EndpointNotProgrammedError';
  constructor(
    message: string,
    readonly lastError?: unknown,
  ) {
    super(message);
  }
}

/**
 * Anything with the store's raw etcd client and prefix: a Datastore over any client (the
 * `etcd3` package's, or the CNI plugin's JSON-gateway one).
 */
export interface StatusReader {
  readonly etcd: { readonly kv: Pick<EtcdKv, 'range'> };
  readonly prefix: string;
}

function atLeast(revision: string, min: string | undefined): boolean {
  if (min === undefined) return true;
  try {
    return BigInt(revision) >= BigInt(min);
  } catch {
    return false;
  }
}

/** The shortest deadline a status read is made with (ms). */
const MIN_READ_MS = 50;

/**
 * Resolves with the endpoint's status once the agent of `node` reports it programmed
 * (at `revision` or later); rejects with EndpointNotProgrammedError after `timeoutMs`.
 * etcd failures while waiting are retried until the deadline (and named in the error).
 */
export async function waitForEndpointProgrammed(
  ds: StatusReader,
  opts: WaitOptions,
): Promise<EndpointStatus> {
  const key = endpointStatusKey(ds.prefix, opts.node, opts.namespace, opts.name);
  const deadline = Date.now() + opts.timeoutMs;
  const minInterval = opts.minIntervalMs ?? 10;
  const maxInterval = opts.maxIntervalMs ?? 100;
  let interval = minInterval;
  let lastError: unknown;
  let seen: EndpointStatus | undefined;
  for (;;) {
    const left = deadline - Date.now();
    // No read with a deadline too short to be answered: it would fail as DEADLINE_EXCEEDED,
    // and a long-lived client (the agent's CNI server) counts such failures against etcd in
    // its circuit breaker, which then refuses the rollback that follows the timeout.
    if (left < MIN_READ_MS) break;
    try {
      const res = await ds.etcd.kv.range(
        { key: Buffer.from(key) },
        { deadline: Date.now() + Math.min(left, 2000) },
      );
      lastError = undefined;
      const kv = res.kvs[0];
      if (kv !== undefined) {
        const status = JSON.parse(kv.value.toString()) as EndpointStatus;
        seen = status;
        if (status.programmed === true && atLeast(status.revision, opts.revision)) return status;
      }
    } catch (e) {
      lastError = e;
    }
    const wait = Math.min(interval, deadline - Date.now());
    if (wait <= 0) break;
    await new Promise((r) => setTimeout(r, wait));
    interval = Math.min(interval * 2, maxInterval);
  }
  const who = `endpoint ${opts.namespace}/${opts.name}`;
  const why =
    lastError !== undefined
      ? `etcd did not answer (${(lastError as Error).message})`
      : seen !== undefined
        ? `the agent reports revision ${seen.revision}, not yet ${opts.revision}`
        : `is \`tortie node run\` running on ${opts.node} and connected to etcd?`;
  throw new EndpointNotProgrammedError(
    `${who} was not programmed by the agent of node ${opts.node} within ${opts.timeoutMs} ms: ${why}`,
    lastError,
  );
}

/**
 * Whether a heartbeat is alive at `now` (ms): a lease-bound one is, as long as it exists
 * (etcd deletes it with its lease); a renewed one until its renew time plus its TTL.
 */
export function heartbeatFresh(status: NodeStatus, now = Date.now()): boolean {
  if (status.ttlSeconds === undefined) return true;
  const at = Date.parse(status.heartbeatAt);
  return Number.isFinite(at) && now <= at + status.ttlSeconds * 1000;
}

/** Every endpoint status of a node (for `tortie node status`). */
export async function readEndpointStatuses(
  ds: StatusReader,
  node: string,
): Promise<{ namespace: string; name: string; status: EndpointStatus }[]> {
  const prefix = endpointStatusPrefix(ds.prefix, node);
  const res = await ds.etcd.kv.range({
    key: Buffer.from(prefix),
    range_end: prefixEnd(prefix),
  });
  const out: { namespace: string; name: string; status: EndpointStatus }[] = [];
  for (const kv of res.kvs) {
    const ref = parseEndpointStatusKey(ds.prefix, kv.key.toString());
    if (ref === undefined) continue;
    try {
      out.push({ ...ref, status: JSON.parse(kv.value.toString()) as EndpointStatus });
    } catch {
      /* not ours */
    }
  }
  return out;
}

export async function readNodeStatus(
  ds: StatusReader,
  node: string,
): Promise<NodeStatus | undefined> {
  const res = await ds.etcd.kv.range({ key: Buffer.from(nodeStatusKey(ds.prefix, node)) });
  const kv = res.kvs[0];
  return kv === undefined ? undefined : (JSON.parse(kv.value.toString()) as NodeStatus);
}

/** Every node's heartbeat (for `tortie monitor`, which finds its node's agent by pin root). */
export async function readNodeStatuses(ds: StatusReader): Promise<NodeStatus[]> {
  const prefix = nodeStatusPrefix(ds.prefix);
  const res = await ds.etcd.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
  const out: NodeStatus[] = [];
  for (const kv of res.kvs) {
    try {
      out.push(JSON.parse(kv.value.toString()) as NodeStatus);
    } catch {
      /* not ours */
    }
  }
  return out;
}

/** `tortie node status`'s lines for the datastore's configuration (NodeStatus.config). */
export function configLines(report: ConfigReport | undefined): string[] {
  if (report === undefined) return [];
  if (report.sources.length === 0)
    return ['configuration     no FelixConfiguration or AgentConfiguration (local settings only)'];
  const show = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));
  const lines = [`configuration     ${report.sources.join(', ')}`];
  for (const [setting, a] of Object.entries(report.applied))
    lines.push(`  applied         ${setting} ${show(a.value)} (${a.from})`);
  if (report.fixed.length > 0)
    lines.push(`  applied         ${report.fixed.join(', ')} (tortie's own value)`);
  for (const r of report.restartNeeded)
    lines.push(
      `  RESTART NEEDED  ${r.setting}: running ${show(r.running)}, configured ${show(r.configured)} (${r.from})`,
    );
  for (const o of report.overridden)
    lines.push(`  overridden      ${o.setting}: ${o.by} wins over ${o.from}`);
  for (const i of report.invalid)
    lines.push(`  not applicable  ${i.field} ${show(i.value)}: ${i.problem}`);
  if (report.notImplemented.length > 0)
    lines.push(`  not implemented ${report.notImplemented.join(', ')} (accepted, ignored)`);
  return lines;
}

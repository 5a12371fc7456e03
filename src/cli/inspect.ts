/**
 * Reading a running dataplane from its pins, without loading anything: counters and the
 * live event stream (`tortie monitor`).
 *
 * The monitor names what it prints from three sources, each optional:
 *  - the pins: `tortie_ifaces` (ifindex → endpoint id and pod address) and
 *    `tortie_node_cfg` (the uplink), re-read every 2 s and when an unknown id shows up;
 *  - the store (the CLI's usual etcd options): WorkloadEndpoints (address → `ns/pod`) and
 *    Nodes (address → `node <name>`), listed and then watched;
 *  - the node's agent: `GET /rules` on its ops server (rule id → rule), found through the
 *    node heartbeat whose `pinRoot` is the monitor's (or `--agent-url`), re-read every 3 s
 *    and when an unknown rule id shows up. Rule ids are the agent's own (its compiler
 *    hands them out), so only the agent can name them.
 * Without the store it prints addresses, without the agent rule ids.
 */
import { join, resolve } from 'node:path';
import type { Datastore, EtcdWatchClient, ResourceWatcher } from '../datastore/index.js';
import { MAPS, EVENTS_MAP_NAME } from '../maps/catalog.js';
import { dirName, isDrop, reasonName } from '../maps/enums.js';
import { u32ToIp } from '../maps/addr.js';
import { eventCodec, type EventRecord } from '../maps/structs.js';
import { PerCpuMap, TypedMap } from '../maps/typed-map.js';
import { native } from '../native/index.js';

function openPinned(pinRoot: string, name: string) {
  try {
    return native.openPinnedMap(join(pinRoot, name));
  } catch (e) {
    throw new Error(
      `cannot open ${join(pinRoot, name)} (is a tortie dataplane pinned at ${pinRoot}?): ${(e as Error).message}`,
    );
  }
}

export function readCounters(pinRoot: string) {
  const metrics = new PerCpuMap(openPinned(pinRoot, MAPS.metrics.name), MAPS.metrics);
  return metrics
    .entriesSum()
    .map(([k, v]) => ({
      epId: k.ep_id,
      dir: dirName(k.dir),
      reason: reasonName(k.reason),
      dropped: isDrop(k.reason),
      packets: BigInt(v.packets),
      bytes: BigInt(v.bytes),
    }))
    .sort((a, b) => a.epId - b.epId || a.reason.localeCompare(b.reason));
}

const PROTO_NAMES: Record<number, string> = {
  1: 'icmp',
  6: 'tcp',
  17: 'udp',
  132: 'sctp',
  136: 'udplite',
};

const EVENT_TYPES: Record<number, string> = { 1: 'drop', 2: 'verdict', 3: 'log' };
const ACTIONS: Record<number, string> = { 0: 'none', 1: 'allow', 2: 'deny' };

/** What the monitor knows to name addresses, interfaces and rules. */
export interface MonitorNames {
  /** Pod address → `namespace/pod`. */
  readonly pods: ReadonlyMap<string, string>;
  /** Node underlay address → node name. */
  readonly nodes: ReadonlyMap<string, string>;
  /** ifindex → {endpoint id, pod address} (the pinned tortie_ifaces). */
  readonly ifaces: ReadonlyMap<number, { id: number; ip: string }>;
  /** The uplink's ifindex (tortie_node_cfg), if known. */
  readonly uplinkIfindex: number | undefined;
  /** Rule id → rule ref (the agent's /rules). */
  readonly rules: ReadonlyMap<number, string>;
}

export const NO_NAMES: MonitorNames = {
  pods: new Map(),
  nodes: new Map(),
  ifaces: new Map(),
  uplinkIfindex: undefined,
  rules: new Map(),
};

/** One event as the monitor prints it (`--json`: this object, one per line). */
export interface MonitorRow {
  readonly time: string;
  readonly type: string;
  readonly reason: string;
  readonly dir: string;
  /** The endpoint the event is counted for (`ns/pod`), `ep <id>` when unnamed, null for none. */
  readonly endpoint: string | null;
  readonly epId: number;
  /** The interface where it happened: `ns/pod`, `uplink`, or `if <n>`. */
  readonly interface: string;
  readonly ifindex: number;
  readonly proto: string;
  /** `ns/pod (ip)`, `node <name> (ip)` or the bare ip. */
  readonly src: string;
  readonly srcIp: string;
  readonly srcName: string | null;
  readonly sport: number;
  readonly dst: string;
  readonly dstIp: string;
  readonly dstName: string | null;
  readonly dport: number;
  /** The deciding rule (policy drops), its id when the agent could not name it, else null. */
  readonly rule: string | null;
  readonly ruleId: number;
  readonly action: string;
}

function nameOf(ip: string, names: MonitorNames): string | null {
  const pod = names.pods.get(ip);
  if (pod !== undefined) return pod;
  const node = names.nodes.get(ip);
  return node === undefined ? null : `node ${node}`;
}

/** An event record (decoded from the ring buffer) as a row; `time` is its wall-clock time. */
export function describeEvent(e: EventRecord, names: MonitorNames, time: Date): MonitorRow {
  const srcIp = u32ToIp(e.saddr);
  const dstIp = u32ToIp(e.daddr);
  const srcName = nameOf(srcIp, names);
  const dstName = nameOf(dstIp, names);
  let endpoint: string | null = null;
  if (e.ep_id !== 0) {
    const ep = [...names.ifaces.values()].find((i) => i.id === e.ep_id);
    endpoint = (ep && names.pods.get(ep.ip)) ?? `ep ${e.ep_id}`;
  }
  const iface = names.ifaces.get(e.ifindex);
  const where =
    iface !== undefined
      ? (names.pods.get(iface.ip) ?? `if ${e.ifindex} (${iface.ip})`)
      : e.ifindex === names.uplinkIfindex
        ? 'uplink'
        : `if ${e.ifindex}`;
  return {
    time: time.toISOString(),
    type: EVENT_TYPES[e.type] ?? String(e.type),
    reason: reasonName(e.reason),
    dir: dirName(e.dir),
    endpoint,
    epId: e.ep_id,
    interface: where,
    ifindex: e.ifindex,
    proto: PROTO_NAMES[e.proto] ?? String(e.proto),
    src: srcName === null ? srcIp : `${srcName} (${srcIp})`,
    srcIp,
    srcName,
    sport: e.sport,
    dst: dstName === null ? dstIp : `${dstName} (${dstIp})`,
    dstIp,
    dstName,
    dport: e.dport,
    rule: e.rule_id === 0 ? null : (names.rules.get(e.rule_id) ?? `rule ${e.rule_id}`),
    ruleId: e.rule_id,
    action: ACTIONS[e.action] ?? String(e.action),
  };
}

function endpointText(addr: string, port: number, proto: string): string {
  if (proto === 'icmp') return addr;
  return `${addr}:${port}`;
}

/** The text line of a row. */
export function formatRow(r: MonitorRow): string {
  const l4 = r.proto === 'icmp' ? `icmp type ${r.dport >> 8} code ${r.dport & 0xff}` : `${r.proto}`;
  const parts = [
    r.time.slice(11, 23),
    r.type.toUpperCase(),
    r.reason,
    r.dir,
    r.endpoint === null || r.endpoint === r.interface
      ? `at ${r.interface}`
      : `at ${r.endpoint} via ${r.interface}`,
    `${endpointText(r.src, r.sport, r.proto)} -> ${endpointText(r.dst, r.dport, r.proto)}`,
    l4,
  ];
  if (r.rule !== null) parts.push(`rule ${r.rule.startsWith('rule ') ? r.rule.slice(5) : r.rule}`);
  return parts.join('  ');
}

export interface NamedEndpoint {
  readonly metadata: { readonly name: string; readonly namespace?: string | undefined };
  readonly spec: { readonly workload?: string | undefined; readonly ipNetworks: readonly string[] };
}

export interface NamedNode {
  readonly metadata: { readonly name: string };
  readonly spec: { readonly bgp?: { readonly ipv4Address?: string | undefined } | undefined };
}

/** The name maps from WorkloadEndpoints and Nodes (as stored). */
export function namesFromResources(
  weps: Iterable<NamedEndpoint>,
  nodes: Iterable<NamedNode>,
): { pods: Map<string, string>; nodes: Map<string, string> } {
  const pods = new Map<string, string>();
  for (const w of weps) {
    const name = `${w.metadata.namespace ?? 'default'}/${w.spec.workload ?? w.metadata.name}`;
    for (const net of w.spec.ipNetworks ?? []) pods.set(net.split('/')[0]!, name);
  }
  const byIp = new Map<string, string>();
  for (const n of nodes) {
    const ip = n.spec.bgp?.ipv4Address?.split('/')[0];
    if (ip) byIp.set(ip, n.metadata.name);
  }
  return { pods, nodes: byIp };
}

/** Parses the agent's GET /rules body into id → ref. */
export function parseRuleTable(body: unknown): Map<number, string> {
  const out = new Map<number, string>();
  const rules = (body as { rules?: unknown } | null)?.rules;
  if (typeof rules !== 'object' || rules === null) return out;
  for (const [id, ref] of Object.entries(rules as Record<string, unknown>)) {
    const n = Number(id);
    if (Number.isInteger(n) && n > 0 && typeof ref === 'string') out.set(n, ref);
  }
  return out;
}

export interface MonitorOptions {
  readonly pinRoot: string;
  readonly json: boolean;
  /** Connects to the store; undefined: no store (addresses only). */
  readonly store?: () => Promise<Datastore<EtcdWatchClient>>;
  /** The agent's ops URL (else found through the store). */
  readonly agentUrl?: string;
}

/** Streams events from the pinned ring buffer until SIGINT/SIGTERM. */
export async function monitor(opts: MonitorOptions): Promise<void> {
  const { pinRoot, json } = opts;
  const events = openPinned(pinRoot, EVENTS_MAP_NAME);
  const ifacesMap = new TypedMap(openPinned(pinRoot, MAPS.ifaces.name), MAPS.ifaces);
  const nodeCfgMap = new TypedMap(openPinned(pinRoot, MAPS.nodeCfg.name), MAPS.nodeCfg);
  const warn = (msg: string) => console.error(`tortie monitor: ${msg}`);

  let ifaces = new Map<number, { id: number; ip: string }>();
  let uplinkIfindex: number | undefined;
  let pods = new Map<string, string>();
  let nodes = new Map<string, string>();
  let rules = new Map<number, string>();
  let agentUrl = opts.agentUrl;
  let lastPins = 0;
  let lastRules = 0;

  const readPins = () => {
    lastPins = Date.now();
    try {
      ifaces = new Map(ifacesMap.entries().map(([k, v]) => [k, { id: v.id, ip: u32ToIp(v.ip) }]));
      const cfg = nodeCfgMap.lookup(0);
      uplinkIfindex = cfg && cfg.uplink_ifindex !== 0 ? cfg.uplink_ifindex : undefined;
    } catch (e) {
      warn(`reading ${pinRoot}: ${(e as Error).message}`);
    }
  };
  readPins();

  // The store: list, then watch WorkloadEndpoints and Nodes.
  let ds: Datastore<EtcdWatchClient> | undefined;
  let watcher: ResourceWatcher | undefined;
  const weps = new Map<string, NamedEndpoint>();
  const nodeRes = new Map<string, NamedNode>();
  const rebuild = () => {
    ({ pods, nodes } = namesFromResources(weps.values(), nodeRes.values()));
  };
  let stopped = false;
  const connectStore = async (): Promise<void> => {
    if (opts.store === undefined || stopped) return;
    try {
      ds ??= await opts.store();
      watcher = await ds.watch(
        ['WorkloadEndpoint', 'Node'],
        (ev) => {
          if (ev.type === 'synced') return;
          const ns = ev.type === 'put' ? ev.resource.metadata.namespace : ev.namespace;
          const name = ev.type === 'put' ? ev.resource.metadata.name : ev.name;
          const key = `${ns ?? ''}/${name}`;
          if (ev.type === 'put' && ev.kind === 'Node')
            nodeRes.set(key, ev.resource as unknown as NamedNode);
          else if (ev.type === 'put') weps.set(key, ev.resource as unknown as NamedEndpoint);
          else (ev.kind === 'Node' ? nodeRes : weps).delete(key);
          rebuild();
        },
        { onError: (err) => warn(`store watch: ${err.message}`) },
      );
      if (stopped) await watcher.cancel();
    } catch (e) {
      warn(`no names from the store yet (${(e as Error).message}); retrying in 5 s`);
      setTimeout(() => void connectStore(), 5000).unref();
    }
  };
  await connectStore();

  const refreshRules = async (): Promise<void> => {
    lastRules = Date.now();
    try {
      if (agentUrl === undefined && ds !== undefined) {
        const { readNodeStatuses } = await import('../agent/status.js');
        const want = resolve(pinRoot);
        const hb = (await readNodeStatuses(ds)).find(
          (s) => s.pinRoot !== undefined && resolve(s.pinRoot) === want,
        );
        if (hb?.healthUrl) agentUrl = hb.healthUrl;
      }
      if (agentUrl === undefined) return;
      const res = await fetch(`${agentUrl}/rules`, { signal: AbortSignal.timeout(1500) });
      if (res.ok) rules = parseRuleTable(await res.json());
      if (opts.agentUrl === undefined) agentUrl = undefined; // found again next time (restarts)
    } catch {
      if (opts.agentUrl === undefined) agentUrl = undefined;
    }
  };
  await refreshRules();
  const timer = setInterval(() => {
    if (Date.now() - lastPins >= 2000) readPins();
    if (Date.now() - lastRules >= 3000) void refreshRules();
  }, 1000);

  // bpf_ktime_get_ns and process.hrtime are both CLOCK_MONOTONIC.
  const wallOf = (tsNs: bigint): Date => {
    const ageNs = process.hrtime.bigint() - tsNs;
    return new Date(Date.now() - Number(ageNs / 1_000_000n));
  };
  const print = (rec: Buffer) => {
    const e = eventCodec.decode(rec);
    const now = Date.now();
    const unknownEp = e.ep_id !== 0 && ![...ifaces.values()].some((i) => i.id === e.ep_id);
    if (
      (unknownEp || (e.ifindex !== 0 && !ifaces.has(e.ifindex) && e.ifindex !== uplinkIfindex)) &&
      now - lastPins > 500
    )
      readPins();
    if (e.rule_id !== 0 && !rules.has(e.rule_id) && now - lastRules > 500) void refreshRules();
    const row = describeEvent(
      e,
      { pods, nodes, ifaces, uplinkIfindex, rules },
      wallOf(BigInt(e.ts_ns)),
    );
    console.log(json ? JSON.stringify(row) : formatRow(row));
  };
  const rb = native.ringBuffer(events.fd, print, { poll: true });
  // On stderr, also with --json (stdout carries only events): scripts wait for this line.
  console.error(
    `streaming events from ${join(pinRoot, EVENTS_MAP_NAME)}` +
      `${opts.store ? '' : ' (no store: addresses only)'}; Ctrl-C to stop`,
  );
  await new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  stopped = true;
  clearInterval(timer);
  rb.close();
  await watcher?.cancel().catch(() => undefined);
  await ds?.close().catch(() => undefined);
}

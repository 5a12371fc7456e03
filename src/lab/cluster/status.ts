/**
 * What a lab is and whether it is there: the one-line description of its settings, what
 * of a lab id is on the machine (`labPresence`), the errors for a lab that is there when
 * it should not be and one that is not, and the health of a reopened lab's parts
 * (`labStatus`: agents, etcd members, pods — what `tortie lab status` prints).
 */
import { existsSync, readdirSync } from 'node:fs';
import { readNodeStatus } from '../../agent/status.js';
import { Datastore } from '../../datastore/index.js';
import { etcdHealthy } from '../etcd.js';
import type { EtcdTlsFiles } from '../etcd-tls.js';
import type { ClusterLab } from './cluster-lab.js';
import { clusterNames } from './names.js';
import { isPodProcess } from './pods.js';
import { labDir, stateFile } from './state.js';
import type { LabTor } from './tor.js';

/** `lab up` for an id that is taken. */
export class LabExistsError extends Error {
  override readonly name = 'LabExistsError';
}

/** `open` for an id with no state file. */
export class LabNotFoundError extends Error {
  override readonly name = 'LabNotFoundError';
}

/** Netns names under /run/netns with this lab's prefix. */
export function labNetns(id: string): string[] {
  const { prefix } = clusterNames(id);
  if (!existsSync('/run/netns')) return [];
  return readdirSync('/run/netns').filter((n) => n.startsWith(prefix));
}

/** What of a lab with this id is on the machine (empty: nothing). */
export function labPresence(id: string): string[] {
  const out: string[] = [];
  if (existsSync(stateFile(id))) out.push(`state file ${stateFile(id)}`);
  else if (existsSync(labDir(id))) out.push(`state directory ${labDir(id)}`);
  const ns = labNetns(id);
  if (ns.length > 0)
    out.push(`network namespaces ${ns.slice(0, 3).join(', ')}${ns.length > 3 ? ', …' : ''}`);
  return out;
}

/** The settings `describeLab` names. */
export interface LabDescription {
  readonly nodes: number;
  readonly dataplane: 'bpf' | 'iptables';
  readonly encap: string;
  readonly routing: 'static' | 'bgp';
  readonly tor: LabTor | undefined;
  readonly etcdTls: EtcdTlsFiles | undefined;
  readonly datastore?: 'etcd' | 'kubernetes';
}

/** "3 nodes, BPF dataplane, agents + etcd, encap ipip, BGP (BIRD node mesh), …". */
export function describeLab(d: LabDescription): string {
  return [
    `${d.nodes} nodes`,
    `${d.dataplane === 'iptables' ? 'iptables' : 'BPF'} dataplane`,
    d.datastore === 'kubernetes'
      ? 'agents + kube-apiserver (Kubernetes datastore, the lab plays kubelet)'
      : 'agents + etcd',
    `encap ${d.encap}`,
    ...(d.routing === 'bgp' ? ['BGP (BIRD node mesh)'] : []),
    ...(d.tor === undefined ? [] : [`ToR ${d.tor.ip} (FRR, AS ${d.tor.asNumber})`]),
    ...(d.etcdTls === undefined ? [] : ['etcd TLS with client certificates']),
  ].join(', ');
}

export interface LabStatus {
  /** Every agent running and ready, every etcd member healthy, every pod running. */
  readonly ok: boolean;
  /** Why the agents' reports could not be read (etcd), if so. */
  readonly storeError?: string;
  readonly nodes: {
    name: string;
    underlayIp: string;
    agentPid: number | null;
    agentRunning: boolean;
    ready: boolean;
    synced: boolean;
    endpointsProgrammed: number | null;
    endpointsLocal: number | null;
    heartbeatAt: string | null;
    log: string | null;
  }[];
  readonly etcd: {
    name: string;
    endpoint: string;
    pid: number | null;
    running: boolean;
    healthy: boolean;
    log: string | null;
  }[];
  readonly pods: { key: string; node: string; ip: string; pid: number | null; running: boolean }[];
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The health of a lab's parts: each agent process (running; ready, synced and endpoints
 * from its own report in etcd), each etcd member (running, /health), each pod process.
 */
export async function labStatus(lab: ClusterLab): Promise<LabStatus> {
  if (lab.kube !== undefined) return kubeLabStatus(lab);
  if (lab.etcd === undefined)
    throw new Error(`lab ${lab.id}: no etcd to ask (not built or opened)`);
  const etcd = await Promise.all(
    lab.etcd.members.map(async (m) => ({
      name: m.name,
      endpoint: m.clientUrl,
      pid: m.pid ?? null,
      running: m.pid !== undefined,
      healthy: await etcdHealthy(m.clientUrl, 1000, lab.etcdTls),
      log: m.logFile ?? null,
    })),
  );
  // The agents' own reports (heartbeat, readiness, endpoints programmed), from etcd.
  let reports = new Map<string, Awaited<ReturnType<typeof readNodeStatus>>>();
  let storeError: string | undefined;
  const healthy = etcd.filter((m) => m.healthy).map((m) => m.endpoint);
  if (healthy.length === 0) storeError = 'no etcd member is healthy';
  else {
    try {
      const ds = await withTimeout(
        Datastore.connect({
          endpoints: healthy,
          prefix: clusterNames(lab.id).etcdPrefix,
          timeoutMs: 3000,
          ...lab.clientTls(),
        }),
        5000,
        'etcd',
      );
      try {
        reports = new Map(
          await Promise.all(
            lab.nodes.map(
              async (n) =>
                [n.name, await withTimeout(readNodeStatus(ds, n.name), 5000, 'etcd')] as const,
            ),
          ),
        );
      } finally {
        await ds.close();
      }
    } catch (e) {
      storeError = (e as Error).message;
    }
  }
  const nodes = lab.nodes.map((n) => {
    const r = reports.get(n.name);
    return {
      name: n.name,
      underlayIp: n.underlayIp,
      agentPid: n.process?.pid ?? null,
      agentRunning: n.process?.pid !== undefined,
      ready: r?.ready ?? false,
      synced: r?.synced ?? false,
      endpointsProgrammed: r?.endpoints.programmed ?? null,
      endpointsLocal: r?.endpoints.local ?? null,
      heartbeatAt: r?.heartbeatAt ?? null,
      log: n.process?.options.logFile ?? null,
    };
  });
  const pods = lab.pods.map((x) => ({
    key: x.key,
    node: x.node,
    ip: x.ip,
    pid: x.pid ?? null,
    running: x.pid !== undefined && isPodProcess(x.pid),
  }));
  const ok =
    storeError === undefined &&
    nodes.every((n) => n.agentRunning && n.ready) &&
    etcd.every((m) => m.healthy) &&
    pods.every((x) => x.running);
  return { ok, ...(storeError === undefined ? {} : { storeError }), nodes, etcd, pods };
}

/** The agent's own summary (`/status` of its ops server), or why it could not be read. */
async function agentSummary(
  url: string | undefined,
): Promise<{ ready: boolean; synced: boolean; endpoints: number } | string> {
  if (url === undefined) return 'no ops server URL in its log';
  try {
    const res = await fetch(`${url}/status`, { signal: AbortSignal.timeout(3000) });
    const body = (await res.json()) as { ready?: boolean; synced?: boolean; endpoints?: unknown[] };
    return {
      ready: body.ready === true,
      synced: body.synced === true,
      endpoints: body.endpoints?.length ?? 0,
    };
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * The Kubernetes datastore: the API server in place of the etcd members (its /readyz), the
 * agents' summaries from their own ops servers (their reports are tortiestatuses objects
 * in the API; what an agent says of itself is enough here).
 */
async function kubeLabStatus(lab: ClusterLab): Promise<LabStatus> {
  const kube = lab.kube!;
  const state = kube.server.state();
  const healthy = await kube.server.ready();
  const summaries = await Promise.all(lab.nodes.map((n) => agentSummary(n.process?.healthUrl())));
  const problems = summaries.flatMap((s, i) =>
    typeof s === 'string' ? [`${lab.nodes[i]!.name}: ${s}`] : [],
  );
  const nodes = lab.nodes.map((n, i) => {
    const r = summaries[i];
    const sum = typeof r === 'string' ? undefined : r;
    return {
      name: n.name,
      underlayIp: n.underlayIp,
      agentPid: n.process?.pid ?? null,
      agentRunning: n.process?.pid !== undefined,
      ready: sum?.ready ?? false,
      synced: sum?.synced ?? false,
      endpointsProgrammed: sum?.endpoints ?? null,
      endpointsLocal: sum?.endpoints ?? null,
      heartbeatAt: null,
      log: n.process?.options.logFile ?? null,
    };
  });
  const etcd = [
    {
      name: 'kube-apiserver',
      endpoint: state.url,
      pid: state.apiserverPid ?? null,
      running: state.apiserverPid !== undefined,
      healthy,
      log: `${state.dir}/kube-apiserver.log`,
    },
  ];
  const pods = lab.pods.map((x) => ({
    key: x.key,
    node: x.node,
    ip: x.ip,
    pid: x.pid ?? null,
    running: x.pid !== undefined && isPodProcess(x.pid),
  }));
  const storeError = problems.length === 0 ? undefined : problems.join('; ');
  const ok =
    storeError === undefined &&
    healthy &&
    nodes.every((n) => n.agentRunning && n.ready) &&
    pods.every((x) => x.running);
  return { ok, ...(storeError === undefined ? {} : { storeError }), nodes, etcd, pods };
}

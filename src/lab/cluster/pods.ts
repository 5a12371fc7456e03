/**
 * The lab's pods: a namespace per pod, plumbed by the real CNI plugin (ADD through the
 * installed shim, with `host_netns` = the node's namespace), then running the lab's pod
 * process (echo servers and a prober). A pod of a persistent lab runs detached; a lab
 * reopened by another process probes it with a short-lived prober started in its
 * namespace.
 */
import { invokePlugin } from '../../cni/invoke.js';
import { createNetns, deleteNetns } from '../../plumbing/netns.js';
import { cmdline, pidAlive, pidsInNetns, signalPid } from '../../util/proc.js';
import type { EtcdTlsFiles } from '../etcd-tls.js';
import { PodProcess } from '../pod-handle.js';
import type { KubeApi } from './kube-api.js';
import {
  createPodObject,
  deletePodObject,
  kubeletCniArgs,
  markPodRunning,
  sandboxId,
  type ContainerPort,
} from './kubelet.js';
import { clusterNames, labCniSocket, NETWORK, podNetnsName } from './names.js';
import type { LabPodState } from './state.js';

export interface ClusterPodSpec {
  readonly namespace: string;
  readonly name: string;
  readonly labels: Record<string, string>;
  /** Node index (0-based) or node name. */
  readonly node: number | string;
  /** What the pod process serves, e.g. "tcp:80,udp:80" (default). */
  readonly servers?: string;
  /** Kubernetes datastore: the Pod's `serviceAccountName` (default `default`). */
  readonly serviceAccount?: string;
  /** Kubernetes datastore: the Pod's container ports (named ones are named ports). */
  readonly ports?: readonly ContainerPort[];
}

export interface ClusterPod {
  readonly key: string; // namespace/name
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly netns: string;
  readonly containerId: string;
  /**
   * The pod's process, to probe from. A pod of a lab opened with `ClusterLab.open` runs
   * detached (started by another process): reading this throws; use the lab's
   * `probe` / `matrix`, which start a short-lived prober in the pod.
   */
  readonly process: PodProcess;
  /** Its labels as given to the CNI plugin. */
  readonly labels?: Record<string, string>;
  /** What its process serves ("tcp:80,udp:80"). */
  readonly servers?: string;
  /** Persistent labs: the pid of the pod's (detached) process. */
  readonly pid?: number;
  /** Kubernetes datastore: the Pod object's uid (kubelet's K8S_POD_UID). */
  readonly uid?: string;
  /** Kubernetes datastore: the resourceVersion of the lab's last write of the Pod. */
  readonly resourceVersion?: string;
}

/** What of the lab the CNI calls need. */
export interface PodContext {
  readonly id: string;
  /** The installed CNI plugin (the compiled one; the field keeps its old name in lab state). */
  readonly shim: string;
  readonly persistent: boolean;
  readonly encap: 'ipip' | 'none' | 'vxlan';
  readonly etcdEndpoints: readonly string[];
  readonly etcdTls: EtcdTlsFiles | undefined;
  /**
   * The Kubernetes datastore: the lab plays kubelet through `api` (Pod objects, status)
   * and the plugin reads the API with `cniKubeconfig`. Undefined: etcd.
   */
  readonly kube?: { readonly api: KubeApi; readonly cniKubeconfig: string } | undefined;
}

/** The node a pod goes on (its name, namespace path and address). */
export interface PodNode {
  readonly name: string;
  readonly netns: string;
  readonly underlayIp: string;
}

/** CNI_ARGS of a pod: kubelet's on Kubernetes (with the pod's uid), else the lab's own. */
function cniArgs(namespace: string, name: string, uid?: string, containerId?: string): string {
  if (uid !== undefined && containerId !== undefined)
    return kubeletCniArgs({ namespace, name, uid, containerId });
  return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name}`;
}

/** The MTU of a pod's interface for the lab's encapsulation. */
function podMtu(encap: PodContext['encap']): number {
  return encap === 'ipip' ? 1480 : encap === 'vxlan' ? 1450 : 1500;
}

/**
 * The CNI network configuration for a pod on `node`. On Kubernetes it is the one Calico's
 * install writes (`datastore_type`, `kubernetes.kubeconfig`): the plugin reads the pod's
 * labels, service account and ports from the API, not from the config.
 */
export function cniConfig(
  ctx: PodContext,
  node: PodNode,
  labels: Record<string, string>,
): Record<string, unknown> {
  if (ctx.kube !== undefined)
    return {
      cniVersion: '1.0.0',
      name: NETWORK,
      type: 'tortie',
      datastore_type: 'kubernetes',
      kubernetes: { kubeconfig: ctx.kube.cniKubeconfig },
      policy: { type: 'k8s' },
      nodename: node.name,
      host_netns: node.netns,
      agent_socket: labCniSocket(ctx.id, node.name),
      mtu: podMtu(ctx.encap),
      ipam: { type: 'tortie-ipam' },
    };
  return {
    cniVersion: '1.0.0',
    name: NETWORK,
    type: 'tortie',
    datastore: { endpoints: ctx.etcdEndpoints, prefix: clusterNames(ctx.id).etcdPrefix },
    ...(ctx.etcdTls === undefined
      ? {}
      : {
          etcd_ca_cert_file: ctx.etcdTls.ca,
          etcd_cert_file: ctx.etcdTls.clientCert,
          etcd_key_file: ctx.etcdTls.clientKey,
        }),
    nodename: node.name,
    host_netns: node.netns,
    agent_socket: labCniSocket(ctx.id, node.name),
    mtu: podMtu(ctx.encap),
    ipam: { type: 'tortie-ipam' },
    args: { tortie: { labels } },
  };
}

/** Is `pid` a live lab pod process (not a reused pid)? */
export function isPodProcess(pid: number): boolean {
  return pidAlive(pid) && cmdline(pid).some((a) => a.endsWith('pod-process.js'));
}

/** The pod process running in the named namespace. */
function podProcessPid(nsName: string): number | undefined {
  return pidsInNetns(nsName).find(isPodProcess);
}

/**
 * Creates the pod's namespace, runs the CNI plugin's ADD for it, starts its pod process.
 * On a failure leaves nothing of the pod (process, address, endpoint, namespace).
 */
export async function createPod(
  ctx: PodContext,
  node: PodNode,
  spec: ClusterPodSpec,
): Promise<ClusterPod> {
  const key = `${spec.namespace}/${spec.name}`;
  const nsName = podNetnsName(ctx.id, spec.namespace, spec.name);
  const kube = ctx.kube;
  // Kubernetes: the Pod object first, bound to the node (what kubelet finds).
  const uid =
    kube === undefined
      ? undefined
      : (
          await createPodObject(kube.api, {
            namespace: spec.namespace,
            name: spec.name,
            labels: spec.labels,
            nodeName: node.name,
            ...(spec.serviceAccount === undefined ? {} : { serviceAccount: spec.serviceAccount }),
            ...(spec.ports === undefined ? {} : { ports: spec.ports }),
          })
        ).metadata.uid;
  if (kube !== undefined && uid === undefined)
    throw new Error(`pod ${key}: the API server's answer has no metadata.uid`);
  const containerId =
    uid === undefined ? `${ctx.id}-${spec.namespace}-${spec.name}` : sandboxId(uid);
  let netns: string;
  try {
    netns = await createNetns(nsName);
  } catch (e) {
    if (kube !== undefined)
      await deletePodObject(kube.api, spec.namespace, spec.name).catch(() => undefined);
    throw e;
  }
  const servers = spec.servers ?? 'tcp:80,udp:80';
  let process: PodProcess | undefined;
  try {
    const add = await invokePlugin({
      plugin: ctx.shim,
      command: 'ADD',
      containerId,
      netns,
      ifName: 'eth0',
      args: cniArgs(spec.namespace, spec.name, uid, containerId),
      config: cniConfig(ctx, node, spec.labels),
    });
    if (add.exitCode !== 0) {
      throw new Error(
        `CNI ADD ${key} on ${node.name}: exit ${String(add.exitCode ?? add.signal)}: ${add.stdout}${add.stderr}`,
      );
    }
    const result = add.json as { ips?: { address: string }[] };
    const ip = result.ips?.[0]?.address.split('/')[0];
    if (!ip) throw new Error(`CNI ADD ${key}: no address in ${add.stdout}`);
    // Kubernetes: the sandbox is up; kubelet reports the pod Running with its address.
    const written =
      kube === undefined
        ? undefined
        : await markPodRunning(kube.api, spec.namespace, spec.name, ip, node.underlayIp);
    process = await PodProcess.start(netns, servers, { persist: ctx.persistent });
    const pid = ctx.persistent ? podProcessPid(nsName) : undefined;
    return {
      key,
      namespace: spec.namespace,
      name: spec.name,
      node: node.name,
      ip,
      netns,
      containerId,
      process,
      labels: { ...spec.labels },
      servers,
      ...(pid === undefined ? {} : { pid }),
      ...(uid === undefined ? {} : { uid }),
      ...(written?.metadata.resourceVersion === undefined
        ? {}
        : { resourceVersion: written.metadata.resourceVersion }),
    };
  } catch (e) {
    if (process) {
      const pid = ctx.persistent ? podProcessPid(nsName) : undefined;
      if (pid !== undefined) signalPid(pid);
      await process.stop().catch(() => undefined);
    }
    await cniDel(ctx, node, key, containerId, netns, spec.labels, uid).catch(() => undefined);
    if (kube !== undefined)
      await deletePodObject(kube.api, spec.namespace, spec.name).catch(() => undefined);
    await deleteNetns(nsName).catch(() => undefined);
    throw e;
  }
}

/**
 * CNI DEL for the pod, stops its process (`live`, or its pid), deletes its namespace; on
 * Kubernetes then deletes the Pod object (kubelet's confirmation of a deletion).
 */
export async function deletePod(
  ctx: PodContext,
  node: PodNode,
  pod: ClusterPod,
  live: PodProcess | undefined,
): Promise<void> {
  if (pod.pid !== undefined && isPodProcess(pod.pid)) signalPid(pod.pid);
  await live?.stop().catch(() => undefined);
  await cniDel(ctx, node, pod.key, pod.containerId, pod.netns, pod.labels ?? {}, pod.uid);
  const nsName = pod.netns.split('/').pop()!;
  // Whatever else runs in it goes with it.
  for (const pid of pidsInNetns(nsName)) signalPid(pid);
  await deleteNetns(nsName);
  if (ctx.kube !== undefined) await deletePodObject(ctx.kube.api, pod.namespace, pod.name);
}

async function cniDel(
  ctx: PodContext,
  node: PodNode,
  key: string,
  containerId: string,
  netns: string,
  labels: Record<string, string>,
  uid?: string,
): Promise<void> {
  const [namespace, name] = key.split('/') as [string, string];
  const del = await invokePlugin({
    plugin: ctx.shim,
    command: 'DEL',
    containerId,
    netns,
    ifName: 'eth0',
    args: cniArgs(namespace, name, uid, containerId),
    config: cniConfig(ctx, node, labels),
  });
  if (del.exitCode !== 0)
    throw new Error(
      `CNI DEL ${key} on ${node.name}: exit ${String(del.exitCode ?? del.signal)}: ${del.stdout}${del.stderr}`,
    );
}

/** A pod of a persistent lab started by another process: no process to talk to. */
export function detachedPod(s: LabPodState): ClusterPod {
  const pod = {
    key: s.key,
    namespace: s.namespace,
    name: s.name,
    node: s.node,
    ip: s.ip,
    netns: s.netns,
    containerId: s.containerId,
    labels: s.labels,
    servers: s.servers,
    ...(s.pid === undefined ? {} : { pid: s.pid }),
    ...(s.uid === undefined ? {} : { uid: s.uid }),
  };
  Object.defineProperty(pod, 'process', {
    enumerable: false,
    get(): never {
      throw new Error(
        `pod ${s.key} runs detached (started by another process): probe it with the lab's probe() / matrix()`,
      );
    },
  });
  return pod as ClusterPod;
}

/** What a pod's state-file entry says. */
export function podState(p: ClusterPod): LabPodState {
  return {
    key: p.key,
    namespace: p.namespace,
    name: p.name,
    node: p.node,
    ip: p.ip,
    netns: p.netns,
    containerId: p.containerId,
    labels: p.labels ?? {},
    servers: p.servers ?? '',
    ...(p.pid === undefined ? {} : { pid: p.pid }),
    ...(p.uid === undefined ? {} : { uid: p.uid }),
  };
}

/** Runs `fn` with a short-lived prober (no servers) in the pod's namespace. */
export async function withProber<T>(
  pod: ClusterPod,
  fn: (p: PodProcess) => Promise<T>,
): Promise<T> {
  const prober = await PodProcess.start(pod.netns, '');
  try {
    return await fn(prober);
  } finally {
    await prober.stop();
  }
}

/**
 * Every ordered pair of distinct pods: "from -> to" → reachable. Pods whose process this
 * object holds (`live`) probe all at once; detached ones one source at a time, a
 * short-lived prober in it, every target at once.
 */
export async function probeMatrix(
  pods: readonly ClusterPod[],
  live: ReadonlyMap<string, PodProcess>,
  port: number,
  protocol: 'tcp' | 'udp',
  timeoutMs: number,
): Promise<Record<string, boolean>> {
  const pairs = pods.flatMap((a) => pods.filter((b) => b !== a).map((b) => [a, b] as const));
  if (pods.every((p) => live.has(p.key))) {
    const results = await Promise.all(
      pairs.map(([a, b]) => live.get(a.key)!.probe(protocol, b.ip, port, timeoutMs)),
    );
    return Object.fromEntries(pairs.map(([a, b], i) => [`${a.key} -> ${b.key}`, results[i]!]));
  }
  const out: Record<string, boolean> = {};
  for (const a of pods) {
    const targets = pods.filter((b) => b !== a);
    const probeAll = (p: PodProcess) =>
      Promise.all(targets.map((b) => p.probe(protocol, b.ip, port, timeoutMs)));
    const mine = live.get(a.key);
    const results = mine ? await probeAll(mine) : await withProber(a, probeAll);
    targets.forEach((b, i) => (out[`${a.key} -> ${b.key}`] = results[i]!));
  }
  const key = ([a, b]: readonly [ClusterPod, ClusterPod]) => `${a.key} -> ${b.key}`;
  return Object.fromEntries(pairs.map((p) => [key(p), out[key(p)]!]));
}

/**
 * A multi-node lab on one machine:
 *
 *   pods ── veth (real CNI plugin) ── node n0 (ns) ── ul ─┐
 *                                                         ├─ br0 in the underlay ns
 *   pods ── veth (real CNI plugin) ── node n1 (ns) ── ul ─┘
 *
 * One etcd (startEtcd), an IPPool (ipipMode Always or Never), one agent per node (inline
 * or a process; own pin root, own node namespace, `--ip` its underlay address), pods
 * plumbed by the real CNI plugin. This file is the front; the parts are
 *
 *   ./options.ts    what `up` takes, and the checks before anything is made
 *   ./names.ts      every name, from the lab id
 *   ./underlay.ts   the bridge namespace, node namespaces and their uplinks
 *   ./tor.ts        the FRR top-of-rack router (`tor: true`)
 *   ./agent-settings.ts, ./agents.ts, ./agent-process.ts
 *                   one builder of agent settings; one handle for inline and process
 *                   agents, held by each node
 *   ./pods.ts       CNI calls, pod handles, probes
 *   ./teardown.ts   removal by name, also of a build still running
 *   ./status.ts     description, presence, health
 *   ./state.ts      the state file of a persistent lab
 *
 * On the Kubernetes datastore (`datastore: 'kubernetes'`, ./kube-lab.ts) a kube-apiserver
 * with its etcd 3.6 takes the place of the lab's etcd, the lab plays kubelet (./kubelet.ts:
 * Node objects, Pod objects bound to their node, CNI ADD with kubelet's arguments, the
 * pod's status), and the agents and the CNI plugin read the API with the ServiceAccount
 * tokens of manifests/. What a user does with kubectl (a NetworkPolicy applied, a pod or a
 * namespace labelled) reaches the dataplane through the agents' watch.
 *
 * A persistent lab (`persist: true`, what `tortie lab up` builds) outlives the process
 * that built it: etcd runs detached, the agents are processes, pod processes are
 * detached, and `/run/tortie/labs/<id>/state.json` names all of it with every setting.
 * `ClusterLab.open(id)` re-attaches to such a lab from another process with those
 * settings; `close()` lets go of it (it keeps running), `down()` removes it.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { installCni } from '../../cni/install.js';
import { Datastore } from '../../datastore/index.js';
import { removePins } from '../../loader/index.js';
import { deleteNetns, netnsPath } from '../../plumbing/netns.js';
import { preflightLab } from '../../preflight/index.js';
import { pidAlive, signalPid } from '../../util/proc.js';
import { attachEtcd, etcdClusterState, startEtcd, type EtcdCluster } from '../etcd.js';
import { clientTls, makeEtcdCertificates, type EtcdTlsFiles } from '../etcd-tls.js';
import type { PodProcess } from '../pod-handle.js';
import { labAgentSettings, type LabAgentSettings } from './agent-settings.js';
import { AgentProcess, findAgentPid, LabNode, startLabAgent, type ClusterNode } from './agents.js';
import { attachLabKube, labKubeState, startLabKube, type LabKube } from './kube-lab.js';
import { registerNode } from './kubelet.js';
import { checkUpOptions, type ClusterUpOptions, type Encap } from './options.js';
import { clusterNames, nodeName } from './names.js';
import {
  createPod,
  deletePod,
  detachedPod,
  isPodProcess,
  podState,
  probeMatrix,
  withProber,
  type ClusterPod,
  type ClusterPodSpec,
} from './pods.js';
import {
  DEFAULT_BGP_HOLD_TIME_SECONDS,
  LABS_DIR,
  labDir,
  labSettings,
  labState,
  readState,
  stateFile,
  writeLabConfig,
  writeState,
  type LabSettings,
  type LabState,
} from './state.js';
import { describeLab, LabExistsError, labNetns, LabNotFoundError, labPresence } from './status.js';
import { checkBuild, destroyClusterLab, teardownOf, trackBuild } from './teardown.js';
import { startTor, type LabTor } from './tor.js';
import { createUnderlay, plumbNode } from './underlay.js';

export { NETWORK, clusterNames, labCniSocket, podNetnsName } from './names.js';
export { isPodProcess, type ClusterPod, type ClusterPodSpec } from './pods.js';
export { LabExistsError, LabNotFoundError, labPresence } from './status.js';
export { destroyClusterLab, LabBuildStoppedError } from './teardown.js';
export { TOR_AS_NUMBER, TOR_HOST, type LabTor } from './tor.js';
export { findAgentPid, type ClusterNode, type LabAgent } from './agents.js';
export type { ClusterUpOptions, Encap } from './options.js';

export class ClusterLab {
  readonly nodes: ClusterNode[] = [];
  readonly pods: ClusterPod[] = [];
  readonly namespacesSeen = new Set<string>();
  etcd?: EtcdCluster;
  store?: Datastore;
  /** The lab outlives this process (built with `persist`, or re-attached with `open`). */
  persistent = false;
  private shim = '';
  private workDir = '';
  private createdAt = new Date().toISOString();
  /** Pod processes this object started and still talks to, by pod key. */
  private readonly live = new Map<string, PodProcess>();
  /** How the agents route ('bgp': BIRD per node). */
  routing: 'static' | 'bgp' = 'static';
  bgpHoldTimeSeconds = DEFAULT_BGP_HOLD_TIME_SECONDS;
  /** The external router (`tor: true`). */
  tor: LabTor | undefined;
  /** The agents' dataplane. */
  dataplane: 'bpf' | 'iptables' = 'bpf';
  /** The agents' defaultEndpointToHostAction; undefined: the agents' default (Drop). */
  endpointToHostAction: 'Drop' | 'Accept' | 'Return' | undefined;
  /** etcd requires client certificates; these are the lab's (`etcdTls: true`). */
  etcdTls: EtcdTlsFiles | undefined;
  /**
   * The Kubernetes datastore's control plane (`datastore: 'kubernetes'`): the API server,
   * the lab's admin client, the agents' and the plugin's kubeconfigs. Undefined: etcd.
   */
  kube: LabKube | undefined;

  private constructor(
    readonly id: string,
    readonly encap: Encap,
    readonly underlayPrefix: string,
    readonly podCidr: string,
    private readonly verbose: boolean,
  ) {}

  get description(): string {
    return describeLab({
      ...this,
      nodes: this.nodes.length,
      ...(this.kube === undefined ? {} : { datastore: 'kubernetes' as const }),
    });
  }

  /** Where the lab's resources live. */
  get datastore(): 'etcd' | 'kubernetes' {
    return this.kube === undefined ? 'etcd' : 'kubernetes';
  }

  /** Builds the whole lab; on any failure removes what it made and throws. */
  static async up(opts: ClusterUpOptions): Promise<ClusterLab> {
    clusterNames(opts.id);
    checkUpOptions(opts);
    const persist = opts.persist ?? false;
    // Never touch a lab that is there: refuse before making anything (the cleanup on a
    // failure below would remove it).
    const existing = labPresence(opts.id);
    if (existing.length > 0)
      throw new LabExistsError(
        `lab "${opts.id}" already exists (${existing.join('; ')}): remove it first with tortie lab down --id ${opts.id}`,
      );
    const lab = new ClusterLab(
      opts.id,
      opts.encap,
      opts.underlay ?? '192.168.231',
      opts.podCidr ?? '10.231.0.0/16',
      opts.verbose ?? false,
    );
    lab.routing = opts.routing ?? 'static';
    lab.bgpHoldTimeSeconds = opts.bgpHoldTimeSeconds ?? DEFAULT_BGP_HOLD_TIME_SECONDS;
    lab.dataplane = opts.dataplane ?? 'bpf';
    lab.endpointToHostAction = opts.endpointToHostAction;
    // The kernel part of `tortie node checksystem`, before anything is made: a missing
    // feature is refused here, named with its config option, not met deep in the lab.
    await preflightLab(`lab ${opts.id}`);
    if (persist) {
      mkdirSync(LABS_DIR, { recursive: true });
      try {
        mkdirSync(labDir(opts.id)); // exclusive: a second `lab up --id` at once fails here
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST')
          throw new LabExistsError(
            `lab "${opts.id}" already exists (${labDir(opts.id)}): remove it first with tortie lab down --id ${opts.id}`,
          );
        throw e;
      }
      lab.persistent = true;
    }
    // A teardown of this id (a signal's, or another caller's) stops the build at its next
    // step and removes what it made (./teardown.ts).
    const build = lab.build(opts);
    trackBuild(opts.id, build);
    try {
      await build;
    } catch (e) {
      const teardown = teardownOf(opts.id);
      if (teardown !== undefined) await teardown.catch(() => undefined);
      else await lab.down().catch(() => undefined);
      throw e;
    }
    return lab;
  }

  /** The steps of `up` after its checks; each checks first that no teardown has begun. */
  private async build(opts: ClusterUpOptions): Promise<void> {
    const id = opts.id;
    const step = () => checkBuild(id);
    const persist = this.persistent;
    step();
    const ulPath = await createUnderlay(id);
    for (let i = 0; i < opts.nodes; i++) {
      step();
      this.nodes.push(new LabNode(await plumbNode(id, i, ulPath, this.underlayPrefix)));
    }
    // The lab's work dir (the CNI shim, logs, the Kubernetes control plane's files).
    step();
    if (persist) {
      this.workDir = labDir(id);
      mkdirSync(join(this.workDir, 'logs'));
    } else this.workDir = mkdtempSync(join(tmpdir(), clusterNames(id).tempDir));
    if (opts.datastore === 'kubernetes') {
      // kube-apiserver + etcd 3.6, manifests, credentials, the pool, the Node objects.
      step();
      this.kube = await startLabKube({
        labId: id,
        dir: join(this.workDir, 'kube'),
        detached: persist,
        podCidr: this.podCidr,
        encap: opts.encap,
        nodes: this.nodes,
      });
    } else await this.startEtcdDatastore(opts, ulPath);
    await this.startAgentsAndCni(opts);
  }

  /** The etcd datastore: etcd (its certificates first, with etcdTls), the pool. */
  private async startEtcdDatastore(opts: ClusterUpOptions, ulPath: string): Promise<void> {
    const id = opts.id;
    const step = () => checkBuild(id);
    const persist = this.persistent;
    step();
    if (opts.etcdTls === true)
      this.etcdTls = await makeEtcdCertificates(
        persist
          ? join(labDir(id), 'tls')
          : mkdtempSync(join(tmpdir(), `${clusterNames(id).tempDir}tls-`)),
        id,
      );
    const tls = this.etcdTls === undefined ? {} : { tls: this.etcdTls };
    step();
    this.etcd = persist
      ? await startEtcd(id, opts.etcdMembers ?? 1, {
          detached: true,
          baseDir: join(labDir(id), 'etcd'),
          ...tls,
        })
      : await startEtcd(id, opts.etcdMembers ?? 1, tls);
    step();
    this.store = await Datastore.connect({
      endpoints: this.etcd.endpoints,
      prefix: clusterNames(id).etcdPrefix,
      ...this.clientTls(),
    });
    await this.store.apply([
      {
        apiVersion: 'tortie.io/v1',
        kind: 'IPPool',
        metadata: { name: 'lab' },
        spec: {
          cidr: this.podCidr,
          blockSize: 26,
          ipipMode: opts.encap === 'ipip' ? 'Always' : 'Never',
          ...(opts.encap === 'vxlan' ? { vxlanMode: 'Always' } : {}),
        },
      },
    ]);
    // The external router, and the BGPPeer that makes every node peer with it.
    if (opts.tor === true) {
      step();
      this.tor = await startTor(id, ulPath, this.underlayPrefix, this.workDir);
      await this.store.apply([
        {
          apiVersion: 'tortie.io/v1',
          kind: 'BGPPeer',
          metadata: { name: 'tor' },
          spec: { peerIP: this.tor.ip, asNumber: this.tor.asNumber },
        },
      ]);
    }
  }

  /** The CNI plugin, installed as a runtime would find it; one agent per node. */
  private async startAgentsAndCni(opts: ClusterUpOptions): Promise<void> {
    const id = opts.id;
    const step = () => checkBuild(id);
    const persist = this.persistent;
    step();
    ({ plugin: this.shim } = await installCni({ binDir: join(this.workDir, 'bin') }));
    // One agent per node.
    const kind = persist || this.kube !== undefined ? 'process' : (opts.agents ?? 'inline');
    step();
    // Every start settles before the build ends (a failed one must leave no other running
    // unseen by the teardown); the first failure is the build's.
    const started = await Promise.allSettled(
      this.nodes.map(async (n) => {
        n.handle = await startLabAgent(kind, this.agentSettings(n), this.verbose);
      }),
    );
    const failed = started.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    if (persist) {
      step();
      writeLabConfig(
        id,
        this.etcd?.endpoints ?? [],
        this.etcdTls,
        this.kube?.server.adminKubeconfig,
      );
      this.save();
    }
  }

  /**
   * Re-attaches to a persistent lab from its state file (built by another process with
   * `persist`), with the settings the file keeps. `connect: false` skips the datastore
   * connection (probe, exec, down need none). Its pods run detached: probe them with
   * `probe` / `matrix`.
   */
  static async open(id: string, opts: { connect?: boolean } = {}): Promise<ClusterLab> {
    clusterNames(id);
    const state = readState(id);
    if (state === undefined) {
      const left = labPresence(id);
      throw new LabNotFoundError(
        left.length > 0
          ? `lab "${id}" has no state file ${stateFile(id)} (its build crashed?); remove what is left with tortie lab down --id ${id}`
          : `no lab "${id}": build one with tortie lab up --id ${id}`,
      );
    }
    // A state file from before routing, hold time and ToR were kept: look, as then.
    const settings = labSettings(state, () => ({
      birdRunDir: existsSync(join(state.workDir, 'bird')),
      tor: existsSync(join(state.workDir, 'tor')) && labNetns(id).includes(clusterNames(id).tor),
    }));
    const lab = new ClusterLab(id, settings.encap, settings.underlay, settings.podCidr, false);
    lab.persistent = true;
    lab.routing = settings.routing;
    lab.bgpHoldTimeSeconds = settings.bgpHoldTimeSeconds;
    lab.tor = settings.tor;
    lab.dataplane = settings.dataplane;
    lab.endpointToHostAction = settings.endpointToHostAction;
    lab.etcdTls = settings.etcdTls;
    if (state.kube !== undefined) lab.kube = attachLabKube(state.kube);
    lab.shim = state.cniShim;
    lab.workDir = state.workDir;
    lab.createdAt = state.createdAt;
    if (lab.kube === undefined) lab.etcd = attachEtcd(state.etcd);
    for (const n of state.nodes) {
      const node = new LabNode(n);
      const pid = pidAlive(n.agentPid) ? n.agentPid : findAgentPid(n.pinRoot);
      node.handle = AgentProcess.adopt(lab.agentSettings(node, n.agentLog), pid);
      lab.nodes.push(node);
    }
    for (const p of state.pods) lab.pods.push(detachedPod(p));
    if (opts.connect !== false && lab.etcd !== undefined) {
      lab.store = await Datastore.connect({
        endpoints: lab.etcd.endpoints,
        prefix: state.etcdPrefix,
        ...lab.clientTls(),
      });
    }
    return lab;
  }

  /** Where the nodes' BIRDs keep config, socket, pid file and log (routing 'bgp'). */
  get bgpRunDir(): string {
    return join(this.workDir, 'bird');
  }

  /** `{ tls }` for src/datastore when etcd requires client certificates, else nothing. */
  clientTls(): { tls?: { ca: string; cert: string; key: string } } {
    return this.etcdTls === undefined ? {} : { tls: clientTls(this.etcdTls) };
  }

  /** The settings of `n`'s agent (./agent-settings.ts), its log file under the work dir. */
  private agentSettings(
    n: { name: string; netns: string; underlayIp: string; pinRoot: string },
    logFile?: string,
    labels?: Readonly<Record<string, string>>,
  ): LabAgentSettings {
    return labAgentSettings(
      {
        ...this,
        etcdEndpoints: this.etcd?.endpoints ?? [],
        bgpRunDir: this.bgpRunDir,
        agentKubeconfig: this.kube?.agentKubeconfig,
      },
      n,
      {
        logFile:
          logFile ??
          (this.persistent
            ? join(this.workDir, 'logs', `agent-${n.name}.log`)
            : join(this.workDir, `agent-${n.name}.log`)),
        ...(labels === undefined ? {} : { labels }),
      },
    );
  }

  /** The state file's content for this (persistent) lab: every setting a reopened lab needs. */
  state(): LabState {
    return labState({
      id: this.id,
      createdAt: this.createdAt,
      settings: this.settings,
      workDir: this.workDir,
      cniShim: this.shim,
      nodes: this.nodes.map((n) => ({
        name: n.name,
        netnsName: n.netns.split('/').pop()!,
        netns: n.netns,
        underlayIp: n.underlayIp,
        pinRoot: n.pinRoot,
        ...(n.process?.pid === undefined ? {} : { agentPid: n.process.pid }),
        agentLog: n.process?.options.logFile ?? '',
      })),
      etcd:
        this.etcd === undefined
          ? { endpoints: [], baseDir: '', initialCluster: '', token: '', members: [] }
          : { endpoints: this.etcd.endpoints, ...etcdClusterState(this.etcd) },
      pods: this.pods.map(podState),
      kube: this.kube === undefined ? undefined : labKubeState(this.kube),
    });
  }

  /** The settings the lab runs with (what its state file keeps). */
  get settings(): LabSettings {
    return {
      encap: this.encap,
      underlay: this.underlayPrefix,
      podCidr: this.podCidr,
      dataplane: this.dataplane,
      endpointToHostAction: this.endpointToHostAction,
      routing: this.routing,
      bgpHoldTimeSeconds: this.bgpHoldTimeSeconds,
      tor: this.tor,
      etcdTls: this.etcdTls,
      ...(this.kube === undefined ? {} : { datastore: 'kubernetes' as const }),
    };
  }

  /** Writes the state file (persistent labs). */
  save(): void {
    if (!this.persistent) throw new Error(`lab ${this.id} is not persistent: nothing to save`);
    writeState(this.state());
  }

  /**
   * Lets go of a persistent lab and leaves it running: pod processes started here are
   * detached, the datastore connection closed. The state file stays as last saved.
   */
  async close(): Promise<void> {
    if (!this.persistent)
      throw new Error(`lab ${this.id} is not persistent: remove it with down()`);
    for (const p of this.live.values()) p.detach();
    this.live.clear();
    await this.store?.close().catch(() => undefined);
    this.store = undefined;
    this.kube?.api.close();
  }

  node(ref: number | string): ClusterNode {
    const n = typeof ref === 'number' ? this.nodes[ref] : this.nodes.find((x) => x.name === ref);
    if (!n) throw new Error(`no node ${String(ref)}`);
    return n;
  }

  /**
   * Adds a node to a running lab, exactly as `up` builds each node: its namespace, a veth
   * `ul` to the underlay bridge with the next address (`<underlay>.<i + 1>/24`), forwarding
   * on, then its agent (a process when the lab's agents are processes, else inline) with
   * the lab's routing; `labels` go to the agent (`--labels`), which merges them into its
   * Node. Resolves once the agent is ready (first sync programmed), with the
   * `performance.now()` at which its start began. A persistent lab's state file is saved.
   */
  async addNode(
    opts: { labels?: Readonly<Record<string, string>> } = {},
  ): Promise<{ node: ClusterNode; agentStartedAt: number }> {
    const names = clusterNames(this.id);
    const taken = new Set(this.nodes.map((n) => n.name));
    let i = 0;
    while (taken.has(nodeName(names.node(i)))) i++;
    // .250 is the ToR's (`tor: true`).
    if (i + 1 >= 250) throw new Error(`lab ${this.id}: no underlay address left for a node`);
    const kind =
      this.nodes.length > 0 && this.nodes.every((n) => n.handle?.kind === 'inline')
        ? 'inline'
        : 'process';
    let agentStartedAt = 0;
    let node: LabNode | undefined;
    try {
      node = new LabNode(
        await plumbNode(this.id, i, netnsPath(names.underlay), this.underlayPrefix),
      );
      this.nodes.push(node);
      if (this.kube !== undefined)
        await registerNode(this.kube.api, node.name, `${node.underlayIp}/24`);
      agentStartedAt = performance.now();
      node.handle = await startLabAgent(
        kind,
        this.agentSettings(node, undefined, opts.labels),
        this.verbose,
      );
      if (this.persistent) this.save();
    } catch (e) {
      // Leave nothing of a node that failed: its agent, its namespace (the veth goes with it), its pins.
      await node?.handle?.kill().catch(() => undefined);
      if (node !== undefined && this.nodes.includes(node))
        this.nodes.splice(this.nodes.indexOf(node), 1);
      await deleteNetns(names.node(i)).catch(() => undefined);
      if (existsSync(names.pinRoot(i))) removePins(names.pinRoot(i));
      throw e;
    }
    return { node, agentStartedAt };
  }

  /**
   * A namespace for pods (the agent's kns.<name> profile needs it); on Kubernetes a
   * Namespace object and its `default` ServiceAccount, created when missing.
   */
  async createNamespace(name: string, labels: Record<string, string> = {}): Promise<void> {
    if (this.kube !== undefined) {
      await this.kube.server.ensureNamespace(name, labels);
      this.namespacesSeen.add(name);
      return;
    }
    await this.store!.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } }]);
    this.namespacesSeen.add(name);
  }

  /** The lab's installed CNI plugin (each node's agent serves it on labCniSocket). */
  get cniPlugin(): string {
    return this.shim;
  }

  /** What the CNI calls need of this lab (./pods.ts). */
  private get podContext() {
    return {
      ...this,
      shim: this.shim,
      etcdEndpoints: this.etcd?.endpoints ?? [],
      kube:
        this.kube === undefined
          ? undefined
          : { api: this.kube.api, cniKubeconfig: this.kube.cniKubeconfig },
    };
  }

  /** Creates the pod namespace, runs the CNI plugin's ADD for it, starts its pod process. */
  async addPod(spec: ClusterPodSpec): Promise<ClusterPod> {
    const node = this.node(spec.node);
    const key = `${spec.namespace}/${spec.name}`;
    if (this.pods.some((p) => p.key === key)) throw new Error(`pod ${key} already exists`);
    if (!this.namespacesSeen.has(spec.namespace) && this.kube !== undefined)
      await this.createNamespace(spec.namespace); // kept as it is when there
    else if (!this.namespacesSeen.has(spec.namespace)) {
      // Create it only when missing: labels set on it since must stay.
      if ((await this.store!.get('Namespace', spec.namespace)) === undefined)
        await this.createNamespace(spec.namespace);
      else this.namespacesSeen.add(spec.namespace);
    }
    const pod = await createPod(this.podContext, node, spec);
    this.live.set(key, pod.process);
    this.pods.push(pod);
    if (this.persistent) this.save();
    return pod;
  }

  /** CNI DEL for the pod, stops its process, deletes its namespace; saves a persistent lab. */
  async removePod(key: string): Promise<void> {
    const pod = this.pod(key);
    await deletePod(this.podContext, this.node(pod.node), pod, this.live.get(key));
    this.live.delete(key);
    this.pods.splice(this.pods.indexOf(pod), 1);
    if (this.persistent) this.save();
  }

  /** Reads the pod's WorkloadEndpoint, lets `edit` change it, writes it back. */
  async updateEndpoint(
    key: string,
    edit: (wep: {
      metadata: { labels?: Record<string, string> };
      spec: { ports?: { name: string; protocol: string; port: number }[] };
    }) => void,
  ): Promise<void> {
    const pod = this.pod(key);
    const weps = await this.store!.list('WorkloadEndpoint', { namespace: pod.namespace });
    const wep = weps.find((w) => w.spec.containerID === pod.containerId);
    if (!wep) throw new Error(`no WorkloadEndpoint for pod ${key}`);
    const copy = structuredClone(wep) as unknown as Parameters<typeof edit>[0];
    edit(copy);
    await this.store!.apply([copy]);
  }

  pod(key: string): ClusterPod {
    const p = this.pods.find((x) => x.key === key);
    if (!p) throw new Error(`no pod ${key}`);
    return p;
  }

  /** One connection attempt from pod `from` to pod `to` (keys "ns/name"). */
  probe(
    from: string,
    to: string,
    port = 80,
    protocol: 'tcp' | 'udp' = 'tcp',
    timeoutMs = 500,
  ): Promise<boolean> {
    const ip = this.pod(to).ip;
    const live = this.live.get(from);
    if (live) return live.probe(protocol, ip, port, timeoutMs);
    return withProber(this.pod(from), (p) => p.probe(protocol, ip, port, timeoutMs));
  }

  /** Every ordered pair of distinct pods: "from -> to" → reachable. */
  matrix(
    port = 80,
    protocol: 'tcp' | 'udp' = 'tcp',
    timeoutMs = 500,
  ): Promise<Record<string, boolean>> {
    return probeMatrix(this.pods, this.live, port, protocol, timeoutMs);
  }

  /**
   * Waits until every node's agent (inline or process) has programmed a model holding
   * every change up to store `revision` — e.g. the highest resourceVersion an apply
   * returned.
   */
  async waitForRevision(revision: string | bigint, timeoutMs = 30_000): Promise<void> {
    await Promise.all(
      this.nodes.map((n) =>
        n.handle === undefined
          ? Promise.reject(new Error(`node ${n.name} has no agent`))
          : n.handle.waitForRevision(revision, timeoutMs),
      ),
    );
  }

  /** Removes everything this lab made (pods, agents, etcd, pins, namespaces, temp dirs). */
  async down(): Promise<void> {
    // Detached (persistent) pod processes do not end with their stdin: kill them.
    for (const p of this.pods) if (p.pid !== undefined && isPodProcess(p.pid)) signalPid(p.pid);
    await Promise.all([...this.live.values()].map((p) => p.stop().catch(() => undefined)));
    this.live.clear();
    await Promise.all(this.nodes.map((n) => n.handle?.stop().catch(() => undefined)));
    await this.store?.close().catch(() => undefined);
    await this.etcd?.stop().catch(() => undefined);
    this.kube?.api.close();
    await this.kube?.server.stop().catch(() => undefined);
    await destroyClusterLab(this.id);
  }
}

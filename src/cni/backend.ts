/**
 * What the CNI commands need from the datastore and the IPAM, as one narrow interface.
 * The commands are written against it; `etcd-backend.ts` implements it over
 * src/datastore and src/ipam (imported lazily, with the etcd client, when a command needs
 * the store), and tests may substitute their own.
 */
import type { PodFacts } from './k8s-pod.js';
import type { PoolSpec } from './pools.js';

export interface EndpointSpec {
  node: string;
  orchestrator: string;
  workload: string;
  endpoint: string;
  containerID: string;
  network: string;
  interfaceName: string;
  mac: string;
  ipNetworks: string[];
  profiles: string[];
  ports: unknown[];
  /** As Calico's CNI plugin writes it; the endpoint then also lists `ksa.<namespace>.<account>`. */
  serviceAccountName?: string;
}

export interface EndpointRecord {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  spec: EndpointSpec;
}

export interface AssignRequest {
  handle: string;
  node: string;
  pools: PoolSpec[];
  /** Recorded with the allocation: node, network, containerID, ifname, namespace, workload, pod. */
  attrs: Record<string, string>;
  /**
   * The IPAM settings (reservations, IPAMConfiguration) as ipamSettings() read them for
   * this assignment, alongside ADD's other reads; absent: the assignment reads them.
   */
  settings?: IpamSettings;
}

/** What ipamSettings() read: opaque to the commands, handed back to the assignment. */
export interface IpamSettings {
  readonly reserved: readonly string[];
  readonly config?: {
    readonly strictAffinity: boolean;
    readonly autoAllocateBlocks: boolean;
    readonly maxBlocksPerHost: number;
  };
}

/** An allocation as IPAM holds it: its handle, addresses and the attributes given at ADD. */
export interface Allocation {
  handle: string;
  ips: string[];
  attrs: Record<string, string>;
}

export type IpamFailureKind = 'exhausted' | 'no-pool' | 'conflict' | 'other';

/** An IPAM refusal, classified for the CNI error code. */
export class IpamFailure extends Error {
  override readonly name = 'IpamFailure';
  constructor(
    readonly kind: IpamFailureKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The datastore did not answer (refused, timed out): the runtime should try again. */
export class DatastoreUnavailable extends Error {
  override readonly name = 'DatastoreUnavailable';
}

/** The node's agent did not report the endpoint programmed in time: ADD fails closed. */
export class EndpointNotProgrammed extends Error {
  override readonly name = 'EndpointNotProgrammed';
}

export interface CniBackend {
  /** Where the datastore is, for messages ("etcd at http://…"). */
  readonly description: string;
  /** Fails with DatastoreUnavailable unless the datastore answers. */
  ping(): Promise<void>;
  listPools(): Promise<PoolSpec[]>;
  /** The labels of the Node resource; {} when there is no Node resource of that name. */
  nodeLabels(node: string): Promise<Record<string, string>>;
  getEndpoint(namespace: string, name: string): Promise<EndpointRecord | undefined>;
  /**
   * Creates or updates it; resolves with its resourceVersion as written. `seenAbsent`:
   * the caller's getEndpoint found none a moment ago (a backend may then skip reading it
   * again; the write stays guarded on what is stored).
   */
  putEndpoint(
    endpoint: EndpointRecord,
    options?: { seenAbsent?: boolean },
  ): Promise<{ revision: string | undefined }>;
  /**
   * Resolves once the agent of `node` reports the endpoint programmed at `revision` or
   * later; rejects with EndpointNotProgrammed after `timeoutMs`.
   */
  waitForProgrammed(request: {
    node: string;
    namespace: string;
    name: string;
    revision: string | undefined;
    timeoutMs: number;
  }): Promise<void>;
  /**
   * Only where the node's agent serves the call itself and runs the BPF dataplane in the
   * namespace `hostNetns` (undefined: the caller's): its endpoint programs, to attach to a
   * pod's host veth before it is up (the guard of ./guard.ts). Undefined otherwise: the
   * guard is then the policy-routing rules.
   */
  endpointPrograms?(hostNetns: string | undefined): EndpointPrograms | undefined;
  /** Deletes it; absent is fine. */
  deleteEndpoint(namespace: string, name: string): Promise<void>;
  /** Every WorkloadEndpoint in every namespace. */
  listEndpoints(): Promise<EndpointRecord[]>;
  /**
   * The IPAM settings an assignment obeys, read now (live: a reservation applied a moment
   * ago holds). ADD reads them with its other reads, one round trip less.
   */
  ipamSettings?(): Promise<IpamSettings>;
  /** Idempotent per handle: a second call returns the same address. */
  autoAssign(request: AssignRequest): Promise<{ ip: string }>;
  /**
   * autoAssign started before its request is known (ADD's reads still under way): the
   * store's first read for the handle overlaps them. Nothing is written before `later`
   * resolves; its rejection is this call's, and `undefined` (no automatic assignment
   * wanted) resolves undefined having written nothing.
   */
  autoAssignWhenReady?(
    first: { handle: string; node: string },
    later: Promise<AssignRequest | undefined>,
  ): Promise<{ ip: string } | undefined>;
  /**
   * Takes exactly `ip` (Calico's ipAddrs annotation) from the pool of `pools` holding it;
   * IpamFailure 'no-pool' when none does, 'conflict' when it is taken.
   */
  assignIp(request: AssignRequest & { ip: string }): Promise<void>;
  /**
   * The pod kubelet called the plugin for, and its namespace's annotations, read from the
   * API: only on the Kubernetes datastore (undefined elsewhere); resolves undefined when
   * the pod does not exist.
   */
  readPod?(namespace: string, name: string): Promise<PodFacts | undefined>;
  /** Releases everything held by the handle; returns the addresses released ([] if none). */
  releaseByHandle(handle: string): Promise<string[]>;
  /**
   * releaseByHandle for several handles (at most `releaseBatch`) in one transaction: the
   * addresses released, per handle in order. Optional: without it, one at a time.
   */
  releaseByHandles?(handles: readonly string[]): Promise<string[][]>;
  /**
   * autoAssign for several handles of one node (at most `assignBatch`) in one transaction,
   * from the node's own blocks: per request its address, or undefined for autoAssign to
   * serve. Optional: without it, one at a time.
   */
  autoAssignMany?(requests: readonly AssignRequest[]): Promise<({ ip: string } | undefined)[]>;
  readonly assignBatch?: number;
  readonly releaseBatch?: number;
  addressesOf(handle: string): Promise<string[]>;
  /** Every allocation whose handle starts with `prefix`. */
  allocations(prefix: string): Promise<Allocation[]>;
  close(): Promise<void>;
}

/** The allocation handle of an attachment, as Calico: `<network>.<containerID>`. */
export function allocationHandle(network: string, containerId: string): string {
  return `${network}.${containerId}`;
}

/** fds of the agent's tortie_from_pod and tortie_to_pod (src/loader/attach.ts). */
export interface EndpointPrograms {
  readonly fromPodFd: number;
  readonly toPodFd: number;
}

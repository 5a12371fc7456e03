/**
 * CniBackend over the real store: src/datastore for pools, nodes and endpoints, src/ipam
 * for addresses, both on one etcd client. Their errors are mapped here, by the kinds the
 * datastore and IPAM gave them (neither reads etcd's messages here): etcd not answering
 * becomes DatastoreUnavailable (CNI code 11), IPAM refusals IpamFailure.
 *
 * The client is the JSON-gateway one (src/datastore/etcd/gateway.ts), passed to the datastore
 * and IPAM: loading the `etcd3` package (gRPC) would be by far the largest part of the
 * plugin's startup. With `grpc` the datastore loads and uses `etcd3` instead. This module
 * is imported only when a command needs the store.
 */
import { EndpointNotProgrammedError, waitForEndpointProgrammed } from '../agent/status.js';
import {
  batchingReads,
  Datastore,
  EtcdGatewayClient,
  grpcEtcdClientFactory,
  isDatastoreError,
  type EtcdClientFactory,
  type EtcdKvClient,
} from '../datastore/index.js';
import { ASSIGN_BATCH, HANDLE_BATCH, Ipam, isIpamError } from '../ipam/index.js';
import {
  DatastoreUnavailable,
  EndpointNotProgrammed,
  IpamFailure,
  type Allocation,
  type CniBackend,
  type EndpointRecord,
  type EndpointSpec,
  type IpamSettings,
} from './backend.js';
import type { NetworkConfig } from './config.js';
import type { PoolSpec } from './pools.js';

/** Which etcd client the plugin uses: the JSON-gateway one, or the `etcd3` package's. */
export type EtcdClientKind = 'gateway' | 'grpc';

/** Deadline of every etcd call: an unreachable etcd must fail the call, not hang it. */
export const ETCD_TIMEOUT_MS = 5000;

const API_VERSION = 'tortie.io/v1';

export async function openEtcdBackend(
  options: NetworkConfig['datastore'],
  client: EtcdClientKind = 'gateway',
): Promise<CniBackend> {
  const description = `etcd at ${options.endpoints.join(',')}`;
  const connectOptions = {
    endpoints: options.endpoints,
    ...(options.prefix === undefined ? {} : { prefix: options.prefix }),
    // etcd_ca_cert_file / etcd_cert_file / etcd_key_file: read by src/datastore, handed to
    // either client as `credentials` (the gateway one puts them on its https agent).
    ...(options.tls === undefined ? {} : { tls: options.tls }),
    timeoutMs: ETCD_TIMEOUT_MS,
  };
  let store: Datastore<EtcdKvClient>;
  try {
    // An ADD's reads, made together through the datastore and IPAM, go as one request
    // (../datastore/etcd/batch.ts).
    const create: EtcdClientFactory<EtcdKvClient> =
      client === 'grpc' ? await grpcEtcdClientFactory() : (o) => new EtcdGatewayClient(o);
    store = await Datastore.connect(connectOptions, (o) => batchingReads(create(o)));
  } catch (err) {
    throw classify(err, description);
  }
  const ipam = new Ipam(store.etcd, store.prefix, { timeoutMs: ETCD_TIMEOUT_MS });
  return new StoreBackend(store, ipam, description);
}

/**
 * The backend over any store and IPAM sharing one KV client: etcd's here, the Kubernetes
 * API's in ./kube-backend.ts (which adds the pod reads).
 */
export class StoreBackend implements CniBackend {
  constructor(
    protected readonly store: Datastore<EtcdKvClient>,
    protected readonly ipam: Ipam,
    readonly description: string,
  ) {}

  async ping(): Promise<void> {
    await this.guard(() => this.store.list('Node'));
  }

  async listPools(): Promise<PoolSpec[]> {
    const pools = await this.guard(() => this.store.list('IPPool'));
    return pools.map((p) => ({
      name: p.metadata.name,
      cidr: p.spec.cidr,
      blockSize: p.spec.blockSize,
      disabled: p.spec.disabled,
      nodeSelector: p.spec.nodeSelector,
      allowedUses: [...p.spec.allowedUses],
      assignmentMode: p.spec.assignmentMode,
    }));
  }

  async nodeLabels(node: string): Promise<Record<string, string>> {
    const found = await this.guard(() => this.store.get('Node', node));
    return { ...(found?.metadata.labels ?? {}) };
  }

  async getEndpoint(namespace: string, name: string): Promise<EndpointRecord | undefined> {
    const found = await this.guard(() => this.store.get('WorkloadEndpoint', name, namespace));
    return found ? toRecord(found) : undefined;
  }

  /**
   * Whether a write may trust the caller's "seen absent" (etcd: the endpoint's key is
   * its own). On Kubernetes the endpoint is the pod, which exists: never absent.
   */
  protected readonly trustsSeenAbsent: boolean = true;

  async putEndpoint(
    e: EndpointRecord,
    options: { seenAbsent?: boolean } = {},
  ): Promise<{ revision: string | undefined }> {
    const seenAbsent = this.trustsSeenAbsent && options.seenAbsent === true;
    const [written] = await this.guard(() =>
      this.store.apply(
        [
          {
            apiVersion: API_VERSION,
            kind: 'WorkloadEndpoint',
            metadata: { name: e.name, namespace: e.namespace, labels: e.labels },
            // Calico names a Kubernetes pod's endpoint by `pod` (its client refuses an update
            // of a k8s endpoint without one, e.g. `calicoctl label`): written as Calico's CNI does.
            spec: e.spec.orchestrator === 'k8s' ? { ...e.spec, pod: e.spec.workload } : e.spec,
          },
        ],
        { seenAbsent },
      ),
    );
    return { revision: written?.resource.metadata.resourceVersion };
  }

  async waitForProgrammed(request: Parameters<CniBackend['waitForProgrammed']>[0]): Promise<void> {
    try {
      await waitForEndpointProgrammed(this.store, {
        node: request.node,
        namespace: request.namespace,
        name: request.name,
        timeoutMs: request.timeoutMs,
        ...(request.revision === undefined ? {} : { revision: request.revision }),
      });
    } catch (err) {
      if (err instanceof EndpointNotProgrammedError) {
        throw new EndpointNotProgrammed(err.message, { cause: err });
      }
      throw classify(err, this.description);
    }
  }

  async deleteEndpoint(namespace: string, name: string): Promise<void> {
    await this.guard(() =>
      this.store.delete({ kind: 'WorkloadEndpoint', name, namespace }, { ignoreNotFound: true }),
    );
  }

  async listEndpoints(): Promise<EndpointRecord[]> {
    const all = await this.guard(() => this.store.list('WorkloadEndpoint'));
    return all.map(toRecord);
  }

  /**
   * IPReservations and the IPAMConfiguration are read on every assignment (live, as
   * Calico's IPAM reads them): a reservation applied a moment ago already holds.
   */
  async autoAssign(request: Parameters<CniBackend['autoAssign']>[0]): Promise<{ ip: string }> {
    const { settings, ...rest } = request;
    const live = this.ipamRequest(settings ?? (await this.ipamSettings()));
    const { ip } = await this.guard(() => this.ipam.autoAssign({ ...rest, ...live }));
    return { ip };
  }

  async autoAssignWhenReady(
    first: { handle: string; node: string },
    later: Promise<Parameters<CniBackend['autoAssign']>[0] | undefined>,
  ): Promise<{ ip: string } | undefined> {
    const request = later.then(async (r) => {
      if (r === undefined) return undefined;
      const { settings, ...rest } = r;
      return { ...rest, ...this.ipamRequest(settings ?? (await this.ipamSettings())) };
    });
    const got = await this.guard(() => this.ipam.autoAssignWhenReady(first, request));
    return got && { ip: got.ip };
  }

  async assignIp(request: Parameters<CniBackend['assignIp']>[0]): Promise<void> {
    const { settings, ...rest } = request;
    const live = this.ipamRequest(settings ?? (await this.ipamSettings()));
    await this.guard(() => this.ipam.assignIp({ ...rest, ...live }));
  }

  async ipamSettings(): Promise<IpamSettings> {
    const [reservations, config] = await this.guard(() =>
      Promise.all([
        this.store.list('IPReservation'),
        this.store.get('IPAMConfiguration', 'default'),
      ]),
    );
    return {
      reserved: reservations.flatMap((r) => r.spec.reservedCIDRs),
      ...(config
        ? {
            config: {
              strictAffinity: config.spec.strictAffinity,
              autoAllocateBlocks: config.spec.autoAllocateBlocks,
              maxBlocksPerHost: config.spec.maxBlocksPerHost ?? 0,
            },
          }
        : {}),
    };
  }

  private ipamRequest(settings: IpamSettings) {
    return {
      use: 'Workload' as const,
      reserved: [...settings.reserved],
      ...(settings.config === undefined ? {} : { config: { ...settings.config } }),
    };
  }

  releaseByHandle(handle: string): Promise<string[]> {
    return this.guard(() => this.ipam.releaseByHandle(handle));
  }

  readonly releaseBatch = HANDLE_BATCH;
  readonly assignBatch = ASSIGN_BATCH;

  async autoAssignMany(
    requests: readonly Parameters<CniBackend['autoAssign']>[0][],
  ): Promise<({ ip: string } | undefined)[]> {
    // Settings are read by the ADDs themselves (with their other reads); one read here
    // for any that came without.
    const shared = requests.some((r) => r.settings === undefined)
      ? await this.ipamSettings()
      : undefined;
    const live = requests.map(({ settings, ...rest }) => ({
      ...rest,
      ...this.ipamRequest((settings ?? shared)!),
    }));
    const got = await this.guard(() => this.ipam.autoAssignMany(live));
    return got.map((a) => a && { ip: a.ip });
  }

  releaseByHandles(handles: readonly string[]): Promise<string[][]> {
    return this.guard(() => this.ipam.releaseByHandles(handles));
  }

  addressesOf(handle: string): Promise<string[]> {
    return this.guard(() => this.ipam.addressesOf(handle));
  }

  /**
   * IPAM has no listing of allocations: its check, judged against an empty live set with
   * no grace period, reports every allocation as a leak, each with its handle and attrs.
   */
  async allocations(prefix: string): Promise<Allocation[]> {
    const report = await this.guard(() => this.ipam.check({ handles: new Set(), graceMs: 0 }));
    const byHandle = new Map<string, Allocation>();
    for (const leak of [...report.leaks, ...report.inGrace]) {
      if (!leak.handle.startsWith(prefix)) continue;
      const entry = byHandle.get(leak.handle) ?? {
        handle: leak.handle,
        ips: [],
        attrs: { ...leak.attrs },
      };
      entry.ips.push(leak.ip);
      entry.attrs.node ??= leak.node;
      byHandle.set(leak.handle, entry);
    }
    return [...byHandle.values()];
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  protected async guard<T>(operation: () => Promise<T>): Promise<T> {
    try {
      return await operation();
    } catch (err) {
      throw classify(err, this.description);
    }
  }
}

function toRecord(r: {
  metadata: { name: string; namespace?: string; labels?: Readonly<Record<string, string>> };
  spec: unknown;
}): EndpointRecord {
  const spec = r.spec as Partial<EndpointSpec>;
  return {
    name: r.metadata.name,
    namespace: r.metadata.namespace ?? 'default',
    labels: { ...(r.metadata.labels ?? {}) },
    spec: {
      node: spec.node ?? '',
      orchestrator: spec.orchestrator ?? '',
      workload: spec.workload ?? '',
      endpoint: spec.endpoint ?? '',
      containerID: spec.containerID ?? '',
      network: spec.network ?? '',
      interfaceName: spec.interfaceName ?? '',
      mac: spec.mac ?? '',
      ipNetworks: spec.ipNetworks ?? [],
      profiles: spec.profiles ?? [],
      ports: spec.ports ?? [],
      ...(spec.serviceAccountName === undefined
        ? {}
        : { serviceAccountName: spec.serviceAccountName }),
    },
  };
}

function classify(err: unknown, description: string): Error {
  if (isDatastoreError(err, 'unavailable') || isIpamError(err, 'unavailable')) {
    return new DatastoreUnavailable(`${description} is unreachable: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (isIpamError(err)) {
    const kind =
      err.kind === 'exhausted' || err.kind === 'no-pool' || err.kind === 'conflict'
        ? err.kind
        : 'other';
    return new IpamFailure(kind, err.message, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * ADD: take an address, plumb the pod, record its WorkloadEndpoint, answer the result.
 *
 * Order matters for what a crash leaves behind. The address is taken first (under the
 * attachment's handle), then the veth, then the endpoint record. Killed at any point, the
 * worst left is a handle without an endpoint — exactly what `ipam check` calls a leak and
 * `ipam gc` (or the runtime's DEL) releases — never an endpoint claiming an address IPAM
 * does not hold. Any failure after the address is taken rolls everything back before the
 * error is returned, and the error says what the rollback did.
 *
 * No unprotected window: with `agent_wait_ms` > 0 (the default), ADD returns only once the
 * node's agent reports the new endpoint (at the revision written here) programmed, i.e.
 * its policy is in the maps before the pod can run. Otherwise it rolls back and fails with
 * 11 (try again later), so the runtime retries: fail closed.
 */
import { createPodNetwork, deletePodNetwork, PlumbingError } from '../../plumbing/index.js';
import { assertHostNetnsExists, assertPodNetnsExists, attachmentKeys } from '../attachment.js';
import { IpamFailure, type CniBackend, type EndpointRecord } from '../backend.js';
import type { NetworkConfig } from '../config.js';
import type { AttachmentEnv } from '../env.js';
import { CniCode, CniError } from '../errors.js';
import { backendError } from '../failures.js';
import { serviceAccountProfileName } from '../../policy/service-accounts.js';
import { workloadIdentity, type WorkloadIdentity } from '../identity.js';
import { podAddressRequest, type PodAddressRequest, type PodFacts } from '../k8s-pod.js';
import { selectPools, type PoolSpec } from '../pools.js';
import { guardPod, unguardPod } from '../guard.js';
import { buildAddResult, type AddResult } from '../result.js';
import { mark } from '../trace.js';

export async function cmdAdd(
  env: AttachmentEnv,
  config: NetworkConfig,
  openBackend: () => Promise<CniBackend>,
): Promise<AddResult> {
  const netns = env.netns as string; // parseCniEnv requires it for ADD
  await Promise.all([assertPodNetnsExists(netns), assertHostNetnsExists(config)]);
  const keys = attachmentKeys(env, config);
  const who = workloadIdentity({
    node: config.nodename,
    containerId: env.containerId,
    ifName: env.ifName,
    args: env.args,
    overrides: config.identity,
  });

  if (config.datastoreType === 'kubernetes') assertKubernetesPod(who, env);

  const backend = await openBackend();
  mark('store-loaded');
  // The reads and checks below decide the assignment's request; the assignment's own first
  // read (the handle, the node's blocks) needs none of it and runs meanwhile. It writes
  // nothing until the request is known, and nothing at all if a check refuses the ADD.
  const prepared = prepare();
  const early = backend.autoAssignWhenReady?.(
    { handle: keys.handle, node: config.nodename },
    prepared.then((r) => (r.wanted.kind === 'auto' ? r.request : undefined)),
  );
  early?.catch(() => undefined); // its rejection is prepared's, or read below
  const { wanted, pools, request, pod, existing } = await prepared;
  mark('read');

  async function prepare() {
    const [allPools, nodeLabels, existing, held, pod, settings] = await Promise.all([
      backend.listPools(),
      backend.nodeLabels(config.nodename),
      backend.getEndpoint(who.namespace, who.endpointName),
      backend.addressesOf(keys.handle),
      config.datastoreType === 'kubernetes'
        ? readKubernetesPod(backend, who, env)
        : Promise.resolve(undefined),
      // Read with the rest, one round trip less for the assignment (still live).
      backend.ipamSettings?.(),
    ]).catch((err: unknown) => {
      throw backendError(
        err,
        `read pools, node ${config.nodename} and endpoint ${who.namespace}/${who.endpointName}`,
      );
    });
    // An endpoint of the same name but another container is an older sandbox of the same pod
    // (its DEL may still come): the new one takes the name over, as in Calico, and that DEL
    // leaves it alone because the container IDs differ.
    if (existing && existing.spec.containerID === env.containerId) {
      throw new CniError(
        CniCode.AlreadyAttached,
        `container ${env.containerId} is already attached to network ${config.name} as ${who.namespace}/${who.endpointName} (${existing.spec.endpoint} with ${existing.spec.ipNetworks.join(', ')}): DEL it before adding it again`,
      );
    }
    // The handle already holding an address means another interface of this container is
    // attached (one address per container and network, as Calico's handles), or an ADD
    // died half-way and the runtime has not sent its DEL yet. Either way, going on would hand
    // the same address to a second interface, and a rollback would take it from the first.
    if (held.length > 0) {
      throw new CniError(
        CniCode.AlreadyAttached,
        `container ${env.containerId} already holds ${held.join(', ')} on network ${config.name} (handle ${keys.handle}): tortie attaches a container once per network; DEL it before adding it again`,
      );
    }
    // Calico's pod annotations (ipAddrs, ipv4pools) override the config's pools.
    const wanted: PodAddressRequest = pod === undefined ? { kind: 'auto' } : podAddressRequest(pod);
    const node = { name: config.nodename, labels: nodeLabels };
    const pools =
      wanted.pools !== undefined
        ? selectPools(allPools, node, wanted.pools, wanted.poolsFrom)
        : wanted.kind === 'explicit' && config.pools === undefined
          ? // Calico: the address must lie in a configured pool, whichever (Manual ones and
            // ones not selecting this node included: naming the address is the choice).
            allPools.filter((p) => !p.cidr.includes(':'))
          : selectPools(allPools, node, config.pools);

    const request = {
      handle: keys.handle,
      node: config.nodename,
      pools,
      ...(settings === undefined ? {} : { settings }),
      attrs: {
        node: config.nodename,
        network: config.name,
        containerID: env.containerId,
        ifname: env.ifName,
        namespace: who.namespace,
        workload: who.workload,
        endpoint: `${who.namespace}/${who.endpointName}`,
        // Calico's CNI plugin names the pod (with its namespace) when there is one: what
        // `calicoctl ipam check` and `ipam show --show-borrowed` report an address by.
        ...(who.orchestrator === 'k8s' ? { pod: who.workload } : {}),
      },
    };

    return { wanted, pools, request, pod, existing };
  }

  let ip: string;
  try {
    if (wanted.kind === 'explicit') {
      await backend.assignIp({ ...request, ip: wanted.ip });
      ip = wanted.ip;
    } else {
      ({ ip } = (await early) ?? (await backend.autoAssign(request)));
    }
  } catch (err) {
    const error =
      wanted.kind === 'explicit'
        ? explicitAddressError(err, wanted.ip, keys.handle, pools)
        : backendError(
            err,
            `allocate an address for ${keys.handle} from ${pools.map((p) => `${p.name} (${p.cidr})`).join(', ')}`,
          );
    // A timeout may still have committed: release whatever the handle holds.
    if (error.code === CniCode.TryAgainLater)
      await backend.releaseByHandle(keys.handle).catch(() => []);
    throw error;
  }

  mark('assigned');
  const undo = new Rollback(backend, keys.handle, ip);
  // Until the agent has programmed the endpoint, the node's kernel would route the pod's
  // packets (and packets to it) with no policy: guard it first (../guard.ts). In the BPF
  // dataplane the guard is the agent's programs, attached before the veth is up; else
  // (iptables, or a server without the agent) policy-routing rules, before the veth exists.
  const programs =
    config.agentWaitMs > 0 ? backend.endpointPrograms?.(config.hostNetns) : undefined;
  if (config.agentWaitMs > 0 && programs === undefined) {
    try {
      await guardPod(config.hostNetns, keys.workloadId, ip);
    } catch (err) {
      throw await undo.fail(
        new CniError(CniCode.PlumbingFailed, (err as Error).message, { cause: err }),
      );
    }
    undo.guard = { workloadId: keys.workloadId, hostNetns: config.hostNetns };
    mark('guarded');
  }
  let podMac: string;
  let hostIfName: string;
  try {
    const net = await createPodNetwork({
      workloadId: keys.workloadId,
      podNetns: netns,
      ...(config.hostNetns === undefined ? {} : { hostNetns: config.hostNetns }),
      ip,
      ifName: env.ifName,
      ...(config.mtu === undefined ? {} : { mtu: config.mtu }),
      ...(programs === undefined ? {} : { programs }),
    });
    podMac = net.podMac;
    hostIfName = net.hostIfName;
  } catch (err) {
    // createPodNetwork undoes its own partial work.
    const message = err instanceof PlumbingError ? err.message : `plumbing failed: ${String(err)}`;
    throw await undo.fail(new CniError(CniCode.PlumbingFailed, message, { cause: err }));
  }
  undo.veth = { workloadId: keys.workloadId, hostNetns: config.hostNetns };
  mark('plumbed');

  const endpoint = endpointRecord(who, env, config, { ip, mac: podMac, hostIfName }, pod?.endpoint);
  let revision: string | undefined;
  try {
    ({ revision } = await backend.putEndpoint(endpoint, { seenAbsent: existing === undefined }));
  } catch (err) {
    undo.endpoint = endpoint;
    throw await undo.fail(
      backendError(err, `write WorkloadEndpoint ${who.namespace}/${who.endpointName}`),
    );
  }
  mark('recorded');

  if (config.agentWaitMs > 0) {
    try {
      await backend.waitForProgrammed({
        node: config.nodename,
        namespace: who.namespace,
        name: who.endpointName,
        revision,
        timeoutMs: config.agentWaitMs,
      });
    } catch (err) {
      undo.endpoint = endpoint;
      throw await undo.fail(
        backendError(
          err,
          `pod not started, so that it never runs without its policy (the runtime retries; agent_wait_ms sets the wait)`,
        ),
      );
    }
    mark('programmed');
  }
  if (undo.guard !== undefined) {
    // Programmed: the pod's traffic goes through its programs now.
    try {
      await unguardPod(config.hostNetns, keys.workloadId, [ip]);
    } catch (err) {
      undo.endpoint = endpoint;
      throw await undo.fail(
        new CniError(CniCode.PlumbingFailed, (err as Error).message, { cause: err }),
      );
    }
    undo.guard = undefined;
    mark('unguarded');
  }

  return buildAddResult(config.cniVersion, {
    hostIfName,
    podIfName: env.ifName,
    podMac,
    sandbox: netns,
    ip,
    ...(config.mtu === undefined ? {} : { mtu: config.mtu }),
    dns: config.dns,
  });
}

/**
 * On the Kubernetes datastore the endpoint is the pod itself (its annotations): without
 * kubelet's K8S_POD_NAMESPACE and K8S_POD_NAME there is no pod to write it to.
 */
function assertKubernetesPod(who: WorkloadIdentity, env: AttachmentEnv): void {
  if (who.orchestrator === 'k8s') return;
  const missing = ['K8S_POD_NAMESPACE', 'K8S_POD_NAME'].filter((k) =>
    k === 'K8S_POD_NAMESPACE'
      ? env.args.podNamespace === undefined
      : env.args.podName === undefined,
  );
  throw new CniError(
    CniCode.InvalidEnvironment,
    `CNI_ARGS lacks ${missing.join(' and ')}: on the Kubernetes datastore (datastore_type "kubernetes") the plugin attaches Kubernetes pods only, named as kubelet passes them`,
  );
}

/**
 * The pod from the API: it must exist and, when kubelet passed K8S_POD_UID, be that pod
 * (not a newer one of the same name, whose annotations this ADD must not write).
 */
async function readKubernetesPod(backend: CniBackend, who: WorkloadIdentity, env: AttachmentEnv) {
  if (backend.readPod === undefined) {
    throw new CniError(
      CniCode.Internal,
      `the backend ${backend.description} cannot read pods, but datastore_type is "kubernetes"`,
    );
  }
  const pod = await backend.readPod(who.namespace, who.workload);
  if (pod === undefined) {
    throw new CniError(
      CniCode.DatastoreFailed,
      `pod ${who.namespace}/${who.workload} (K8S_POD_NAMESPACE/K8S_POD_NAME) does not exist in the Kubernetes API`,
    );
  }
  const uid = env.args.podUid;
  if (uid !== undefined && pod.uid !== undefined && pod.uid !== uid) {
    throw new CniError(
      CniCode.DatastoreFailed,
      `pod ${who.namespace}/${who.workload} has uid ${pod.uid}, not K8S_POD_UID=${uid}: the pod this ADD is for was deleted and another of the same name created`,
    );
  }
  return pod;
}

/** Calico's words for an ipAddrs address IPAM refuses, then tortie's detail. */
function explicitAddressError(
  err: unknown,
  ip: string,
  handle: string,
  pools: readonly PoolSpec[],
): CniError {
  const error = backendError(
    err,
    `assign ${ip} (annotation cni.projectcalico.org/ipAddrs) to ${handle}`,
  );
  const cause = err instanceof IpamFailure ? err : undefined;
  if (cause?.kind === 'no-pool') {
    return new CniError(
      CniCode.NoPool,
      `error getting IP from IPAM: The provided IP address is not in a configured pool: ${error.details} (pools: ${pools.map((p) => `${p.name} ${p.cidr}`).join(', ') || 'none'})`,
      { cause: err },
    );
  }
  // IPAM's conflict covers a taken address (its message says so) and lost races.
  if (cause?.kind === 'conflict' && /already assigned|reserved/.test(cause.message)) {
    return new CniError(
      CniCode.TryAgainLater,
      `error getting IP from IPAM: Address already assigned in block: ${error.details}`,
      { cause: err },
    );
  }
  return error;
}

/** interfaceName is the host end (where the dataplane attaches), endpoint the pod's, as Calico. */
function endpointRecord(
  who: WorkloadIdentity,
  env: AttachmentEnv,
  config: NetworkConfig,
  net: { ip: string; mac: string; hostIfName: string },
  /** On Kubernetes: what the endpoint takes from the pod (labels, profiles, ports, account). */
  fromPod?: PodFacts['endpoint'],
): EndpointRecord {
  if (fromPod !== undefined) {
    return {
      name: who.endpointName,
      namespace: who.namespace,
      labels: fromPod.labels,
      spec: {
        node: who.node,
        orchestrator: who.orchestrator,
        workload: who.workload,
        endpoint: who.endpoint,
        containerID: env.containerId,
        network: config.name,
        interfaceName: net.hostIfName,
        mac: net.mac,
        ipNetworks: [`${net.ip}/32`],
        profiles: fromPod.profiles,
        ports: fromPod.ports,
        ...(fromPod.serviceAccountName === undefined
          ? {}
          : { serviceAccountName: fromPod.serviceAccountName }),
      },
    };
  }
  return {
    name: who.endpointName,
    namespace: who.namespace,
    labels: who.labels,
    spec: {
      node: who.node,
      orchestrator: who.orchestrator,
      workload: who.workload,
      endpoint: who.endpoint,
      containerID: env.containerId,
      network: config.name,
      interfaceName: net.hostIfName,
      mac: net.mac,
      ipNetworks: [`${net.ip}/32`],
      // As Calico's CNI plugin: the namespace's profile, then the service account's, whose
      // labelsToApply carry the account's labels (src/policy/service-accounts.ts).
      profiles:
        who.serviceAccount === undefined
          ? [`kns.${who.namespace}`]
          : [`kns.${who.namespace}`, serviceAccountProfileName(who.namespace, who.serviceAccount)],
      ports: [],
      ...(who.serviceAccount === undefined ? {} : { serviceAccountName: who.serviceAccount }),
    },
  };
}

/** Undoes an ADD after its address was taken, and says what it did in the error. */
class Rollback {
  veth: { workloadId: string; hostNetns: string | undefined } | undefined;
  guard: { workloadId: string; hostNetns: string | undefined } | undefined;
  endpoint: EndpointRecord | undefined;

  constructor(
    private readonly backend: CniBackend,
    private readonly handle: string,
    private readonly ip: string,
  ) {}

  async fail(error: CniError): Promise<CniError> {
    const done: string[] = [];
    const failed: string[] = [];
    if (this.endpoint) {
      const { namespace, name } = this.endpoint;
      try {
        // Only if it is ours: a failed write may or may not have landed.
        const current = await this.backend.getEndpoint(namespace, name);
        if (current?.spec.containerID === this.endpoint.spec.containerID) {
          await this.backend.deleteEndpoint(namespace, name);
          done.push(`deleted endpoint ${namespace}/${name}`);
        }
      } catch (err) {
        failed.push(`endpoint ${namespace}/${name} may remain (${(err as Error).message})`);
      }
    }
    if (this.veth) {
      try {
        await deletePodNetwork({
          workloadId: this.veth.workloadId,
          ...(this.veth.hostNetns === undefined ? {} : { hostNetns: this.veth.hostNetns }),
        });
        done.push('removed the veth');
      } catch (err) {
        failed.push(`the veth may remain (${(err as Error).message})`);
      }
    }
    // After the veth: the guard goes only once nothing can use it any more.
    if (this.guard) {
      try {
        await unguardPod(this.guard.hostNetns, this.guard.workloadId, [this.ip]);
      } catch (err) {
        failed.push(`the guard rules may remain (${(err as Error).message})`);
      }
    }
    try {
      const released = await this.backend.releaseByHandle(this.handle);
      done.push(`released ${released.join(', ') || this.ip}`);
    } catch (err) {
      failed.push(
        `address ${this.ip} is still held by handle ${this.handle} (${(err as Error).message}): DEL or \`tortie ipam gc\` releases it`,
      );
    }
    const summary = [
      done.length ? `rolled back: ${done.join(', ')}` : '',
      failed.length ? `rollback incomplete: ${failed.join('; ')}` : '',
    ]
      .filter(Boolean)
      .join('; ');
    return new CniError(error.code, `${error.details} (${summary})`, {
      cause: error,
      msg: error.msg,
    });
  }
}

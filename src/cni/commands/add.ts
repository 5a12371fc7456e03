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
import type { CniBackend, EndpointRecord } from '../backend.js';
import type { NetworkConfig } from '../config.js';
import type { AttachmentEnv } from '../env.js';
import { CniCode, CniError } from '../errors.js';
import { backendError } from '../failures.js';
import { serviceAccountProfileName } from '../../policy/service-accounts.js';
import { workloadIdentity, type WorkloadIdentity } from '../identity.js';
import { selectPools } from '../pools.js';
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

  const backend = await openBackend();
  mark('store-loaded');
  const [allPools, nodeLabels, existing, held] = await Promise.all([
    backend.listPools(),
    backend.nodeLabels(config.nodename),
    backend.getEndpoint(who.namespace, who.endpointName),
    backend.addressesOf(keys.handle),
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
  mark('read');
  const pools = selectPools(allPools, { name: config.nodename, labels: nodeLabels }, config.pools);

  let ip: string;
  try {
    ({ ip } = await backend.autoAssign({
      handle: keys.handle,
      node: config.nodename,
      pools,
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
    }));
  } catch (err) {
    const error = backendError(
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
  // Until the agent has attached its programs to the veth, the node's kernel would route
  // the pod's packets (and packets to it) with no policy: guard it first (../guard.ts).
  if (config.agentWaitMs > 0) {
    try {
      await guardPod(config.hostNetns, keys.workloadId, ip);
    } catch (err) {
      throw await undo.fail(
        new CniError(CniCode.PlumbingFailed, (err as Error).message, { cause: err }),
      );
    }
    undo.guard = { workloadId: keys.workloadId, hostNetns: config.hostNetns };
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

  const endpoint = endpointRecord(who, env, config, { ip, mac: podMac, hostIfName });
  let revision: string | undefined;
  try {
    ({ revision } = await backend.putEndpoint(endpoint));
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

/** interfaceName is the host end (where the dataplane attaches), endpoint the pod's, as Calico. */
function endpointRecord(
  who: WorkloadIdentity,
  env: AttachmentEnv,
  config: NetworkConfig,
  net: { ip: string; mac: string; hostIfName: string },
): EndpointRecord {
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

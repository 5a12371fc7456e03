/**
 * DEL: undo ADD, idempotently. Whatever is already gone (the pod namespace, the node
 * namespace, the veth, the endpoint, the allocation) is skipped, so a second DEL, a DEL
 * after a failed ADD and containerd's DEL with an empty CNI_NETNS all succeed.
 *
 * Order: the veth and (guarded) the endpoint, then the address — so an interrupted DEL
 * never leaves an endpoint claiming an address IPAM has already given back, nor a veth
 * routing an address IPAM may give to the next pod. The endpoint is deleted only
 * when it still belongs to this container (a newer sandbox of the same pod may own the
 * name by now). An unreachable datastore is code 11: answering success would leak the
 * address, since the runtime never retries a successful DEL.
 */
import { deletePodNetwork, PlumbingError } from '../../plumbing/index.js';
import { attachmentKeys, pathExists } from '../attachment.js';
import type { CniBackend } from '../backend.js';
import type { NetworkConfig } from '../config.js';
import type { AttachmentEnv } from '../env.js';
import { CniCode, CniError } from '../errors.js';
import { backendError } from '../failures.js';
import { guardPod, unguardPod } from '../guard.js';
import { workloadIdentity } from '../identity.js';
import { mark } from '../trace.js';

export async function cmdDel(
  env: AttachmentEnv,
  config: NetworkConfig,
  openBackend: () => Promise<CniBackend>,
): Promise<void> {
  const keys = attachmentKeys(env, config);
  const who = workloadIdentity({
    node: config.nodename,
    containerId: env.containerId,
    ifName: env.ifName,
    args: env.args,
    overrides: config.identity,
  });

  // The veth goes first; the reads (which change nothing) run while the kernel removes it.
  const reads = openBackend().then(async (backend) => {
    const [endpoint, held] = await Promise.all([
      backend.getEndpoint(who.namespace, who.endpointName),
      backend.addressesOf(keys.handle).catch(() => [] as string[]),
    ]);
    return { backend, endpoint, held };
  });
  // The endpoint goes while the kernel removes the veth (the longest step), not after it.
  // The veth may still forward for a moment once the agent has let go of it, so the guard
  // of ADD (../guard.ts) goes up first: nothing is routed from or to the pod meanwhile.
  // In the BPF dataplane that guard is the programs, which stay attached to the veth until
  // it is gone: once the agent has removed the endpoint's entry they drop everything, so
  // no rules are added.
  const endpointGone = reads.then(async ({ backend, endpoint, held }) => {
    if (!endpoint || endpoint.spec.containerID !== env.containerId) return [];
    const ips = [...new Set([...held, ...endpoint.spec.ipNetworks.map((n) => n.split('/')[0]!)])];
    const programsGuard = backend.endpointPrograms?.(config.hostNetns) !== undefined;
    if (
      !programsGuard &&
      (config.hostNetns === undefined || (await pathExists(config.hostNetns)))
    ) {
      for (const ip of ips) {
        try {
          await guardPod(config.hostNetns, keys.workloadId, ip);
        } catch (err) {
          throw new CniError(
            CniCode.PlumbingFailed,
            `DEL ${keys.workloadId}: ${(err as Error).message}`,
            { cause: err },
          );
        }
      }
    }
    try {
      await backend.deleteEndpoint(who.namespace, who.endpointName);
    } catch (err) {
      throw backendError(err, `delete WorkloadEndpoint ${who.namespace}/${who.endpointName}`);
    }
    return ips;
  });
  const [veth, read, gone] = await Promise.allSettled([
    removeVeth(keys.workloadId, config),
    reads,
    endpointGone,
  ]);
  if (veth.status === 'rejected') throw veth.reason;
  if (read.status === 'rejected')
    throw backendError(read.reason, `read WorkloadEndpoint ${who.namespace}/${who.endpointName}`);
  if (gone.status === 'rejected') throw gone.reason;
  const { backend, held } = read.value;
  mark('veth-and-endpoint-removed');
  // This DEL's guard, or one an ADD killed between its guard and its end left behind (by
  // this agent or, in the BPF dataplane, by an older version that guarded with rules).
  await removeGuard(keys.workloadId, [...new Set([...held, ...gone.value])], config);
  mark('unguarded');
  try {
    await backend.releaseByHandle(keys.handle);
  } catch (err) {
    throw backendError(err, `release the addresses of handle ${keys.handle}`);
  }
}

async function removeVeth(workloadId: string, config: NetworkConfig): Promise<void> {
  // The node namespace gone (a lab node torn down) took the veth with it.
  if (config.hostNetns !== undefined && !(await pathExists(config.hostNetns))) return;
  try {
    await deletePodNetwork({
      workloadId,
      ...(config.hostNetns === undefined ? {} : { hostNetns: config.hostNetns }),
    });
  } catch (err) {
    const message = err instanceof PlumbingError ? err.message : String(err);
    throw new CniError(CniCode.PlumbingFailed, `DEL ${workloadId}: ${message}`, { cause: err });
  }
}

async function removeGuard(workloadId: string, ips: string[], config: NetworkConfig) {
  if (config.hostNetns !== undefined && !(await pathExists(config.hostNetns))) return;
  try {
    await unguardPod(config.hostNetns, workloadId, ips);
  } catch (err) {
    throw new CniError(CniCode.PlumbingFailed, `DEL ${workloadId}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

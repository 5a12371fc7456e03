/**
 * The keys of one attachment (network, container, interface): the IPAM handle, the
 * plumbing's workload id (which names the host veth), and existence checks of the
 * namespaces it lives in.
 */
import { stat } from 'node:fs/promises';
import { allocationHandle } from './backend.js';
import type { NetworkConfig } from './config.js';
import type { AttachmentEnv } from './env.js';
import { CniCode, CniError } from './errors.js';

export interface AttachmentKeys {
  network: string;
  containerId: string;
  ifName: string;
  /** IPAM handle: `<network>.<containerID>`. */
  handle: string;
  /**
   * Plumbing workload id: `<network>/<containerID>/<ifname>`, the attachment's primary key
   * in the spec. The host veth is named from its hash, so DEL finds the veth ADD made from
   * the request alone, even without CNI_NETNS.
   */
  workloadId: string;
}

export function attachmentKeys(env: AttachmentEnv, config: NetworkConfig): AttachmentKeys {
  return {
    network: config.name,
    containerId: env.containerId,
    ifName: env.ifName,
    handle: allocationHandle(config.name, env.containerId),
    workloadId: `${config.name}/${env.containerId}/${env.ifName}`,
  };
}

export async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** CNI_NETNS must exist for ADD and CHECK (code 4 otherwise: nothing has been done yet). */
export async function assertPodNetnsExists(netns: string): Promise<void> {
  if (!(await pathExists(netns))) {
    throw new CniError(
      CniCode.InvalidEnvironment,
      `CNI_NETNS=${netns} does not exist: the pod's network namespace must be created before ADD`,
    );
  }
}

/** host_netns, when configured, must exist (code 7 otherwise). */
export async function assertHostNetnsExists(config: NetworkConfig): Promise<void> {
  if (config.hostNetns !== undefined && !(await pathExists(config.hostNetns))) {
    throw new CniError(
      CniCode.InvalidConfig,
      `network config: host_netns ${config.hostNetns} does not exist (is node ${config.nodename} up?)`,
    );
  }
}

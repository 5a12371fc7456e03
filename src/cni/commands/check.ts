/**
 * CHECK: is the attachment still what ADD made and prevResult says? Unlike Calico's
 * no-op, every layer is looked at, and every difference is listed in one error (105):
 *  - prevResult: names this pod interface and the host veth, with exactly one IPv4 /32;
 *  - the kernel (checkPodNetwork): both veth ends, up, peered, MAC, MTU, the /32, the
 *    routes on both sides, proxy ARP and forwarding on the node;
 *  - the WorkloadEndpoint: exists, is this container's, on this node, with this address,
 *    interface and MAC;
 *  - IPAM: the handle holds exactly this address.
 */
import { checkPodNetwork, hostVethName } from '../../plumbing/index.js';
import { assertHostNetnsExists, attachmentKeys } from '../attachment.js';
import type { CniBackend, EndpointRecord, EndpointSpec } from '../backend.js';
import type { NetworkConfig } from '../config.js';
import type { AttachmentEnv } from '../env.js';
import { CniCode, CniError } from '../errors.js';
import { backendError } from '../failures.js';
import { workloadIdentity } from '../identity.js';
import { readPrevResult } from '../result.js';

export async function cmdCheck(
  env: AttachmentEnv,
  config: NetworkConfig,
  openBackend: () => Promise<CniBackend>,
): Promise<void> {
  const netns = env.netns as string; // parseCniEnv requires it for CHECK
  if (config.prevResult === undefined) {
    throw new CniError(
      CniCode.InvalidConfig,
      'network config: CHECK needs prevResult (the result of ADD)',
    );
  }
  await assertHostNetnsExists(config);
  const prev = readPrevResult(config.prevResult, env.ifName, netns);
  const keys = attachmentKeys(env, config);
  const who = workloadIdentity({
    node: config.nodename,
    containerId: env.containerId,
    ifName: env.ifName,
    args: env.args,
    overrides: config.identity,
  });
  const problems: string[] = [];

  const hostIfName = hostVethName(keys.workloadId);
  if (!prev.hostInterfaces.some((i) => i.name === hostIfName)) {
    problems.push(
      `prevResult does not list the host veth ${hostIfName} (lists: ${prev.hostInterfaces.map((i) => i.name).join(', ') || 'none'})`,
    );
  }
  if (prev.ips.length !== 1) {
    throw new CniError(
      CniCode.CheckFailed,
      `prevResult gives ${env.ifName} ${prev.ips.length} IPv4 addresses (${prev.ips.join(', ') || 'none'}); tortie assigns exactly one`,
    );
  }
  const ip = prev.ips[0] as string;

  const backend = await openBackend();
  const kernel = checkPodNetwork({
    workloadId: keys.workloadId,
    podNetns: netns,
    ...(config.hostNetns === undefined ? {} : { hostNetns: config.hostNetns }),
    ip,
    ifName: env.ifName,
    ...(config.mtu === undefined ? {} : { mtu: config.mtu }),
  }).then(
    (found) => found.map((p) => p.message),
    (err: unknown) => [`cannot read the pod network: ${(err as Error).message}`],
  );
  const [kernelProblems, endpoint, held] = await Promise.all([
    kernel,
    backend.getEndpoint(who.namespace, who.endpointName),
    backend.addressesOf(keys.handle),
  ]).catch((err: unknown) => {
    throw backendError(
      err,
      `read endpoint ${who.namespace}/${who.endpointName} and handle ${keys.handle}`,
    );
  });

  problems.push(...kernelProblems);
  problems.push(
    ...endpointProblems(endpoint, who.namespace, who.endpointName, {
      containerID: env.containerId,
      node: config.nodename,
      network: config.name,
      endpoint: env.ifName,
      interfaceName: hostIfName,
      ipNetworks: [`${ip}/32`],
      ...(prev.podInterface.mac === undefined ? {} : { mac: prev.podInterface.mac.toLowerCase() }),
    }),
  );
  const heldIps = held.map((a) => a.split('/')[0]);
  if (heldIps.length !== 1 || heldIps[0] !== ip) {
    problems.push(
      `IPAM handle ${keys.handle} holds ${heldIps.join(', ') || 'no address'}, not exactly ${ip}`,
    );
  }
  if (problems.length > 0) {
    throw new CniError(
      CniCode.CheckFailed,
      `attachment ${keys.workloadId} (${ip}) is not as ADD left it: ${problems.join('; ')}`,
    );
  }
}

/** Every field of the endpoint that differs from `wanted`. */
function endpointProblems(
  endpoint: EndpointRecord | undefined,
  namespace: string,
  name: string,
  wanted: Partial<Record<keyof EndpointSpec, unknown>>,
): string[] {
  const where = `WorkloadEndpoint ${namespace}/${name}`;
  if (!endpoint) return [`${where} does not exist`];
  const actual: Partial<Record<keyof EndpointSpec, unknown>> = {
    ...endpoint.spec,
    mac: endpoint.spec.mac?.toLowerCase(),
  };
  const problems: string[] = [];
  for (const [field, value] of Object.entries(wanted)) {
    const has = actual[field as keyof EndpointSpec];
    if (JSON.stringify(has) !== JSON.stringify(value)) {
      problems.push(`${where} has ${field} ${JSON.stringify(has)}, not ${JSON.stringify(value)}`);
    }
  }
  return problems;
}

/**
 * GC (1.1.0): the runtime lists the attachments of this network that are still valid
 * (`cni.dev/valid-attachments`); tortie releases every allocation of this network made
 * on this node whose container is not in the list, and deletes its endpoint.
 *
 * Only this node's allocations are considered (the node recorded with each allocation):
 * a runtime knows its own containers, not those of the other nodes sharing the pools.
 * Errors do not stop the sweep; they are reported together at the end (code 106).
 */
import { allocationHandle, type CniBackend } from '../backend.js';
import type { NetworkConfig } from '../config.js';
import { CniCode, CniError } from '../errors.js';
import { backendError } from '../failures.js';

export interface GcSummary {
  released: Array<{ handle: string; ips: string[] }>;
  endpointsDeleted: string[];
}

export async function cmdGc(
  config: NetworkConfig,
  openBackend: () => Promise<CniBackend>,
): Promise<GcSummary> {
  if (config.validAttachments === undefined) {
    throw new CniError(
      CniCode.InvalidConfig,
      'network config: GC needs cni.dev/valid-attachments (the list may be empty, but must be there)',
    );
  }
  const valid = new Set(
    config.validAttachments.map((a) => allocationHandle(config.name, a.containerID)),
  );
  const backend = await openBackend();
  const [allocations, endpoints] = await Promise.all([
    backend.allocations(`${config.name}.`),
    backend.listEndpoints(),
  ]).catch((err: unknown) => {
    throw backendError(err, `list the allocations and endpoints of network ${config.name}`);
  });

  const summary: GcSummary = { released: [], endpointsDeleted: [] };
  const errors: string[] = [];
  const staleEndpoints = endpoints.filter(
    (e) =>
      e.spec.network === config.name &&
      e.spec.node === config.nodename &&
      !valid.has(allocationHandle(config.name, e.spec.containerID)),
  );
  // Endpoints first, then addresses: never an endpoint naming a released address.
  const keep = new Set(valid);
  for (const e of staleEndpoints) {
    try {
      await backend.deleteEndpoint(e.namespace, e.name);
      summary.endpointsDeleted.push(`${e.namespace}/${e.name}`);
    } catch (err) {
      keep.add(allocationHandle(config.name, e.spec.containerID));
      errors.push(`endpoint ${e.namespace}/${e.name}: ${(err as Error).message}`);
    }
  }
  for (const a of allocations) {
    if (keep.has(a.handle) || a.attrs.node !== config.nodename) continue;
    try {
      summary.released.push({ handle: a.handle, ips: await backend.releaseByHandle(a.handle) });
    } catch (err) {
      errors.push(`handle ${a.handle}: ${(err as Error).message}`);
    }
  }
  if (errors.length > 0) {
    throw new CniError(
      CniCode.GcIncomplete,
      `GC of network ${config.name} on node ${config.nodename} released ${summary.released.length} allocations but failed for: ${errors.join('; ')}`,
    );
  }
  return summary;
}

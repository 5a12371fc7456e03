/**
 * What `tortie ipam` needs from the datastore: the pools, and what is alive — the
 * handles of existing WorkloadEndpoints (`<network>.<containerID>`, as the CNI plugin
 * names them) and the existing Nodes — so that check and gc can tell a leak from a
 * live address.
 */
import type { GlobalOptions } from './context.js';
import { datastoreFrom } from './context.js';
import type { IpamConnection } from './ipam.js';

export function ipamConnection(opts: () => GlobalOptions): () => Promise<IpamConnection> {
  return async () => {
    // The IPAM commands close the client when done, so each call gets its own.
    const ds = await datastoreFrom(opts());
    return {
      etcd: ds.etcd,
      prefix: ds.prefix,
      async liveHandles() {
        const weps = await ds.list('WorkloadEndpoint');
        return new Set(
          weps
            .filter((w) => w.spec.network && w.spec.containerID)
            .map((w) => `${w.spec.network}.${w.spec.containerID}`),
        );
      },
      async liveNodes() {
        return new Set((await ds.list('Node')).map((n) => n.metadata.name));
      },
      async pools() {
        return (await ds.list('IPPool')).map((p) => ({
          name: p.metadata.name,
          cidr: p.spec.cidr,
          blockSize: p.spec.blockSize,
          disabled: p.spec.disabled,
          nodeSelector: p.spec.nodeSelector,
        }));
      },
    };
  };
}

/**
 * STATUS (1.1.0): can this node service ADD right now? Yes when the datastore answers and
 * at least one IPv4 pool is usable on the node (as ADD would select them). Otherwise code
 * 50, naming what is missing.
 */
import type { CniBackend } from '../backend.js';
import type { NetworkConfig } from '../config.js';
import { CniCode, CniError } from '../errors.js';
import { selectPools } from '../pools.js';

export async function cmdStatus(
  config: NetworkConfig,
  openBackend: () => Promise<CniBackend>,
): Promise<void> {
  try {
    const backend = await openBackend();
    await backend.ping();
    const [pools, labels] = await Promise.all([
      backend.listPools(),
      backend.nodeLabels(config.nodename),
    ]);
    selectPools(pools, { name: config.nodename, labels }, config.pools);
  } catch (err) {
    const reason = err instanceof CniError ? err.details : (err as Error).message;
    throw new CniError(
      CniCode.NotAvailable,
      `tortie cannot add pods on node ${config.nodename}: ${reason}`,
      {
        cause: err,
      },
    );
  }
}

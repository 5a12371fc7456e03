/**
 * Vitest global setup, run once in the vitest main process before any test file: makes
 * this process the owner of every run id the workers register (TORTIE_TEST_OWNER, which
 * the workers inherit), then removes what killed runs left behind (./leftovers.ts) and
 * says so in one line. A live run beside this one keeps everything.
 */
import { describeLeftovers, removeLeftovers } from './leftovers.js';
import { formatOwner, OWNER_ENV, processOwner } from './run-registry.js';

export default async function setup(): Promise<void> {
  process.env[OWNER_ENV] = formatOwner(processOwner());
  if (process.getuid?.() !== 0) return;
  console.log(describeLeftovers(await removeLeftovers()));
}

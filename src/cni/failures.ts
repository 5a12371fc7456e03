/**
 * Translates what the datastore, the IPAM and the plumbing throw into CNI errors whose
 * code tells the runtime what to do (retry on 11) and whose message says what was being
 * done when it failed.
 */
import { DatastoreUnavailable, EndpointNotProgrammed, IpamFailure } from './backend.js';
import { CniCode, CniError } from './errors.js';

export function backendError(err: unknown, doing: string): CniError {
  if (err instanceof CniError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof DatastoreUnavailable || err instanceof EndpointNotProgrammed) {
    return new CniError(CniCode.TryAgainLater, `${doing}: ${message}`, { cause: err });
  }
  if (err instanceof IpamFailure) {
    const code =
      err.kind === 'exhausted'
        ? CniCode.PoolExhausted
        : err.kind === 'no-pool'
          ? CniCode.NoPool
          : err.kind === 'conflict'
            ? CniCode.TryAgainLater
            : CniCode.DatastoreFailed;
    return new CniError(code, `${doing}: ${message}`, { cause: err });
  }
  return new CniError(CniCode.DatastoreFailed, `${doing}: ${message}`, { cause: err });
}

/**
 * IPAM errors: a closed set of kinds a caller can act on (the CNI plugin maps them to
 * CNI error codes, the CLI prints the message).
 */

export type IpamErrorKind =
  /** Every pool tried is full. */
  | 'exhausted'
  /** No enabled pool was given, or the address is in no usable pool. */
  | 'no-pool'
  /** The address is taken, or a change lost its compare-and-swap race maxRetries times. */
  | 'conflict'
  /** Bad input (address, pool, handle, node) or a stored record that does not parse. */
  | 'invalid'
  /** etcd did not answer (no quorum, closed client, deadline passed). */
  | 'unavailable'
  /** The thing asked about does not exist. */
  | 'not-found';

export class IpamError extends Error {
  override readonly name = 'IpamError';
  constructor(
    readonly kind: IpamErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isIpamError(e: unknown, kind?: IpamErrorKind): e is IpamError {
  return e instanceof IpamError && (kind === undefined || e.kind === kind);
}

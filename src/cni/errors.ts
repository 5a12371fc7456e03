/**
 * The CNI error result: `{cniVersion, code, msg, details}` on stdout, exit status 1.
 *
 * Codes 1-99 are the spec's well-known ones; 100 and up are tortie's own (listed in
 * TORTIE_ERROR_CODES, printed by `tortie cni codes` and in docs). `msg` is a short title,
 * `details` a sentence naming what is wrong and, where possible, what to do.
 */

/** Well-known error codes of the CNI spec (1.1.0, section 5 "Error"). */
export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  /** STATUS only: cannot service ADD. */
  NotAvailable: 50,
  /** STATUS only: cannot service ADD, and existing pods may have limited connectivity. */
  NotAvailableLimitedConnectivity: 51,

  /** No address left in any pool the pod may use. */
  PoolExhausted: 100,
  /** Creating (or removing) the veth, addresses, routes or sysctls failed. */
  PlumbingFailed: 101,
  /** No usable IPv4 pool: none defined, all disabled, none selects the node, or a named pool is unknown. */
  NoPool: 102,
  /** The datastore refused or failed an operation (other than being unreachable). */
  DatastoreFailed: 103,
  /** ADD for an attachment that already exists (the runtime must DEL it first). */
  AlreadyAttached: 104,
  /** CHECK found the attachment differs from prevResult or from the store. */
  CheckFailed: 105,
  /** GC could not release some allocations (the others were released). */
  GcIncomplete: 106,
  /** A bug or an unexpected condition in tortie itself. */
  Internal: 199,
} as const;

export type CniCodeValue = (typeof CniCode)[keyof typeof CniCode];

/** tortie's own codes with a one-line meaning each: the documentation users see. */
export const TORTIE_ERROR_CODES: ReadonlyArray<{ code: number; meaning: string }> = [
  { code: CniCode.PoolExhausted, meaning: 'no free address in any IP pool this pod may use' },
  {
    code: CniCode.PlumbingFailed,
    meaning: 'creating or removing the pod veth, address, routes or sysctls failed',
  },
  {
    code: CniCode.NoPool,
    meaning:
      'no usable IPv4 pool (none defined, all disabled, none selects this node, or ipam.pools names an unknown pool)',
  },
  { code: CniCode.DatastoreFailed, meaning: 'the datastore refused or failed an operation' },
  {
    code: CniCode.AlreadyAttached,
    meaning:
      'ADD for a container already attached to this network, by this or another interface (DEL it first)',
  },
  {
    code: CniCode.CheckFailed,
    meaning: 'CHECK found the interface, address, routes, endpoint or allocation wrong',
  },
  { code: CniCode.GcIncomplete, meaning: 'GC could not release every stale allocation' },
  { code: CniCode.Internal, meaning: 'an unexpected internal error (a bug: please report it)' },
];

const TITLES: Record<number, string> = {
  1: 'Incompatible CNI version',
  2: 'Unsupported field in network configuration',
  3: 'Container unknown or does not exist',
  4: 'Invalid environment variables',
  5: 'I/O failure',
  6: 'Failed to decode content',
  7: 'Invalid network configuration',
  11: 'Try again later',
  50: 'Plugin not available',
  51: 'Plugin not available, existing pods may have limited connectivity',
  100: 'IP pool exhausted',
  101: 'Pod network plumbing failed',
  102: 'No usable IP pool',
  103: 'Datastore operation failed',
  104: 'Already attached',
  105: 'Check failed',
  106: 'Garbage collection incomplete',
  199: 'Internal error',
};

export class CniError extends Error {
  override readonly name = 'CniError';

  constructor(
    readonly code: number,
    /** The full sentence: what is wrong, naming the field, variable or object. */
    readonly details: string,
    options?: { cause?: unknown; msg?: string },
  ) {
    super(details, options?.cause === undefined ? undefined : { cause: options.cause });
    this.msg = options?.msg ?? TITLES[code] ?? 'Error';
  }

  /** The short title (the spec's `msg`). */
  readonly msg: string;
}

export interface CniErrorResult {
  cniVersion: string;
  code: number;
  msg: string;
  details: string;
}

export function errorResult(err: CniError, cniVersion: string): CniErrorResult {
  return { cniVersion, code: err.code, msg: err.msg, details: err.details };
}

/** Any thrown value as a CniError: CniErrors pass through, the rest become Internal. */
export function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new CniError(CniCode.Internal, `unexpected error: ${message}`, { cause: err });
}

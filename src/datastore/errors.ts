/**
 * Datastore errors: one class with a closed set of kinds, so callers (the CLI, the IPAM
 * engine, the agent) can branch on what went wrong, and messages a user can act on.
 */
import { classifyEtcdError } from './etcd/errors.js';

export type DatastoreErrorKind =
  'invalid' | 'not-found' | 'already-exists' | 'conflict' | 'unavailable';

/** One refused object of a multi-object call: `index` is its position in the call. */
export interface ErrorDetail {
  readonly index?: number;
  /** "IPPool default", "NetworkPolicy prod/web". */
  readonly object?: string;
  /** The field, e.g. "spec.blockSize"; "" when the object as a whole is refused. */
  readonly path?: string;
  readonly reason: string;
  /** The whole line: "IPPool default: spec.blockSize: 33 is out of range 20-32". */
  readonly message: string;
}

export class DatastoreError extends Error {
  override readonly name = 'DatastoreError';
  constructor(
    readonly kind: DatastoreErrorKind,
    message: string,
    readonly details: readonly ErrorDetail[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** One error out of per-object details; the message lists every one of them. */
  static fromDetails(kind: DatastoreErrorKind, details: readonly ErrorDetail[]): DatastoreError {
    return new DatastoreError(kind, details.map((d) => d.message).join('\n'), details);
  }
}

export function isDatastoreError(e: unknown, kind?: DatastoreErrorKind): e is DatastoreError {
  return e instanceof DatastoreError && (kind === undefined || e.kind === kind);
}

/** A line naming the object and, when there is one, the field. */
export function detail(object: string, path: string, reason: string, index?: number): ErrorDetail {
  const where = path === '' ? object : `${object}: ${path}`;
  return { index, object, path, reason, message: `${where}: ${reason}` };
}

// --- etcd errors ----------------------------------------------------------------------

/**
 * Turns what the etcd client threw into a DatastoreError, by its kind (classifyEtcdError).
 * etcd's limits and a revision in the future are `invalid`, a compacted revision a
 * `conflict`; transport failures, deadlines, lost quorum, open circuit breakers and every
 * other etcd failure are `unavailable`: for a write that means the outcome is unknown, so
 * read again before retrying by hand. Anything that did not come from etcd (a bug) is
 * returned as it is, not disguised as an outage.
 */
export function fromEtcdError(e: unknown, endpoints: readonly string[]): Error {
  if (e instanceof DatastoreError) return e;
  const etcd = classifyEtcdError(e);
  if (etcd === undefined) return e instanceof Error ? e : new Error(String(e));
  const where = endpoints.join(',');
  const why = etcd.detail;
  const options = { cause: e };
  switch (etcd.kind) {
    case 'too-many-ops':
      return new DatastoreError(
        'invalid',
        `too many objects for one transaction (etcd's --max-txn-ops, 128 by default): split the input`,
        [],
        options,
      );
    case 'too-large':
      return new DatastoreError(
        'invalid',
        'the request is larger than etcd accepts (--max-request-bytes): split the input',
        [],
        options,
      );
    case 'compacted':
      return new DatastoreError(
        'conflict',
        `etcd no longer has that revision (compacted): ${why}`,
        [],
        options,
      );
    case 'future-revision':
      return new DatastoreError('invalid', `that revision is in the future: ${why}`, [], options);
    case 'tls':
      // etcd refused the TLS handshake (no or a wrong client certificate), or we refused its.
      return new DatastoreError(
        'unavailable',
        `etcd at ${where} refused the TLS handshake, or this client refused etcd's certificate (${why}): etcd run with --client-cert-auth needs a client certificate signed by its CA (--etcd-cert and --etcd-key; in a CNI config etcd_cert_file and etcd_key_file), and the client needs the CA of etcd's certificate (--etcd-ca-cert; etcd_ca_cert_file)`,
        [],
        options,
      );
    case 'auth':
      // etcd runs with authentication on and does not let this client's user do this.
      return new DatastoreError(
        'unavailable',
        `etcd at ${where} refused this client's credentials (${why}): with etcd's authentication on, the client's user (with --client-cert-auth, the CN of its certificate) needs a role that may read and write tortie's prefix`,
        [],
        options,
      );
    default:
      return new DatastoreError(
        'unavailable',
        `etcd at ${where} is unavailable (${why}): check the endpoints and that etcd runs with quorum`,
        [],
        options,
      );
  }
}

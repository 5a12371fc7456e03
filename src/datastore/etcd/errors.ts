/**
 * etcd failures as values: a closed set of kinds, tortie's own error classes (the gateway
 * client throws them), and `classifyEtcdError`, the one function that tells what any etcd
 * client's failure was — an error of ./gateway.ts, or one of the `etcd3` package's.
 *
 * This is the only place in tortie that reads the text of an etcd error. etcd's own
 * refusals reach a client as a gRPC status code and a fixed sentence ("etcdserver: mvcc:
 * required revision has been compacted", etcd's rpctypes); one status code covers several
 * of them, so the sentence is what tells them apart (etcd's Go client does the same).
 * `etcd3` keeps only the message and its class (the status code is dropped), so its
 * errors are read by class name — never imported: the CNI plugin must not load `etcd3`.
 */

/** What went wrong, as callers branch on it. */
export type EtcdFailureKind =
  /** No answer: connection refused or reset, no leader, every endpoint failed recently. */
  | 'unavailable'
  /** The call's deadline passed (or etcd's own proposal timed out): a write may have happened. */
  | 'timeout'
  /** The TLS handshake failed: etcd refused this client's certificate, or this client etcd's. */
  | 'tls'
  /** The client was closed before the call. */
  | 'closed'
  /** etcd's authentication refused the call (permission denied, bad token or password). */
  | 'auth'
  /** The revision asked for has been compacted away. */
  | 'compacted'
  /** The revision asked for is later than etcd's current one. */
  | 'future-revision'
  /** A transaction of more operations than etcd's --max-txn-ops. */
  | 'too-many-ops'
  /** A request larger than etcd's --max-request-bytes. */
  | 'too-large'
  /** etcd is out of a resource: space (the NOSPACE alarm), request quota, message size. */
  | 'exhausted'
  /** etcd's state does not allow the call (FAILED_PRECONDITION). */
  | 'precondition'
  /** A concurrent change won (ABORTED, ALREADY_EXISTS). */
  | 'conflict'
  /** What the call names does not exist (a lease, a user). */
  | 'not-found'
  /** Any other refusal of the request as malformed (INVALID_ARGUMENT, OUT_OF_RANGE). */
  | 'invalid'
  /** Anything else the client or etcd reported (UNKNOWN, INTERNAL, DATA_LOSS, UNIMPLEMENTED). */
  | 'internal';

/** Kinds where etcd gave no answer (EtcdUnavailableError). */
export type EtcdUnavailableKind = 'unavailable' | 'tls' | 'closed';
/** Kinds where etcd answered with a refusal (EtcdRefusedError). */
export type EtcdRefusalKind = Exclude<EtcdFailureKind, EtcdUnavailableKind | 'timeout'>;

/** Where the call failed: the gRPC status code when there was one, and the original error. */
export interface EtcdErrorOptions {
  readonly status?: number;
  readonly cause?: unknown;
}

/**
 * A failure of an etcd call, of one of the three classes below. `status` is the gRPC
 * status code when there was one.
 */
export abstract class EtcdCallError extends Error {
  abstract override readonly name: string;
  readonly status: number | undefined;

  protected constructor(
    readonly kind: EtcdFailureKind,
    message: string,
    options: EtcdErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.status = options.status;
  }

  /**
   * The message without transport boilerplate, for a sentence of the caller's:
   * "14 UNAVAILABLE: … connect ECONNREFUSED 127.0.0.1:1 …" is "cannot connect: ECONNREFUSED 127.0.0.1:1".
   */
  get detail(): string {
    const refused = /connect (E[A-Z]+ \S+:\d+)/.exec(this.message);
    if (refused) return `cannot connect: ${refused[1]}`;
    return this.message.replace(/\.?\s*Resolution note:.*$/s, '').replace(/Error: /g, '');
  }
}

/** etcd did not answer (unavailable, tls, closed): for a write, nothing is known. */
export class EtcdUnavailableError extends EtcdCallError {
  override readonly name = 'EtcdUnavailableError';
  declare readonly kind: EtcdUnavailableKind;
  constructor(kind: EtcdUnavailableKind, message: string, options?: EtcdErrorOptions) {
    super(kind, message, options);
  }
}

/** The deadline passed before etcd answered: a write may or may not have happened. */
export class EtcdTimeoutError extends EtcdCallError {
  override readonly name = 'EtcdTimeoutError';
  declare readonly kind: 'timeout';
  constructor(message: string, options?: EtcdErrorOptions) {
    super('timeout', message, options);
  }
}

/** etcd answered and refused: nothing was written. */
export class EtcdRefusedError extends EtcdCallError {
  override readonly name = 'EtcdRefusedError';
  declare readonly kind: EtcdRefusalKind;
  constructor(kind: EtcdRefusalKind, message: string, options?: EtcdErrorOptions) {
    super(kind, message, options);
  }
}

/** The error of the class that `kind` belongs to. */
export function etcdError(
  kind: EtcdFailureKind,
  message: string,
  options: EtcdErrorOptions = {},
): EtcdCallError {
  if (kind === 'unavailable' || kind === 'tls' || kind === 'closed')
    return new EtcdUnavailableError(kind, message, options);
  if (kind === 'timeout') return new EtcdTimeoutError(message, options);
  return new EtcdRefusedError(kind, message, options);
}

/** gRPC status codes by name, as etcd's gRPC API and its JSON gateway return them. */
export const GrpcStatus = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** The status code's name ("UNAVAILABLE" for 14). */
export function grpcStatusName(status: number): string {
  return Object.entries(GrpcStatus).find(([, c]) => c === status)?.[0] ?? 'UNKNOWN';
}

const BY_STATUS: Record<number, EtcdFailureKind> = {
  [GrpcStatus.CANCELLED]: 'unavailable',
  [GrpcStatus.UNKNOWN]: 'internal',
  [GrpcStatus.INVALID_ARGUMENT]: 'invalid',
  [GrpcStatus.DEADLINE_EXCEEDED]: 'timeout',
  [GrpcStatus.NOT_FOUND]: 'not-found',
  [GrpcStatus.ALREADY_EXISTS]: 'conflict',
  [GrpcStatus.PERMISSION_DENIED]: 'auth',
  [GrpcStatus.RESOURCE_EXHAUSTED]: 'exhausted',
  [GrpcStatus.FAILED_PRECONDITION]: 'precondition',
  [GrpcStatus.ABORTED]: 'conflict',
  [GrpcStatus.OUT_OF_RANGE]: 'invalid',
  [GrpcStatus.UNIMPLEMENTED]: 'internal',
  [GrpcStatus.INTERNAL]: 'internal',
  [GrpcStatus.UNAVAILABLE]: 'unavailable',
  [GrpcStatus.DATA_LOSS]: 'internal',
  [GrpcStatus.UNAUTHENTICATED]: 'auth',
};

/** etcd's sentences (server/etcdserver/api/v3rpc/rpctypes) that a status code alone does not tell apart. */
const ETCD_SENTENCES: ReadonlyArray<[string, EtcdFailureKind]> = [
  ['required revision has been compacted', 'compacted'],
  ['required revision is a future revision', 'future-revision'],
  ['too many operations in txn request', 'too-many-ops'],
  ['request is too large', 'too-large'],
  ['etcdserver: request timed out', 'timeout'],
  ['etcdserver: permission denied', 'auth'],
  ['etcdserver: invalid auth token', 'auth'],
  ['etcdserver: authentication failed', 'auth'],
];

/** A handshake refused by either side, as grpc-js and node's tls word it. */
const TLS_FAILURE = /certificate|unknown ca|alert handshake failure/i;

/**
 * The kind of an etcd failure from its gRPC status code (undefined: none known) and its
 * message. The gateway client makes its errors with it; `classifyEtcdError` uses it for
 * `etcd3`'s.
 */
export function failureKind(status: number | undefined, message: string): EtcdFailureKind {
  for (const [sentence, kind] of ETCD_SENTENCES) if (message.includes(sentence)) return kind;
  if (TLS_FAILURE.test(message)) return 'tls';
  return (status === undefined ? undefined : BY_STATUS[status]) ?? 'internal';
}

/**
 * `etcd3`'s error classes by name, with the status code each stands for ("Exhasted" is
 * etcd3's spelling). `etcd3` turns the server's auth sentences into Etcd*Error classes.
 */
const ETCD3_CLASSES: Readonly<Record<string, number | undefined>> = {
  GRPCCancelledError: GrpcStatus.CANCELLED,
  GRPCUnknownError: GrpcStatus.UNKNOWN,
  GRPCInvalidArgumentError: GrpcStatus.INVALID_ARGUMENT,
  GRPCDeadlineExceededError: GrpcStatus.DEADLINE_EXCEEDED,
  GRPCNotFoundError: GrpcStatus.NOT_FOUND,
  GRPCAlreadyExistsError: GrpcStatus.ALREADY_EXISTS,
  GRPCResourceExhastedError: GrpcStatus.RESOURCE_EXHAUSTED,
  GRPCFailedPreconditionError: GrpcStatus.FAILED_PRECONDITION,
  GRPCAbortedError: GrpcStatus.ABORTED,
  GRPCOutOfRangeError: GrpcStatus.OUT_OF_RANGE,
  GRPCNotImplementedError: GrpcStatus.UNIMPLEMENTED,
  GRPCInternalError: GrpcStatus.INTERNAL,
  GRPCProtocolError: GrpcStatus.INTERNAL,
  GRPCUnavailableError: GrpcStatus.UNAVAILABLE,
  GRPCDataLossError: GrpcStatus.DATA_LOSS,
  GRPCUnauthenticatedError: GrpcStatus.UNAUTHENTICATED,
  EtcdPermissionDeniedError: GrpcStatus.PERMISSION_DENIED,
  EtcdInvalidAuthTokenError: GrpcStatus.UNAUTHENTICATED,
  EtcdAuthenticationFailedError: GrpcStatus.UNAUTHENTICATED,
  EtcdLeaseInvalidError: GrpcStatus.NOT_FOUND,
  EtcdUserNotFoundError: GrpcStatus.NOT_FOUND,
  EtcdRoleNotFoundError: GrpcStatus.NOT_FOUND,
  EtcdUserExistsError: GrpcStatus.ALREADY_EXISTS,
  EtcdRoleExistsError: GrpcStatus.ALREADY_EXISTS,
  EtcdRoleNotGrantedError: GrpcStatus.FAILED_PRECONDITION,
  EtcdLockFailedError: GrpcStatus.ABORTED,
  EtcdWatchStreamEnded: GrpcStatus.UNAVAILABLE,
  ClientRuntimeError: GrpcStatus.INTERNAL,
  // No code of their own: the message decides, else `internal`.
  GRPCGenericError: undefined,
  EtcdError: undefined,
};

function className(e: Error): string {
  return e.constructor?.name ?? e.name;
}

/**
 * What an etcd client's failure was, as an EtcdCallError: the gateway client's errors as they
 * are, `etcd3`'s (and its circuit breaker's) as a new one with the original as `cause`.
 * Undefined for anything that did not come from an etcd client (a bug, a TypeError): that
 * must not be mistaken for an outage.
 */
export function classifyEtcdError(e: unknown): EtcdCallError | undefined {
  if (e instanceof EtcdCallError) return e;
  if (!(e instanceof Error)) return undefined;
  const name = className(e);
  if (name === 'ClientClosedError') return etcdError('closed', e.message, { cause: e });
  if (name === 'BrokenCircuitError') {
    // etcd3's circuit breaker: every endpoint failed recently, none is tried now.
    return etcdError('unavailable', 'every endpoint failed recently', { cause: e });
  }
  if (!Object.hasOwn(ETCD3_CLASSES, name)) return undefined;
  const status = ETCD3_CLASSES[name];
  return etcdError(failureKind(status, e.message), e.message, { status, cause: e });
}

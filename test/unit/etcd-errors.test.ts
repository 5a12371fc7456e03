/**
 * classifyEtcdError, the one function that tells etcd failures apart, over the error
 * shapes both clients really produce: `etcd3`'s own classes (constructed from the package,
 * or cast by its castGrpcError from a gRPC status as its connection pool does), with the
 * messages they carried when provoked against a real etcd, and the gateway client's
 * errors for the {code, message} bodies etcd's gateway answers. Then what the datastore
 * and IPAM make of each kind. No etcd, no root: a client pointed at a port nobody listens
 * on gives the transport failures.
 */
import * as etcd3 from 'etcd3';
import { describe, expect, it } from 'vitest';
import {
  classifyEtcdError,
  EtcdRefusedError,
  EtcdTimeoutError,
  EtcdUnavailableError,
  type EtcdFailureKind,
} from '../../src/datastore/etcd/errors.js';
import { EtcdGatewayClient, gatewayError } from '../../src/datastore/etcd/gateway.js';
import { fromEtcdError, isDatastoreError } from '../../src/datastore/errors.js';
import type { DatastoreErrorKind, EtcdKv } from '../../src/datastore/index.js';
import { Cas } from '../../src/ipam/cas.js';
import { isIpamError } from '../../src/ipam/index.js';
import { freePort } from '../../src/lab/etcd.js';

// Messages as etcd 3.4 and etcd3 1.1 gave them (a probe of each case against a real etcd).
const REFUSED =
  '14 UNAVAILABLE: No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:36993. Resolution note: ';
const BAD_CERT =
  '14 UNAVAILABLE: No connection established. Last error: 80FCAC30B47F0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n (2026-12-07T01:19:48.552Z). Resolution note: ';
const UNKNOWN_CA =
  '14 UNAVAILABLE: No connection established. Last error: Error: unable to verify the first certificate. Resolution note: ';

/** [what, the error, its kind, its class]. */
const ETCD3_CASES: Array<[string, Error, EtcdFailureKind]> = [
  ['connection refused', new etcd3.GRPCUnavailableError(REFUSED), 'unavailable'],
  ['no client certificate', new etcd3.GRPCUnavailableError(BAD_CERT), 'tls'],
  ['an unknown CA', new etcd3.GRPCUnavailableError(UNKNOWN_CA), 'tls'],
  [
    'no leader',
    new etcd3.GRPCUnavailableError('14 UNAVAILABLE: etcdserver: no leader'),
    'unavailable',
  ],
  [
    "etcd's proposal timed out",
    new etcd3.GRPCUnavailableError('14 UNAVAILABLE: etcdserver: request timed out'),
    'timeout',
  ],
  [
    'the deadline',
    new etcd3.GRPCDeadlineExceededError(
      '4 DEADLINE_EXCEEDED: Deadline exceeded after 0.000s,waiting for name resolution',
    ),
    'timeout',
  ],
  [
    'a compacted revision',
    new etcd3.GRPCOutOfRangeError(
      '11 OUT_OF_RANGE: etcdserver: mvcc: required revision has been compacted',
    ),
    'compacted',
  ],
  [
    'a future revision',
    new etcd3.GRPCOutOfRangeError(
      '11 OUT_OF_RANGE: etcdserver: mvcc: required revision is a future revision',
    ),
    'future-revision',
  ],
  [
    'more than --max-txn-ops',
    new etcd3.GRPCInvalidArgumentError(
      '3 INVALID_ARGUMENT: etcdserver: too many operations in txn request',
    ),
    'too-many-ops',
  ],
  [
    'more than --max-request-bytes',
    new etcd3.GRPCInvalidArgumentError('3 INVALID_ARGUMENT: etcdserver: request is too large'),
    'too-large',
  ],
  [
    'a message larger than gRPC takes',
    new etcd3.GRPCResourceExhastedError(
      '8 RESOURCE_EXHAUSTED: grpc: received message larger than max (2097170 vs. 2097152)',
    ),
    'exhausted',
  ],
  [
    'an empty key',
    new etcd3.GRPCInvalidArgumentError('3 INVALID_ARGUMENT: etcdserver: key is not provided'),
    'invalid',
  ],
  [
    'auth not enabled',
    new etcd3.GRPCFailedPreconditionError(
      '9 FAILED_PRECONDITION: etcdserver: authentication is not enabled',
    ),
    'precondition',
  ],
  [
    'permission denied',
    new etcd3.EtcdPermissionDeniedError('7 PERMISSION_DENIED: etcdserver: permission denied'),
    'auth',
  ],
  [
    'a bad token',
    new etcd3.EtcdInvalidAuthTokenError('16 UNAUTHENTICATED: etcdserver: invalid auth token'),
    'auth',
  ],
  ['an expired lease', new etcd3.EtcdLeaseInvalidError('5'), 'not-found'],
  ['a closed client', new etcd3.ClientClosedError('KV'), 'closed'],
  ['an ended watch stream', new etcd3.EtcdWatchStreamEnded(), 'unavailable'],
  [
    'a watch canceled for compaction',
    etcd3.castGrpcErrorMessage(
      'Watcher canceled: etcdserver: mvcc: required revision has been compacted',
    ),
    'compacted',
  ],
  [
    'a gRPC status cast by etcd3',
    etcd3.castGrpcError(Object.assign(new Error('14 UNAVAILABLE: read ECONNRESET'), { code: 14 })),
    'unavailable',
  ],
  ['an untyped gRPC failure', new etcd3.GRPCGenericError('Error: something broke'), 'internal'],
  ['an internal error', new etcd3.GRPCInternalError('13 INTERNAL: oops'), 'internal'],
];

/** The gateway's answer bodies ({code, message}) and its own transport failures. */
const GATEWAY_CASES: Array<[string, number, string, EtcdFailureKind]> = [
  [
    'a compacted revision',
    11,
    'etcdserver: mvcc: required revision has been compacted',
    'compacted',
  ],
  [
    'a future revision',
    11,
    'etcdserver: mvcc: required revision is a future revision',
    'future-revision',
  ],
  ['more than --max-txn-ops', 3, 'etcdserver: too many operations in txn request', 'too-many-ops'],
  ['more than --max-request-bytes', 3, 'etcdserver: request is too large', 'too-large'],
  [
    'a message too large',
    8,
    'grpc: received message larger than max (2097170 vs. 2097152)',
    'exhausted',
  ],
  ['an empty key', 3, 'etcdserver: key is not provided', 'invalid'],
  ['no leader', 14, 'etcdserver: no leader', 'unavailable'],
  ['the deadline', 4, 'Deadline exceeded', 'timeout'],
  [
    'no client certificate',
    14,
    '80FCAC30B47F0000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n',
    'tls',
  ],
  ['an unknown CA', 14, 'unable to verify the first certificate', 'tls'],
  ['permission denied', 7, 'etcdserver: permission denied', 'auth'],
  [
    'an answer that is not JSON',
    13,
    'etcd answered /v3/kv/range with 502: Bad Gateway',
    'internal',
  ],
];

const CLASS_OF: Record<string, unknown> = {
  unavailable: EtcdUnavailableError,
  tls: EtcdUnavailableError,
  closed: EtcdUnavailableError,
  timeout: EtcdTimeoutError,
};

describe('classifyEtcdError', () => {
  it.each(ETCD3_CASES)("etcd3's error for %s is of its kind", (_what, error, kind) => {
    const classified = classifyEtcdError(error);
    expect(classified?.kind).toBe(kind);
    expect(classified).toBeInstanceOf(CLASS_OF[kind] ?? EtcdRefusedError);
    expect(classified?.cause).toBe(error);
  });

  it.each(GATEWAY_CASES)(
    "the gateway's error for %s is of its kind, worded as etcd3's",
    (_what, status, message, kind) => {
      const error = gatewayError(status, message);
      expect(classifyEtcdError(error)).toBe(error);
      expect(error.kind).toBe(kind);
      expect(error.status).toBe(status);
      expect(error).toBeInstanceOf(CLASS_OF[kind] ?? EtcdRefusedError);
      expect(error.message).toMatch(new RegExp(`^${status} [A-Z_]+: `));
    },
  );

  it('the same failure from either client is of the same kind', () => {
    const pairs: Array<[Error, Error]> = [
      [ETCD3_CASES[6]![1], gatewayError(GATEWAY_CASES[0]![1], GATEWAY_CASES[0]![2])],
      [ETCD3_CASES[1]![1], gatewayError(GATEWAY_CASES[8]![1], GATEWAY_CASES[8]![2])],
    ];
    for (const [grpc, gateway] of pairs)
      expect(classifyEtcdError(grpc)?.kind).toBe(classifyEtcdError(gateway)?.kind);
  });

  it('what no etcd client threw is no etcd failure, whatever its message says', () => {
    for (const e of [
      new TypeError("Cannot read properties of undefined (reading 'kvs')"),
      new Error('14 UNAVAILABLE: connect ECONNREFUSED 127.0.0.1:2379'),
      new Error('etcdserver: mvcc: required revision has been compacted'),
      'a string',
      undefined,
    ])
      expect(classifyEtcdError(e)).toBeUndefined();
  });

  it('the detail drops the transport boilerplate', () => {
    expect(classifyEtcdError(ETCD3_CASES[0]![1])?.detail).toBe(
      'cannot connect: ECONNREFUSED 127.0.0.1:36993',
    );
    expect(classifyEtcdError(ETCD3_CASES[2]![1])?.detail).toBe(
      '14 UNAVAILABLE: No connection established. Last error: unable to verify the first certificate',
    );
  });

  it('both clients pointed at a port nobody listens on: unavailable; closed: closed', async () => {
    const hosts = [`http://127.0.0.1:${await freePort()}`];
    const grpc = new etcd3.Etcd3({ hosts });
    const gateway = new EtcdGatewayClient({ hosts });
    try {
      const first = await grpc.kv.range({ key: Buffer.from('a') }).catch((e: unknown) => e);
      expect(classifyEtcdError(first)?.kind).toBe('unavailable');
      // Now etcd3's circuit breaker is open: it does not even try.
      const second = await grpc.kv.range({ key: Buffer.from('a') }).catch((e: unknown) => e);
      expect((second as Error).constructor.name).toBe('BrokenCircuitError');
      expect(classifyEtcdError(second)).toMatchObject({
        kind: 'unavailable',
        detail: 'every endpoint failed recently',
      });
      const viaGateway = await gateway.kv.range({ key: Buffer.from('a') }).catch((e: unknown) => e);
      expect(classifyEtcdError(viaGateway)?.kind).toBe('unavailable');
      expect(classifyEtcdError(viaGateway)?.detail).toMatch(/^cannot connect: ECONNREFUSED /);
    } finally {
      grpc.close();
      gateway.close();
    }
    const closed = await gateway.kv.range({ key: Buffer.from('a') }).catch((e: unknown) => e);
    expect(classifyEtcdError(closed)?.kind).toBe('closed');
    const closedGrpc = await grpc.kv.range({ key: Buffer.from('a') }).catch((e: unknown) => e);
    expect(classifyEtcdError(closedGrpc)?.kind).not.toBeUndefined();
  });
});

describe("what the datastore makes of an etcd failure's kind", () => {
  const DATASTORE: Array<[EtcdFailureKind, DatastoreErrorKind, RegExp]> = [
    [
      'unavailable',
      'unavailable',
      /is unavailable \(cannot connect: ECONNREFUSED .*check the endpoints/,
    ],
    ['tls', 'unavailable', /refused the TLS handshake.*--etcd-cert/s],
    ['timeout', 'unavailable', /is unavailable/],
    ['compacted', 'conflict', /no longer has that revision \(compacted\)/],
    ['future-revision', 'invalid', /that revision is in the future/],
    ['too-many-ops', 'invalid', /--max-txn-ops.*split the input/],
    ['too-large', 'invalid', /--max-request-bytes.*split the input/],
    ['auth', 'unavailable', /refused this client's credentials .*a role that may read and write/s],
  ];
  const sample = (kind: EtcdFailureKind): Error =>
    ETCD3_CASES.find(([, e]) => classifyEtcdError(e)?.kind === kind)![1];

  it.each(DATASTORE)('%s becomes a DatastoreError %s', (kind, expected, message) => {
    const e = fromEtcdError(sample(kind), ['http://127.0.0.1:2379']);
    expect(isDatastoreError(e, expected)).toBe(true);
    expect(e.message).toMatch(message);
    expect(e.cause).toBe(sample(kind));
  });

  it('what no etcd client threw passes through as it is', () => {
    const bug = new TypeError('x is undefined');
    expect(fromEtcdError(bug, [])).toBe(bug);
  });
});

describe("what IPAM makes of an etcd failure's kind", () => {
  /** A KV service whose every call fails with `error`. */
  const failing = (error: unknown): EtcdKv => ({
    range: () => Promise.reject(error),
    txn: () => Promise.reject(error),
  });

  it.each(ETCD3_CASES)(
    "etcd3's error for %s: refusals are invalid, the rest unavailable",
    async (_what, error, kind) => {
      const refusal = [
        'invalid',
        'too-many-ops',
        'too-large',
        'exhausted',
        'compacted',
        'future-revision',
      ];
      const tx = new Cas(failing(error), 1000);
      tx.put('/k', '1');
      const e = await tx.commit().catch((x: unknown) => x);
      expect(isIpamError(e, refusal.includes(kind) ? 'invalid' : 'unavailable')).toBe(true);
      expect((e as Error).cause).toBe(error);
    },
  );
});

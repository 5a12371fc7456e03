/**
 * An etcd client over etcd's JSON gateway (`POST /v3/kv/…`, part of every etcd 3.4 client
 * URL) with node:http: the EtcdKvClient of ./client.ts (the raw KV service, `close()`; no
 * watch) for the datastore and IPAM.
 *
 * Why: the CNI plugin is a short-lived process per call, and loading `etcd3` (gRPC,
 * HTTP/2, and protobuf definitions parsed at load) costs ~260 ms of CPU — more than half
 * of an ADD. This module loads in a few ms. The plugin passes it to the datastore and
 * IPAM (src/cni/etcd-backend.ts); it imports nothing from `etcd3` but types.
 *
 * It takes `etcd3`'s constructor options (hosts, credentials, defaultCallOptions; the
 * gRPC-specific rest is ignored). Requests and responses have the shapes `etcd3`'s raw
 * client gives (its proto-loader options: keepCase, longs and enums as strings, defaults
 * filled, bytes as Buffers). Failures are tortie's own etcd errors (./errors.ts), their
 * kind read from etcd's status code and sentence; messages are worded as etcd3's
 * ("14 UNAVAILABLE: …"). `put` and `deleteRange` are beyond what the datastore and IPAM
 * use, kept for tests and tools.
 */
import http from 'node:http';
import https from 'node:https';
import type {
  CallContext,
  IDeleteRangeRequest,
  IDeleteRangeResponse,
  IOptions,
  IPutRequest,
  IPutResponse,
  IRangeRequest,
  IRangeResponse,
  ITxnRequest,
  ITxnResponse,
} from 'etcd3';
import type { EtcdCallOptions, EtcdKvClient } from './client.js';
import { EtcdCallError, etcdError, failureKind, grpcStatusName, GrpcStatus } from './errors.js';

/* eslint-disable @typescript-eslint/no-explicit-any */

/**
 * The error for a gRPC status and message as etcd's gateway answers them ({code, message}),
 * worded as etcd3 words its: "11 OUT_OF_RANGE: etcdserver: …".
 */
export function gatewayError(status: number, message: string): EtcdCallError {
  const text = `${status} ${grpcStatusName(status)}: ${message}`;
  return etcdError(failureKind(status, message), text, { status });
}

const RESULTS = ['EQUAL', 'GREATER', 'LESS', 'NOT_EQUAL'];
const TARGETS = ['VERSION', 'CREATE', 'MOD', 'VALUE', 'LEASE'];

/** Compare enums arrive as etcd3's numbers (CompareTarget.Mod) or names ('Mod'); the gateway wants 'MOD'. */
function enumName(value: unknown, names: string[]): unknown {
  if (typeof value === 'number') return names[value] ?? value;
  if (typeof value === 'string') return value.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase();
  return value;
}

/** Request objects to gateway JSON: Buffers as base64, 64-bit integers as strings. */
function encode(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (typeof value === 'bigint') return value.toString();
  if (Array.isArray(value)) return value.map(encode);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = encode(v);
    return out;
  }
  return value;
}

function encodeCompare(compare: any): unknown {
  const out = encode(compare) as Record<string, unknown>;
  out.result = enumName(compare.result, RESULTS);
  out.target = enumName(compare.target, TARGETS);
  return out;
}

function encodeOp(op: any): unknown {
  return op?.request_txn ? { request_txn: encodeTxn(op.request_txn) } : encode(op);
}

function encodeTxn(txn: any): unknown {
  return {
    compare: (txn.compare ?? []).map(encodeCompare),
    success: (txn.success ?? []).map(encodeOp),
    failure: (txn.failure ?? []).map(encodeOp),
  };
}

function header(h: any): any {
  return {
    cluster_id: h?.cluster_id ?? '0',
    member_id: h?.member_id ?? '0',
    revision: h?.revision ?? '0',
    raft_term: h?.raft_term ?? '0',
  };
}

function keyValue(kv: any): any {
  return {
    key: Buffer.from(kv.key ?? '', 'base64'),
    create_revision: kv.create_revision ?? '0',
    mod_revision: kv.mod_revision ?? '0',
    version: kv.version ?? '0',
    value: Buffer.from(kv.value ?? '', 'base64'),
    lease: kv.lease ?? '0',
  };
}

function rangeResponse(r: any): any {
  return {
    header: header(r?.header),
    kvs: (r?.kvs ?? []).map(keyValue),
    more: r?.more ?? false,
    count: r?.count ?? '0',
  };
}

function putResponse(r: any): any {
  return { header: header(r?.header), prev_kv: r?.prev_kv ? keyValue(r.prev_kv) : null };
}

function deleteRangeResponse(r: any): any {
  return {
    header: header(r?.header),
    deleted: r?.deleted ?? '0',
    prev_kvs: (r?.prev_kvs ?? []).map(keyValue),
  };
}

function txnResponse(r: any): any {
  return {
    header: header(r?.header),
    succeeded: r?.succeeded ?? false,
    responses: (r?.responses ?? []).map((op: any) =>
      op.response_range
        ? { response: 'response_range', response_range: rangeResponse(op.response_range) }
        : op.response_put
          ? { response: 'response_put', response_put: putResponse(op.response_put) }
          : op.response_delete_range
            ? {
                response: 'response_delete_range',
                response_delete_range: deleteRangeResponse(op.response_delete_range),
              }
            : { response: 'response_txn', response_txn: txnResponse(op.response_txn) },
    ),
  };
}

class Endpoint {
  readonly url: URL;
  readonly agent: http.Agent;

  constructor(host: string, credentials: IOptions['credentials']) {
    this.url = new URL(/^[a-z]+:\/\//i.test(host) ? host : `http://${host}`);
    this.agent =
      this.url.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            ...(credentials?.rootCertificate ? { ca: credentials.rootCertificate } : {}),
            ...(credentials?.certChain ? { cert: credentials.certChain } : {}),
            ...(credentials?.privateKey ? { key: credentials.privateKey } : {}),
          })
        : new http.Agent({ keepAlive: true });
  }
}

class ConnectError extends Error {}

export class EtcdGatewayClient implements EtcdKvClient {
  private readonly endpoints: Endpoint[];
  private closed = false;
  readonly kv = {
    range: (req: IRangeRequest, options?: EtcdCallOptions): Promise<IRangeResponse> =>
      this.call(
        { service: 'KV', method: 'range', isStream: false, params: req },
        encode(req),
        options,
      ).then(rangeResponse),
    put: (req: IPutRequest, options?: EtcdCallOptions): Promise<IPutResponse> =>
      this.call(
        { service: 'KV', method: 'put', isStream: false, params: req },
        encode(req),
        options,
      ).then(putResponse),
    deleteRange: (
      req: IDeleteRangeRequest,
      options?: EtcdCallOptions,
    ): Promise<IDeleteRangeResponse> =>
      this.call(
        { service: 'KV', method: 'deleteRange', isStream: false, params: req },
        encode(req),
        options,
      ).then(deleteRangeResponse),
    txn: (req: ITxnRequest, options?: EtcdCallOptions): Promise<ITxnResponse> =>
      this.call(
        { service: 'KV', method: 'txn', isStream: false, params: req },
        encodeTxn(req),
        options,
      ).then(txnResponse),
  };

  constructor(private readonly options: IOptions) {
    const hosts = Array.isArray(options.hosts) ? options.hosts : [options.hosts];
    this.endpoints = hosts.map((h) => new Endpoint(h, options.credentials));
  }

  close(): void {
    this.closed = true;
    for (const e of this.endpoints) e.agent.destroy();
  }

  private deadlineOf(context: CallContext, options?: EtcdCallOptions): number | undefined {
    const defaults = this.options.defaultCallOptions;
    const given =
      options?.deadline ??
      (typeof defaults === 'function' ? defaults(context) : defaults)?.deadline;
    return given === undefined ? undefined : Number(given);
  }

  /** One KV call: `body` is the request as gateway JSON. */
  private async call(context: CallContext, body: unknown, options?: EtcdCallOptions): Promise<any> {
    if (this.closed) throw etcdError('closed', 'tried to call a closed etcd client');
    const json = JSON.stringify(body);
    const deadline = this.deadlineOf(context, options);
    const path = `/v3/kv/${context.method.toLowerCase()}`;
    let last: Error | undefined;
    for (const endpoint of this.endpoints) {
      try {
        return await this.post(endpoint, path, json, deadline);
      } catch (err) {
        if (!(err instanceof ConnectError)) throw err;
        last = err;
      }
    }
    throw gatewayError(
      GrpcStatus.UNAVAILABLE,
      `No connection established. Last error: ${last?.message ?? 'no endpoint'}`,
    );
  }

  private post(
    endpoint: Endpoint,
    path: string,
    body: string,
    deadline: number | undefined,
  ): Promise<any> {
    return new Promise((resolve, reject) => {
      const transport = endpoint.url.protocol === 'https:' ? https : http;
      const timeoutMs = deadline === undefined ? undefined : Math.max(1, deadline - Date.now());
      let sent = false;
      const request = transport.request(
        {
          hostname: endpoint.url.hostname,
          port: endpoint.url.port,
          path,
          method: 'POST',
          agent: endpoint.agent,
          headers: {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (c: Buffer) => chunks.push(c));
          response.on('error', reject);
          response.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let json: any;
            try {
              json = text === '' ? {} : JSON.parse(text);
            } catch {
              reject(
                gatewayError(
                  GrpcStatus.INTERNAL,
                  `etcd answered ${path} with ${response.statusCode}: ${text.slice(0, 200)}`,
                ),
              );
              return;
            }
            if (response.statusCode === 200 && json.error === undefined) resolve(json);
            else
              reject(
                gatewayError(
                  Number(json.code ?? GrpcStatus.UNKNOWN),
                  String(json.message ?? json.error ?? `HTTP ${response.statusCode}`),
                ),
              );
          });
        },
      );
      const timer =
        timeoutMs === undefined
          ? undefined
          : setTimeout(
              () =>
                request.destroy(gatewayError(GrpcStatus.DEADLINE_EXCEEDED, 'Deadline exceeded')),
              timeoutMs,
            );
      request.on('socket', (socket) => {
        // A reused keep-alive socket is connected already: the request may reach etcd.
        if (!socket.connecting) sent = true;
        else socket.once('connect', () => (sent = true));
      });
      request.on('error', (err) => {
        clearTimeout(timer);
        if (err instanceof EtcdCallError) reject(err);
        // Not connected at all: safe to try another endpoint; after that, the outcome is unknown.
        else if (!sent && (err as NodeJS.ErrnoException).code !== undefined)
          reject(new ConnectError(err.message));
        else reject(gatewayError(GrpcStatus.UNAVAILABLE, err.message));
      });
      request.end(body);
    });
  }
}

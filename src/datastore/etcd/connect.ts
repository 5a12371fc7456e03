/**
 * Building the etcd client from user settings: endpoint URLs, TLS material, deadlines.
 * The client itself comes from a factory: by default the `etcd3` package, loaded only when
 * it is needed (it costs ~260 ms of CPU to load: gRPC, protobuf definitions parsed at
 * load), or any client with the narrow API of ./client.ts that the caller passes in.
 */
import { readFile } from 'node:fs/promises';
import type { Etcd3, IOptions } from 'etcd3';
import type { EtcdClientFactory, EtcdKvClient } from './client.js';
import { DatastoreError } from '../errors.js';

/** PEM material: a Buffer is the content, a string is a file path. */
export type PemSource = string | Buffer;

export interface DatastoreTls {
  readonly ca?: PemSource;
  readonly cert?: PemSource;
  readonly key?: PemSource;
}

export interface ConnectOptions {
  /** e.g. ["http://127.0.0.1:2379"]; a bare host:port gets http:// (https:// with tls). */
  readonly endpoints: readonly string[];
  /** Key prefix of everything tortie stores; default "/calico" (Calico's). */
  readonly prefix?: string;
  readonly tls?: DatastoreTls;
  /** Deadline of every call, in ms; default 5000. */
  readonly timeoutMs?: number;
}

export const DEFAULT_TIMEOUT_MS = 5000;

/** Endpoint URLs with a scheme, validated. */
export function normaliseEndpoints(endpoints: readonly string[], tls: boolean): string[] {
  if (endpoints.length === 0) {
    throw new DatastoreError(
      'invalid',
      'no etcd endpoints given (e.g. --etcd-endpoints http://127.0.0.1:2379)',
    );
  }
  return endpoints.map((raw) => {
    const text = raw.trim();
    const withScheme = /^[a-z]+:\/\//i.test(text) ? text : `${tls ? 'https' : 'http'}://${text}`;
    let url: URL;
    try {
      url = new URL(withScheme);
    } catch {
      throw new DatastoreError(
        'invalid',
        `etcd endpoint ${JSON.stringify(raw)} is not a URL (expected http(s)://host:port)`,
      );
    }
    if (
      (url.protocol !== 'http:' && url.protocol !== 'https:') ||
      url.hostname === '' ||
      (url.pathname !== '/' && url.pathname !== '')
    ) {
      throw new DatastoreError(
        'invalid',
        `etcd endpoint ${JSON.stringify(raw)} is not a URL (expected http(s)://host:port)`,
      );
    }
    return `${url.protocol}//${url.host}`;
  });
}

async function pem(what: string, source: PemSource | undefined): Promise<Buffer | undefined> {
  if (source === undefined || Buffer.isBuffer(source)) return source;
  try {
    return await readFile(source);
  } catch (e) {
    throw new DatastoreError(
      'invalid',
      `cannot read the etcd ${what} ${source}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
}

/** The `etcd3` package's client (gRPC), the package loaded on first use. */
export async function grpcEtcdClientFactory(): Promise<EtcdClientFactory<Etcd3>> {
  const { Etcd3 } = await import('etcd3');
  return (options) => new Etcd3(options);
}

/**
 * The etcd client for these options (it connects lazily, on the first call): made by
 * `createClient`, by default the `etcd3` package's.
 */
export async function createEtcdClient(
  options: ConnectOptions,
): Promise<{ etcd: Etcd3; endpoints: string[] }>;
export async function createEtcdClient<C extends EtcdKvClient>(
  options: ConnectOptions,
  createClient: EtcdClientFactory<C>,
): Promise<{ etcd: C; endpoints: string[] }>;
export async function createEtcdClient(
  options: ConnectOptions,
  createClient?: EtcdClientFactory<EtcdKvClient>,
): Promise<{ etcd: EtcdKvClient; endpoints: string[] }> {
  const tls = options.tls !== undefined && Object.values(options.tls).some((v) => v !== undefined);
  const endpoints = normaliseEndpoints(options.endpoints, tls);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const etcdOptions: IOptions = {
    hosts: endpoints,
    dialTimeout: timeoutMs,
    // Raw-client callers (IPAM) get a deadline too; the Datastore passes its own per operation.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    grpcOptions: {
      // Large lists (thousands of endpoints) exceed gRPC's 4 MiB default.
      'grpc.max_receive_message_length': -1,
      // Notice a dead member behind an idle watch stream (etcd allows pings every 5 s).
      'grpc.keepalive_time_ms': 10_000,
      'grpc.keepalive_timeout_ms': 5_000,
      'grpc.keepalive_permit_without_calls': 1,
    },
  };
  if (tls) {
    const [ca, cert, key] = await Promise.all([
      pem('CA certificate', options.tls?.ca),
      pem('client certificate', options.tls?.cert),
      pem('client key', options.tls?.key),
    ]);
    if ((cert === undefined) !== (key === undefined)) {
      throw new DatastoreError(
        'invalid',
        'an etcd client certificate needs its key, and a key its certificate',
      );
    }
    // Without a CA the system's roots are used (grpc treats a missing root as "default").
    etcdOptions.credentials = {
      rootCertificate: ca as Buffer,
      ...(cert === undefined ? {} : { certChain: cert }),
      ...(key === undefined ? {} : { privateKey: key }),
    };
  }
  // Settings are checked (and files read) before etcd3 is loaded: a bad one fails fast.
  const create = createClient ?? (await grpcEtcdClientFactory());
  return { etcd: create(etcdOptions), endpoints };
}

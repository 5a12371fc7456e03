/**
 * A small client of the Kubernetes API over node:https: the calls the Kubernetes datastore
 * makes (get, list, create, replace, merge patch, delete with preconditions, watch) and the
 * connection settings client-go reads (a kubeconfig file's current context: server, CA,
 * client certificate and key or a bearer token; or, with no kubeconfig, the pod's
 * service-account token and CA under /var/run/secrets/kubernetes.io/serviceaccount).
 *
 * Why not @kubernetes/client-node: the datastore needs half a dozen verbs on resources it
 * names by group/version/plural, the raw resourceVersion of every object and list, and the
 * watch stream as the API server sends it (bookmarks, 410 Gone as an ERROR event, the
 * stream closing when the server restarts) — all of which are plain HTTP and JSON lines.
 * The library brings a generated typed client for every built-in kind and a dependency tree
 * several times tortie's, and its watch helper folds the cases above into callbacks the
 * datastore would have to take apart again. The `yaml` package tortie already has reads
 * the kubeconfig.
 */
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, join } from 'node:path';
import https from 'node:https';
import http from 'node:http';
import { parse as parseYaml } from 'yaml';
import { etcdError } from '../etcd/errors.js';
import { parseBigJson, stringifyBigJson } from './bigjson.js';
import type { KubeObject, KubeResource } from './mapping.js';

/** Where a pod finds its service account's token, CA and namespace (as client-go reads them). */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubeConnection {
  /** https://host:port (or http:// for a plain test server). */
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly token?: string;
  /** Where the token is read from again on every request (service-account tokens rotate). */
  readonly tokenFile?: string;
  readonly insecureSkipTlsVerify?: boolean;
  /** Where the settings came from, for messages. */
  readonly source: string;
}

/** An answer of the API server other than 2xx: its Status object's reason and message. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  /** The answer's Retry-After, when it had one. */
  retryAfterMs: number | undefined;
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

export function isKubeApiError(e: unknown, status?: number): e is KubeApiError {
  return e instanceof KubeApiError && (status === undefined || e.status === status);
}

export interface KubeList {
  readonly metadata: { resourceVersion?: string; continue?: string };
  readonly items: KubeObject[];
}

export type KubeWatchEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: KubeObject }
  | { type: 'ERROR'; object: { code?: number; reason?: string; message?: string } };

export interface KubeWatchHandle {
  /** Stops the watch; the `onEnd` callback is not called. */
  close(): void;
}

export interface RequestOptions {
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly body?: unknown;
  readonly contentType?: string;
  /** ms since the epoch. */
  readonly deadline?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

function field(obj: unknown, name: string): unknown {
  return typeof obj === 'object' && obj !== null
    ? (obj as Record<string, unknown>)[name]
    : undefined;
}

function named(list: unknown, name: string, what: string, source: string): Record<string, unknown> {
  if (!Array.isArray(list)) throw new Error(`${source}: ${what}s is not a list`);
  const found = list.find((e) => field(e, 'name') === name);
  const inner = field(found, what);
  if (typeof inner !== 'object' || inner === null)
    throw new Error(`${source}: no ${what} called ${JSON.stringify(name)}`);
  return inner as Record<string, unknown>;
}

async function material(
  entry: Record<string, unknown>,
  fileField: string,
  dataField: string,
  base: string,
): Promise<Buffer | undefined> {
  const data = entry[dataField];
  if (typeof data === 'string') return Buffer.from(data, 'base64');
  const file = entry[fileField];
  if (typeof file === 'string') return readFile(isAbsolute(file) ? file : join(base, file));
  return undefined;
}

/** The current context of a kubeconfig file (or `context`), as client-go reads it. */
export async function loadKubeconfig(path: string, context?: string): Promise<KubeConnection> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new Error(`kubeconfig ${path}: ${(e as Error).message}`);
  }
  const doc = parseYaml(text) as unknown;
  const ctxName = context ?? field(doc, 'current-context');
  if (typeof ctxName !== 'string' || ctxName === '')
    throw new Error(`kubeconfig ${path}: no current-context (and no context given)`);
  const ctx = named(field(doc, 'contexts'), ctxName, 'context', `kubeconfig ${path}`);
  const cluster = named(
    field(doc, 'clusters'),
    String(ctx.cluster),
    'cluster',
    `kubeconfig ${path}`,
  );
  const user =
    ctx.user === undefined
      ? {}
      : named(field(doc, 'users'), String(ctx.user), 'user', `kubeconfig ${path}`);
  const server = cluster.server;
  if (typeof server !== 'string' || !/^https?:\/\//.test(server))
    throw new Error(
      `kubeconfig ${path}: cluster ${String(ctx.cluster)}: server is not an http(s) URL`,
    );
  const base = dirname(path);
  const tokenFile = typeof user.tokenFile === 'string' ? user.tokenFile : undefined;
  const conn: KubeConnection = {
    server: server.replace(/\/+$/, ''),
    ca: await material(cluster, 'certificate-authority', 'certificate-authority-data', base),
    cert: await material(user, 'client-certificate', 'client-certificate-data', base),
    key: await material(user, 'client-key', 'client-key-data', base),
    ...(typeof user.token === 'string' ? { token: user.token } : {}),
    ...(tokenFile === undefined
      ? {}
      : { tokenFile: isAbsolute(tokenFile) ? tokenFile : join(base, tokenFile) }),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    source: `kubeconfig ${path} (context ${ctxName})`,
  };
  if ((conn.cert === undefined) !== (conn.key === undefined))
    throw new Error(
      `kubeconfig ${path}: user ${String(ctx.user)} has a client certificate or key without the other`,
    );
  return conn;
}

/** The pod's own service account (KUBERNETES_SERVICE_HOST/PORT and the mounted token). */
export async function inClusterConnection(
  dir: string = SERVICE_ACCOUNT_DIR,
): Promise<KubeConnection> {
  const host = process.env.KUBERNETES_SERVICE_HOST;
  const port = process.env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new Error(
      'no kubeconfig given and not in a pod (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset): pass --kubeconfig or set KUBECONFIG',
    );
  const tokenFile = join(dir, 'token');
  let ca: Buffer;
  try {
    ca = await readFile(join(dir, 'ca.crt'));
    await readFile(tokenFile);
  } catch (e) {
    throw new Error(`in-cluster service account under ${dir}: ${(e as Error).message}`);
  }
  const h = host.includes(':') ? `[${host}]` : host;
  return { server: `https://${h}:${port}`, ca, tokenFile, source: `service account (${dir})` };
}

export class KubeClient {
  private readonly agent: http.Agent;
  private closed = false;

  constructor(readonly connection: KubeConnection) {
    const tls = connection.server.startsWith('https:');
    this.agent = tls
      ? new https.Agent({
          keepAlive: true,
          ca: connection.ca,
          cert: connection.cert,
          key: connection.key,
          rejectUnauthorized: !connection.insecureSkipTlsVerify,
        })
      : new http.Agent({ keepAlive: true });
  }

  /** The kubeconfig at `path`, else $KUBECONFIG, else the pod's service account. */
  static async connect(
    options: { kubeconfig?: string; context?: string } = {},
  ): Promise<KubeClient> {
    const path = options.kubeconfig ?? (process.env.KUBECONFIG || undefined);
    // KUBECONFIG may list several files; the first one is read (merging is not supported).
    const first = path?.split(':')[0];
    return new KubeClient(
      first ? await loadKubeconfig(first, options.context) : await inClusterConnection(),
    );
  }

  close(): void {
    this.closed = true;
    this.agent.destroy();
  }

  /** `/apis/<group>/<version>[/namespaces/<ns>]/<plural>[/<name>]` (`/api/v1/...` for core). */
  static path(r: KubeResource, namespace?: string, name?: string): string {
    const base = r.group === '' ? `/api/${r.version}` : `/apis/${r.group}/${r.version}`;
    const ns =
      r.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    return `${base}${ns}/${r.plural}${name === undefined ? '' : `/${encodeURIComponent(name)}`}`;
  }

  private async headers(contentType?: string, length?: number): Promise<Record<string, string>> {
    const h: Record<string, string> = { Accept: 'application/json' };
    if (contentType !== undefined) h['Content-Type'] = contentType;
    // A body always with its length: a chunked one on a kept-alive connection was seen to
    // leave the next request answered "400 Bad Request".
    if (length !== undefined) h['Content-Length'] = String(length);
    let token = this.connection.token;
    if (this.connection.tokenFile !== undefined)
      token = (await readFile(this.connection.tokenFile, 'utf8')).trim();
    if (token !== undefined) h.Authorization = `Bearer ${token}`;
    return h;
  }

  private url(path: string, query?: Readonly<Record<string, string | undefined>>): URL {
    const u = new URL(this.connection.server + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, v);
    return u;
  }

  /**
   * One call; the parsed JSON answer. Non-2xx answers throw KubeApiError; no answer, an
   * etcd-kind error. "429 Too Many Requests" (the API server's flow control, a resource's
   * storage still initializing) is tried again after its Retry-After, within the deadline.
   */
  async request<T = unknown>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const deadline = opts.deadline ?? Date.now() + DEFAULT_TIMEOUT_MS;
    for (;;) {
      try {
        return await this.requestOnce<T>(method, path, { ...opts, deadline });
      } catch (e) {
        if (!isKubeApiError(e, 429)) throw e;
        const wait = Math.min(Math.max(e.retryAfterMs ?? 200, 50), 1000);
        if (Date.now() + wait >= deadline) throw e;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  private async requestOnce<T>(method: string, path: string, opts: RequestOptions): Promise<T> {
    if (this.closed) throw etcdError('closed', 'the Kubernetes client is closed');
    const body = opts.body === undefined ? undefined : Buffer.from(stringifyBigJson(opts.body));
    const headers = await this.headers(
      body === undefined ? undefined : (opts.contentType ?? 'application/json'),
      body?.length,
    );
    const url = this.url(path, opts.query);
    const timeout = Math.max(1, (opts.deadline ?? Date.now() + DEFAULT_TIMEOUT_MS) - Date.now());
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      const req = mod.request(url, { method, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(unavailable(this.connection, e)));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text === '' ? {} : parseBigJson(text);
          } catch {
            json = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve(json as T);
          else {
            const err = apiError(status, json, text, `${method} ${path}`);
            const after = Number(res.headers['retry-after']);
            if (Number.isFinite(after)) err.retryAfterMs = after * 1000;
            reject(err);
          }
        });
      });
      const timer = setTimeout(() => {
        req.destroy();
        reject(
          etcdError(
            'timeout',
            `${method} ${path}: no answer from ${this.connection.server} within ${timeout} ms`,
          ),
        );
      }, timeout);
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(unavailable(this.connection, e));
      });
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  get(r: KubeResource, name: string, namespace?: string, deadline?: number): Promise<KubeObject> {
    return this.request('GET', KubeClient.path(r, namespace, name), { deadline });
  }

  /** Every object of the resource (all namespaces), at `resourceVersion` exactly when given. */
  async list(
    r: KubeResource,
    opts: {
      resourceVersion?: string;
      fieldSelector?: string;
      namespace?: string;
      deadline?: number;
    } = {},
  ): Promise<KubeList> {
    const items: KubeObject[] = [];
    let cont: string | undefined;
    let rv: string | undefined;
    do {
      const page = await this.request<KubeList>('GET', KubeClient.path(r, opts.namespace), {
        query: {
          limit: '500',
          continue: cont,
          fieldSelector: opts.fieldSelector,
          ...(opts.resourceVersion !== undefined && cont === undefined
            ? { resourceVersion: opts.resourceVersion, resourceVersionMatch: 'Exact' }
            : {}),
        },
        deadline: opts.deadline,
      });
      items.push(...(page.items ?? []));
      rv ??= page.metadata?.resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont !== undefined);
    return { metadata: { resourceVersion: rv }, items };
  }

  create(r: KubeResource, obj: KubeObject, deadline?: number): Promise<KubeObject> {
    return this.request('POST', KubeClient.path(r, obj.metadata.namespace), {
      body: obj,
      deadline,
    });
  }

  /** PUT: fails with 409 when `obj.metadata.resourceVersion` is not the stored one. */
  replace(r: KubeResource, obj: KubeObject, deadline?: number): Promise<KubeObject> {
    return this.request('PUT', KubeClient.path(r, obj.metadata.namespace, obj.metadata.name), {
      body: obj,
      deadline,
    });
  }

  mergePatch(
    r: KubeResource,
    name: string,
    namespace: string | undefined,
    patch: unknown,
    deadline?: number,
  ): Promise<KubeObject> {
    return this.request('PATCH', KubeClient.path(r, namespace, name), {
      body: patch,
      contentType: 'application/merge-patch+json',
      deadline,
    });
  }

  /** DELETE, only if the object is still at `resourceVersion` (when given): else 409. */
  delete(
    r: KubeResource,
    name: string,
    namespace: string | undefined,
    resourceVersion?: string,
    deadline?: number,
  ): Promise<unknown> {
    return this.request('DELETE', KubeClient.path(r, namespace, name), {
      body: {
        kind: 'DeleteOptions',
        apiVersion: 'v1',
        ...(resourceVersion === undefined ? {} : { preconditions: { resourceVersion } }),
      },
      deadline,
    });
  }

  /**
   * Streams the resource's changes after `resourceVersion` with bookmarks. `onEnd` is told
   * when the stream ends or fails (the server closed it, restarted, refused it); an HTTP
   * refusal (410 when the version is compacted away) comes as an ERROR event first.
   */
  watch(
    r: KubeResource,
    resourceVersion: string,
    onEvent: (ev: KubeWatchEvent) => void,
    onEnd: (why: string) => void,
  ): KubeWatchHandle {
    let done = false;
    const finish = (why: string) => {
      if (done) return;
      done = true;
      onEnd(why);
    };
    const url = this.url(KubeClient.path(r), {
      watch: '1',
      allowWatchBookmarks: 'true',
      resourceVersion,
      timeoutSeconds: String(240 + Math.floor(Math.random() * 120)),
    });
    const mod = url.protocol === 'https:' ? https : http;
    let req: http.ClientRequest | undefined;
    void this.headers()
      .then((headers) => {
        if (done) return;
        req = mod.request(url, { method: 'GET', headers, agent: this.agent }, (res) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let json: unknown;
              try {
                json = JSON.parse(text);
              } catch {
                json = undefined;
              }
              if (!done)
                onEvent({
                  type: 'ERROR',
                  object: {
                    code: status,
                    reason: String(field(json, 'reason') ?? ''),
                    message: String(field(json, 'message') ?? text),
                  },
                });
              finish(`watch of ${r.plural} refused: HTTP ${status}`);
            });
            return;
          }
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buf += chunk;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl).trim();
              buf = buf.slice(nl + 1);
              if (line === '' || done) continue;
              try {
                onEvent(parseBigJson(line) as KubeWatchEvent);
              } catch (e) {
                finish(`watch of ${r.plural}: ${(e as Error).message}`);
                req?.destroy();
                return;
              }
            }
          });
          res.on('end', () => finish(`the API server closed the watch of ${r.plural}`));
          res.on('error', (e) => finish(`watch of ${r.plural}: ${e.message}`));
        });
        req.on('error', (e) => finish(`watch of ${r.plural}: ${e.message}`));
        req.end();
      })
      .catch((e: Error) => finish(`watch of ${r.plural}: ${e.message}`));
    return {
      close: () => {
        done = true;
        req?.destroy();
      },
    };
  }
}

function unavailable(conn: KubeConnection, e: Error) {
  const tls = /certificate|self.signed|SSL|TLS|handshake/i.test(e.message);
  return etcdError(
    tls ? 'tls' : 'unavailable',
    `the Kubernetes API server ${conn.server} (${conn.source}) did not answer: ${e.message}`,
    { cause: e },
  );
}

function apiError(status: number, json: unknown, text: string, what: string): KubeApiError {
  const reason = String(field(json, 'reason') ?? '');
  const message = String(field(json, 'message') ?? (text.slice(0, 200) || `HTTP ${status}`));
  return new KubeApiError(status, reason, `${what}: ${message}`);
}

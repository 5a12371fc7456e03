/**
 * What the lab says to a Kubernetes API server when it plays kubelet, the controller
 * manager and a user with kubectl: create, read, patch and delete objects, and follow a
 * resource's changes. A kubeconfig names the server and the credentials (a client
 * certificate, or a bearer token such as a ServiceAccount's), as kubectl reads it.
 *
 * This is the lab's own narrow client, on node:https alone: the lab writes Kubernetes'
 * objects as a user would, and never through tortie's datastore (the agents and the CNI
 * plugin read them through that).
 */
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { KubeObject } from '../../datastore/kubernetes/mapping.js';

export type { KubeObject } from '../../datastore/kubernetes/mapping.js';

/** The server and credentials of a kubeconfig's current context. */
export interface KubeCredentials {
  readonly server: string;
  readonly ca?: Buffer;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly token?: string;
  /** Skip the server certificate check (`insecure-skip-tls-verify`). */
  readonly insecure?: boolean;
}

/** An answer of the API that is not a success: its HTTP status and the API's message. */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: { name: string; context: { cluster: string; user: string } }[];
  clusters?: {
    name: string;
    cluster: {
      server: string;
      'certificate-authority'?: string;
      'certificate-authority-data'?: string;
      'insecure-skip-tls-verify'?: boolean;
    };
  }[];
  users?: {
    name: string;
    user: {
      'client-certificate'?: string;
      'client-certificate-data'?: string;
      'client-key'?: string;
      'client-key-data'?: string;
      token?: string;
      tokenFile?: string;
    };
  }[];
}

/** The current context of the kubeconfig at `path` (files relative to it, as kubectl reads them). */
export function readKubeconfig(path: string): KubeCredentials {
  let doc: KubeconfigFile;
  try {
    doc = parseYaml(readFileSync(path, 'utf8')) as KubeconfigFile;
  } catch (e) {
    throw new Error(`kubeconfig ${path}: ${(e as Error).message}`);
  }
  const where = (field: string) => `kubeconfig ${path}: ${field}`;
  const ctxName = doc['current-context'] ?? doc.contexts?.[0]?.name;
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context;
  if (ctx === undefined) throw new Error(where(`no context "${String(ctxName)}"`));
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  if (cluster?.server === undefined)
    throw new Error(where(`clusters: no cluster "${ctx.cluster}" with a server`));
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  const file = (p: string) => readFileSync(isAbsolute(p) ? p : resolve(dirname(path), p));
  const pem = (data: string | undefined, p: string | undefined) =>
    data !== undefined ? Buffer.from(data, 'base64') : p !== undefined ? file(p) : undefined;
  const ca = pem(cluster['certificate-authority-data'], cluster['certificate-authority']);
  const cert = pem(user['client-certificate-data'], user['client-certificate']);
  const key = pem(user['client-key-data'], user['client-key']);
  const token =
    user.token ?? (user.tokenFile === undefined ? undefined : file(user.tokenFile).toString());
  return {
    server: cluster.server.replace(/\/$/, ''),
    ...(ca === undefined ? {} : { ca }),
    ...(cert === undefined ? {} : { cert }),
    ...(key === undefined ? {} : { key }),
    ...(token === undefined ? {} : { token: token.trim() }),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecure: true } : {}),
  };
}

/** A resource's path: `/api/v1/…` (core) or `/apis/<group>/<version>/…`, namespaced or not. */
export function resourcePath(
  apiVersion: string,
  plural: string,
  namespace?: string,
  name?: string,
): string {
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const ns = namespace === undefined ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  const n = name === undefined ? '' : `/${encodeURIComponent(name)}`;
  return `${base}${ns}/${plural}${n}`;
}

/** A watch event as the API sends it. */
export interface KubeWatchEvent {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  readonly object: KubeObject;
}

export interface KubeWatch {
  /** Ends the watch (its callback is not called again). */
  close(): void;
}

export class KubeApi {
  private readonly agent: https.Agent;

  constructor(
    readonly credentials: KubeCredentials,
    /** The field manager of server-side applies. */
    private readonly fieldManager = 'tortie-lab',
  ) {
    const c = credentials;
    this.agent = new https.Agent({
      keepAlive: true,
      ...(c.ca === undefined ? {} : { ca: c.ca }),
      ...(c.cert === undefined ? {} : { cert: c.cert }),
      ...(c.key === undefined ? {} : { key: c.key }),
      rejectUnauthorized: c.insecure !== true,
    });
  }

  static fromKubeconfig(path: string, fieldManager?: string): KubeApi {
    return new KubeApi(readKubeconfig(path), fieldManager);
  }

  /** One request; resolves with the parsed body, rejects with a KubeApiError. */
  request<T = KubeObject>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    const url = new URL(this.credentials.server + path);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<T>((resolveReq, reject) => {
      const req = https.request(
        url,
        {
          method,
          agent: this.agent,
          headers: {
            accept: 'application/json',
            ...(this.credentials.token === undefined
              ? {}
              : { authorization: `Bearer ${this.credentials.token}` }),
            ...(payload === undefined
              ? {}
              : { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) }),
          },
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text === '' ? {} : JSON.parse(text);
            } catch {
              parsed = { message: text };
            }
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolveReq(parsed as T);
            const s = parsed as { message?: string; reason?: string };
            reject(
              new KubeApiError(
                status,
                s.reason ?? '',
                `${method} ${path}: ${status} ${s.message ?? text}`.trim(),
              ),
            );
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  get(path: string): Promise<KubeObject> {
    return this.request('GET', path);
  }

  /** The object, or undefined when the API answers 404. */
  async find(path: string): Promise<KubeObject | undefined> {
    try {
      return await this.get(path);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) return undefined;
      throw e;
    }
  }

  /** A list: its items and its resourceVersion. */
  async list(path: string): Promise<{ items: KubeObject[]; resourceVersion: string }> {
    const l = await this.request<{ items?: KubeObject[]; metadata?: { resourceVersion?: string } }>(
      'GET',
      path,
    );
    return { items: l.items ?? [], resourceVersion: l.metadata?.resourceVersion ?? '0' };
  }

  create(collectionPath: string, object: KubeObject): Promise<KubeObject> {
    return this.request('POST', collectionPath, object);
  }

  /** Creates the object unless one of its name exists (then resolves with that one). */
  async ensure(collectionPath: string, object: KubeObject): Promise<KubeObject> {
    try {
      return await this.create(collectionPath, object);
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 409)
        return this.get(`${collectionPath}/${encodeURIComponent(object.metadata.name)}`);
      throw e;
    }
  }

  /** A JSON merge patch (RFC 7386), as `kubectl patch --type merge`. */
  mergePatch(path: string, patch: Record<string, unknown>): Promise<KubeObject> {
    return this.request('PATCH', path, patch, 'application/merge-patch+json');
  }

  /**
   * A server-side apply (`kubectl apply --server-side --force-conflicts`): creates or
   * updates the object at `path` (its own path, name included) with this field manager.
   */
  apply(path: string, object: KubeObject): Promise<KubeObject> {
    return this.request(
      'PATCH',
      `${path}?fieldManager=${encodeURIComponent(this.fieldManager)}&force=true`,
      object,
      'application/apply-patch+yaml',
    );
  }

  /** Deletes at once (`--grace-period 0`); resolves with false when it was not there. */
  async delete(path: string): Promise<boolean> {
    try {
      await this.request('DELETE', path, {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        gracePeriodSeconds: 0,
      });
      return true;
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404) return false;
      throw e;
    }
  }

  /**
   * Follows a collection from `resourceVersion` on (bookmarks asked for); `onEvent` gets
   * every event, `onEnd` the reason the API ended the stream (the caller resumes).
   */
  watch(
    collectionPath: string,
    resourceVersion: string,
    onEvent: (ev: KubeWatchEvent) => void,
    onEnd: (err: Error | undefined) => void,
  ): KubeWatch {
    const url = new URL(
      `${this.credentials.server}${collectionPath}?watch=1&allowWatchBookmarks=true&resourceVersion=${encodeURIComponent(resourceVersion)}`,
    );
    let closed = false;
    const req = https.request(
      url,
      {
        method: 'GET',
        agent: false,
        ...(this.credentials.ca === undefined ? {} : { ca: this.credentials.ca }),
        ...(this.credentials.cert === undefined ? {} : { cert: this.credentials.cert }),
        ...(this.credentials.key === undefined ? {} : { key: this.credentials.key }),
        rejectUnauthorized: this.credentials.insecure !== true,
        headers: {
          accept: 'application/json',
          ...(this.credentials.token === undefined
            ? {}
            : { authorization: `Bearer ${this.credentials.token}` }),
        },
      },
      (res) => {
        if ((res.statusCode ?? 0) >= 300) {
          res.resume();
          if (!closed) onEnd(new KubeApiError(res.statusCode ?? 0, '', `watch ${collectionPath}`));
          return;
        }
        let buf = '';
        res.on('data', (d: Buffer) => {
          buf += d.toString('utf8');
          for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line === '' || closed) continue;
            onEvent(JSON.parse(line) as KubeWatchEvent);
          }
        });
        res.on('end', () => {
          if (!closed) onEnd(undefined);
        });
        res.on('error', (e) => {
          if (!closed) onEnd(e);
        });
      },
    );
    req.on('error', (e) => {
      if (!closed) onEnd(e);
    });
    req.end();
    return {
      close: () => {
        closed = true;
        req.destroy();
      },
    };
  }

  close(): void {
    this.agent.destroy();
  }
}

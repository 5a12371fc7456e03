/**
 * The CNI request server: the node agent's end of the compiled plugin
 * (cni/plugin/tortie.c). The plugin is a few hundred lines of C that hands the runtime's
 * request over a unix socket and prints the answer; everything a CNI call does — the
 * validation and error codes of ./run.ts, IPAM, plumbing, the endpoint record and the
 * wait for it to be programmed — runs here, in a process that is already started, has
 * its modules loaded and keeps its datastore connection open. That is what makes an ADD
 * cost its datastore round trips and its netlink calls, not a Node start-up.
 *
 * Wire format (one request per connection):
 *   request  = ("KEY=VALUE" NUL)* NUL stdin-bytes EOF      the CNI_* environment, then stdin
 *   response = exit-code LF stdout-bytes EOF               what the plugin prints and returns
 *
 * Calls for one container are serialised (a DEL the runtime sends while its ADD is still
 * running, after it killed the plugin, waits for that ADD), calls for different
 * containers run concurrently. Backends (datastore clients) are opened once per distinct
 * datastore a config names and kept until the server closes.
 */
import { chmod, mkdir, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  DatastoreUnavailable,
  EndpointNotProgrammed,
  type AssignRequest,
  type CniBackend,
  type EndpointPrograms,
} from './backend.js';
import type { NetworkConfig } from './config.js';
import { etcdDeps, runCni, type CniDeps, type CniOutcome } from './run.js';
import { mark, traced } from './trace.js';

/** The agent's own answer to "is this endpoint programmed", instead of polling the store. */
export type LocalProgrammedWait = (request: {
  namespace: string;
  name: string;
  revision: string | undefined;
  timeoutMs: number;
}) => Promise<void>;

export interface CniServerOptions {
  socketPath: string;
  /**
   * The node this server's agent programs, and how to wait for it: ADDs for that node
   * wait on the agent itself; others (and a server without an agent) on the store.
   */
  local?: {
    node: string;
    wait: LocalProgrammedWait;
    /**
     * The agent's endpoint programs (BPF dataplane), when it has them and its node
     * namespace is `hostNetns`: ADD attaches them before the veth is up instead of the
     * guard rules (./guard.ts).
     */
    programs?: (hostNetns: string | undefined) => EndpointPrograms | undefined;
  };
  /** Told about a request that could not be read or answered (not about CNI errors). */
  onProblem?: (message: string) => void;
  /** The store; default the real one (etcd or Kubernetes, as the config says). */
  deps?: CniDeps;
}

/** TORTIE_CNI_TIMING=1: log each call's phases (./trace.ts). */
const TIMING = process.env.TORTIE_CNI_TIMING === '1';

/** A request larger than this is refused (a network config is a few kB). */
const MAX_REQUEST_BYTES = 4 << 20;

export class CniServer {
  private readonly backends = new Map<string, Promise<CniBackend>>();
  /** Per datastore: the IPAM write in progress, the next one queued behind it. */
  private readonly ipamQueues = new Map<string, Promise<unknown>>();
  private readonly perContainer = new Map<string, Promise<unknown>>();
  /** Per datastore: the releases gathered for the next turn in its IPAM queue. */
  private readonly releaseBatches = new Map<
    string,
    { handles: string[]; done: Promise<Released[]> }
  >();
  /** Per datastore and node: the assignments gathered for the next turn in its IPAM queue. */
  private readonly assignBatches = new Map<
    string,
    { requests: AssignRequest[]; done: Promise<Assigned[]> }
  >();
  private readonly sockets = new Set<Socket>();
  private closed = false;

  private constructor(
    private readonly server: Server,
    private readonly options: CniServerOptions,
  ) {}

  /**
   * Listens on `socketPath` (mode 0600, its directory created). A socket file left by a
   * dead agent is replaced; one a live server answers on is not (two agents on one node
   * is a mistake to name, not to paper over).
   */
  static async listen(options: CniServerOptions): Promise<CniServer> {
    const path = options.socketPath;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    if (await answers(path)) {
      throw new Error(`another process already serves CNI requests on ${path}`);
    }
    await rm(path, { force: true });
    // Half-open: the plugin ends its side after the request and still reads the answer.
    const server = createServer({ allowHalfOpen: true });
    const cni = new CniServer(server, options);
    server.on('connection', (socket) => cni.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(path, 0o600);
    return cni;
  }

  /** Resolves once no call is in progress (those of a killed plugin included). */
  async idle(): Promise<void> {
    while (this.perContainer.size > 0) await Promise.allSettled([...this.perContainer.values()]);
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  /** Stops accepting, lets calls in progress answer, closes the backends. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await Promise.allSettled([...this.perContainer.values()]);
    for (const s of this.sockets) s.destroy();
    const backends = [...this.backends.values()];
    this.backends.clear();
    await Promise.allSettled(backends.map(async (b) => (await b).close()));
    await rm(this.options.socketPath, { force: true });
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    const chunks: Buffer[] = [];
    let size = 0;
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        this.options.onProblem?.(`CNI request over ${MAX_REQUEST_BYTES} bytes refused`);
        socket.destroy();
        return;
      }
      chunks.push(chunk);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('end', () => {
      void this.answer(Buffer.concat(chunks)).then(
        (outcome) => socket.end(`${outcome.exitCode}\n${outcome.stdout}`),
        (err: unknown) => {
          this.options.onProblem?.(`CNI request failed: ${(err as Error).message}`);
          socket.destroy();
        },
      );
    });
  }

  private async answer(request: Buffer): Promise<CniOutcome> {
    const { env, stdin } = decodeRequest(request);
    const key = env.CNI_CONTAINERID ?? '';
    const run = async () => {
      const call = () => runCni({ env, stdin }, { openBackend: (c) => this.backendFor(c) });
      if (!TIMING) return call();
      const started = performance.now();
      const { result: outcome, phases } = await traced(call);
      this.options.onProblem?.(
        `CNI ${outcome.command ?? '?'} ${key}: exit ${outcome.exitCode} after ${(performance.now() - started).toFixed(1)} ms (${phases})`,
      );
      return outcome;
    };
    if (key === '') return run();
    const previous = this.perContainer.get(key) ?? Promise.resolve();
    const mine = previous.catch(() => undefined).then(run);
    this.perContainer.set(key, mine);
    try {
      return await mine;
    } finally {
      if (this.perContainer.get(key) === mine) this.perContainer.delete(key);
    }
  }

  /** One open backend per datastore; the commands' close() leaves it open. */
  private async backendFor(config: NetworkConfig): Promise<CniBackend> {
    const key = JSON.stringify([config.datastoreType, config.datastore, config.kubernetes]);
    let opening = this.backends.get(key);
    if (opening === undefined) {
      // etcd3's gRPC client (its load is paid once by the agent, its calls are the cheaper:
      // the JSON gateway is one more hop inside etcd); TORTIE_CNI_ETCD_CLIENT=gateway for
      // the JSON-gateway one.
      opening = (
        this.options.deps ??
        etcdDeps(process.env.TORTIE_CNI_ETCD_CLIENT === 'gateway' ? 'gateway' : 'grpc')
      ).openBackend(config);
      this.backends.set(key, opening);
      // A store that could not be opened is tried again by the next request.
      opening.catch(() => this.backends.delete(key));
    }
    const backend = await opening;
    const local = this.options.local;
    // This node's ADDs and DELs all come through here: taking their IPAM writes one at a
    // time replaces compare-and-swap conflicts on the node's block (and their backoff)
    // with a queue. Other writers (other nodes, `ipam gc`) still meet the CAS.
    const serialize = <T>(write: () => Promise<T>): Promise<T> => {
      const previous = this.ipamQueues.get(key) ?? Promise.resolve();
      const mine = previous
        .catch(() => undefined)
        .then(() => {
          mark('ipam-turn');
          return write();
        });
      this.ipamQueues.set(key, mine);
      void mine
        .finally(() => {
          if (this.ipamQueues.get(key) === mine) this.ipamQueues.delete(key);
        })
        .catch(() => undefined);
      return mine;
    };
    // DELs arriving together: their releases would each wait for the one before to commit.
    // Those queued behind another IPAM write are gathered and go as one transaction when
    // their turn comes (a release finding the queue idle goes alone, at once).
    const max = backend.releaseByHandles === undefined ? 1 : (backend.releaseBatch ?? 1);
    const release = async (handle: string): Promise<string[]> => {
      let batch = this.releaseBatches.get(key);
      if (batch === undefined || batch.handles.length >= max) {
        const handles: string[] = [];
        const mine = {
          handles,
          done: serialize(() => {
            // From now on this batch takes no more handles: later ones start the next.
            if (this.releaseBatches.get(key) === mine) this.releaseBatches.delete(key);
            return releaseAll(backend, handles);
          }),
        };
        this.releaseBatches.set(key, mine);
        batch = mine;
      }
      const at = batch.handles.push(handle) - 1;
      const got = (await batch.done)[at]!;
      if (got instanceof Error) throw got;
      return got;
    };
    // ADDs arriving together, likewise: the assignments queued behind another IPAM write
    // are made in one transaction from the node's blocks when their turn comes; what that
    // cannot serve (a new block, borrowing, a handle with a record) goes one at a time.
    const assignMax = backend.autoAssignMany === undefined ? 1 : (backend.assignBatch ?? 1);
    const assign = async (request: AssignRequest): Promise<{ ip: string }> => {
      // One open batch per node: a batch's assignments are all of one node.
      const batchKey = `${key}\0${request.node}`;
      let batch = this.assignBatches.get(batchKey);
      if (
        batch === undefined ||
        batch.requests.length >= assignMax ||
        batch.requests.some((r) => r.handle === request.handle)
      ) {
        const requests: AssignRequest[] = [];
        const mine = {
          requests,
          done: serialize(() => {
            if (this.assignBatches.get(batchKey) === mine) this.assignBatches.delete(batchKey);
            return assignAll(backend, requests);
          }),
        };
        this.assignBatches.set(batchKey, mine);
        batch = mine;
      }
      const at = batch.requests.push(request) - 1;
      const got = (await batch.done)[at]!;
      if (got instanceof Error) throw got;
      return got;
    };
    // A store that did not answer is opened afresh by the next call: a kept etcd3 client
    // would answer "every endpoint failed recently" instead of naming the cause (a refused
    // TLS handshake names the certificate fields).
    const forget = () => {
      if (this.backends.get(key) !== opening) return;
      this.backends.delete(key);
      void backend.close().catch(() => undefined);
    };
    const mine = local !== undefined && local.node === config.nodename ? local : undefined;
    return new SharedBackend(
      backend,
      mine?.wait,
      mine?.programs,
      serialize,
      assign,
      release,
      () => !this.ipamQueues.has(key),
      forget,
    );
  }
}

/** What of the node agent (src/agent) the server needs: its node and its own wait. */
export interface ProgrammingAgent {
  readonly config: { readonly nodeName: string };
  waitForEndpoint: LocalProgrammedWait;
  /** Its endpoint programs for a veth in `hostNetns` (BPF dataplane only). */
  endpointPrograms?(hostNetns: string | undefined): EndpointPrograms | undefined;
}

/**
 * The agent's CNI server: `tortie node run` and the lab's agents start one beside their
 * agent, and stop the agent first (its waits then fail closed, 11) and this second.
 */
export function serveForAgent(
  agent: ProgrammingAgent,
  socketPath: string,
  warn: (message: string) => void,
): Promise<CniServer> {
  return CniServer.listen({
    socketPath,
    local: {
      node: agent.config.nodeName,
      wait: (r) => agent.waitForEndpoint(r),
      programs: (hostNetns) => agent.endpointPrograms?.(hostNetns),
    },
    onProblem: warn,
  });
}

/** A kept backend as one call sees it: close() is a no-op, the wait may be the agent's own. */
class SharedBackend implements CniBackend {
  readonly description: string;
  readonly readPod: CniBackend['readPod'];

  constructor(
    private readonly inner: CniBackend,
    private readonly localWait: LocalProgrammedWait | undefined,
    private readonly localPrograms:
      ((hostNetns: string | undefined) => EndpointPrograms | undefined) | undefined,
    private readonly serialize: <T>(write: () => Promise<T>) => Promise<T>,
    /** autoAssign through the queue, gathered with others queued (CniServer). */
    private readonly assign: (request: AssignRequest) => Promise<{ ip: string }>,
    /** releaseByHandle through the queue, gathered with others queued (CniServer). */
    private readonly release: (handle: string) => Promise<string[]>,
    /** No IPAM write is in progress or queued. */
    private readonly queueIdle: () => boolean,
    private readonly forget: () => void,
  ) {
    this.description = inner.description;
    const readPod = inner.readPod?.bind(inner);
    this.readPod = readPod === undefined ? undefined : (ns, name) => this.watch(readPod(ns, name));
  }

  /** The call's result; a store that did not answer is dropped for the next call. */
  private watch<T>(call: Promise<T>): Promise<T> {
    return call.catch((err: unknown) => {
      if (err instanceof DatastoreUnavailable) this.forget();
      throw err;
    });
  }

  ping() {
    return this.watch(this.inner.ping());
  }
  listPools() {
    return this.watch(this.inner.listPools());
  }
  nodeLabels(node: string) {
    return this.watch(this.inner.nodeLabels(node));
  }
  getEndpoint(namespace: string, name: string) {
    return this.watch(this.inner.getEndpoint(namespace, name));
  }
  putEndpoint(
    endpoint: Parameters<CniBackend['putEndpoint']>[0],
    options?: { seenAbsent?: boolean },
  ) {
    return this.watch(this.inner.putEndpoint(endpoint, options));
  }
  waitForProgrammed(request: Parameters<CniBackend['waitForProgrammed']>[0]) {
    if (this.localWait === undefined) return this.inner.waitForProgrammed(request);
    // Whatever stops the agent's wait, the pod must not start: ADD fails closed (11).
    return this.localWait(request).catch((err: unknown) => {
      throw new EndpointNotProgrammed((err as Error).message, { cause: err });
    });
  }
  endpointPrograms(hostNetns: string | undefined): EndpointPrograms | undefined {
    return this.localPrograms?.(hostNetns);
  }
  deleteEndpoint(namespace: string, name: string) {
    return this.watch(this.inner.deleteEndpoint(namespace, name));
  }
  listEndpoints() {
    return this.watch(this.inner.listEndpoints());
  }
  ipamSettings() {
    if (this.inner.ipamSettings === undefined)
      return Promise.reject(new Error(`${this.description} reads no IPAM settings`));
    return this.watch(this.inner.ipamSettings());
  }
  autoAssign(request: Parameters<CniBackend['autoAssign']>[0]) {
    return this.watch(this.assign(request));
  }
  autoAssignWhenReady(
    first: { handle: string; node: string },
    later: Promise<Parameters<CniBackend['autoAssign']>[0] | undefined>,
  ) {
    const inner = this.inner;
    // The overlap is worth taking only with the queue idle: a call queued behind others
    // would otherwise hold the queue while its request is still being worked out (a slow
    // read would stall every ADD of the node). Then it queues once its request is known.
    if (!this.queueIdle())
      return later.then((r) => (r === undefined ? undefined : this.autoAssign(r)));
    return this.watch(
      this.serialize(() =>
        inner.autoAssignWhenReady
          ? inner.autoAssignWhenReady(first, later)
          : later.then((r) => (r === undefined ? undefined : inner.autoAssign(r))),
      ),
    );
  }
  assignIp(request: Parameters<CniBackend['assignIp']>[0]) {
    return this.watch(this.serialize(() => this.inner.assignIp(request)));
  }
  releaseByHandle(handle: string) {
    return this.watch(this.release(handle));
  }
  addressesOf(handle: string) {
    return this.watch(this.inner.addressesOf(handle));
  }
  allocations(prefix: string) {
    return this.watch(this.inner.allocations(prefix));
  }
  async close(): Promise<void> {
    // kept open for the next call
  }
}

/** An assignment's address, or why it failed. */
type Assigned = { ip: string } | Error;

/**
 * Makes the assignments in one transaction when the backend can, then one at a time those
 * it left (and all of them if the batch was refused for another reason than an
 * unreachable store), so that each keeps autoAssign's answers and errors.
 */
async function assignAll(
  backend: CniBackend,
  requests: readonly AssignRequest[],
): Promise<Assigned[]> {
  const one = (r: AssignRequest): Promise<Assigned> =>
    backend.autoAssign(r).catch((err: unknown) => toError(err));
  let batched: ({ ip: string } | undefined)[] = requests.map(() => undefined);
  if (requests.length > 1 && backend.autoAssignMany !== undefined) {
    try {
      batched = await backend.autoAssignMany(requests);
    } catch (err) {
      if (err instanceof DatastoreUnavailable) return requests.map(() => err);
    }
  }
  const out: Assigned[] = [];
  for (const [i, r] of requests.entries()) out.push(batched[i] ?? (await one(r)));
  return out;
}

/** A handle's released addresses, or why its release failed. */
type Released = string[] | Error;

/**
 * Releases the handles in one transaction when the backend can; a batch refused for
 * another reason than an unreachable store is retried one handle at a time, so that one
 * handle's problem is its DEL's alone.
 */
async function releaseAll(backend: CniBackend, handles: readonly string[]): Promise<Released[]> {
  const one = (h: string): Promise<Released> =>
    backend.releaseByHandle(h).catch((err: unknown) => toError(err));
  if (handles.length === 1 || backend.releaseByHandles === undefined)
    return Promise.all(handles.map(one));
  try {
    return await backend.releaseByHandles(handles);
  } catch (err) {
    if (err instanceof DatastoreUnavailable) return handles.map(() => err);
    const out: Released[] = [];
    for (const h of handles) out.push(await one(h));
    return out;
  }
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The request's environment (NUL-terminated KEY=VALUE strings up to an empty one) and stdin. */
export function decodeRequest(request: Buffer): { env: NodeJS.ProcessEnv; stdin: string } {
  const env: NodeJS.ProcessEnv = {};
  let at = 0;
  for (;;) {
    const end = request.indexOf(0, at);
    if (end < 0) throw new Error('CNI request ends inside its environment');
    if (end === at) {
      at = end + 1;
      break;
    }
    const entry = request.toString('utf8', at, end);
    const eq = entry.indexOf('=');
    if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    at = end + 1;
  }
  return { env, stdin: request.toString('utf8', at) };
}

/** Encodes a request as the compiled plugin does (for tests and tools that speak it). */
export function encodeRequest(env: Record<string, string>, stdin: string): Buffer {
  const parts = Object.entries(env).map(([k, v]) => Buffer.from(`${k}=${v}\0`));
  return Buffer.concat([...parts, Buffer.from([0]), Buffer.from(stdin)]);
}

/** Whether something accepts connections on the socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

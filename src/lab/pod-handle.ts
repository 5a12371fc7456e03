/**
 * The parent side of a lab pod's process (src/lab/pod-process.ts): starts it inside the
 * pod's network namespace and turns its JSON-lines protocol into promises.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { packagePath } from '../util/package-root.js';
import type { PodRequest, PodResponse } from './pod-process.js';

type Pending = { resolve: (r: PodResponse) => void };

// Omit over a union must distribute, or the op-specific fields are lost.
type RequestBody = PodRequest extends infer R
  ? R extends PodRequest
    ? Omit<R, 'id'>
    : never
  : never;

export class PodProcess {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private exited = false;

  private constructor(child: ChildProcess) {
    this.child = child;
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let r: PodResponse;
      try {
        r = JSON.parse(line) as PodResponse;
      } catch {
        return;
      }
      const p = this.pending.get(r.id);
      if (p) {
        this.pending.delete(r.id);
        p.resolve(r);
      }
    });
    child.on('exit', () => {
      this.exited = true;
      for (const [id, p] of this.pending) p.resolve({ id, ok: false, error: 'pod process exited' });
      this.pending.clear();
    });
  }

  /** Start the pod process in `netnsPath`, serving e.g. "tcp:80,udp:80"; resolves once it listens. */
  static async start(
    netnsPath: string,
    servers: string,
    opts: { persist?: boolean } = {},
  ): Promise<PodProcess> {
    const script = packagePath('dist', 'src', 'lab', 'pod-process.js');
    if (!existsSync(script)) {
      throw new Error(`${script} is missing: run "npm run build" first`);
    }
    const args = [`--net=${netnsPath}`, process.execPath, script, servers];
    if (opts.persist) args.push('--persist');
    const child = spawn('nsenter', args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: opts.persist === true,
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const pod = new PodProcess(child);
    const ready = await new Promise<PodResponse>((resolve) => {
      pod.pending.set(0, { resolve });
      child.on('exit', (code) =>
        resolve({ id: 0, ok: false, error: `exited with ${code}: ${stderr.trim()}` }),
      );
    });
    if (!ready.ok) {
      child.kill('SIGKILL');
      throw new Error(`pod process in ${netnsPath} (${servers}) did not start: ${ready.error}`);
    }
    return pod;
  }

  request(body: RequestBody): Promise<PodResponse> {
    if (this.exited) return Promise.resolve({ id: -1, ok: false, error: 'pod process exited' });
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      this.child.stdin!.write(JSON.stringify({ ...body, id }) + '\n');
    });
  }

  /** true when a request/response exchange with host:port succeeded within the timeout. */
  async probe(
    protocol: 'tcp' | 'udp',
    host: string,
    port: number,
    timeoutMs = 400,
  ): Promise<boolean> {
    const r = await this.request({ op: 'probe', protocol, host, port, timeoutMs });
    return r.ok;
  }

  /**
   * Let a process started with `persist` outlive us: close our ends of its pipes. It is
   * then removed with its namespace (destroyNodeLab kills what runs there).
   */
  detach(): void {
    this.child.stdin!.end();
    this.child.stdout!.destroy();
    this.child.stderr!.destroy();
    this.child.unref();
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await done;
    clearTimeout(timer);
  }
}

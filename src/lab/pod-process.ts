/**
 * The process that lives inside a lab pod's network namespace (started with
 * `nsenter --net=<pod netns> node pod-process.js <servers>`). It serves TCP and UDP
 * echo on the requested ports and, on request from its parent over stdin/stdout (JSON
 * lines), opens connections from the pod: one-shot probes and long-lived TCP streams.
 *
 * Being a plain process in the pod's namespace, every packet it sends really leaves
 * the pod through its veth, so probes exercise the dataplane exactly as a workload would.
 */
import { createServer, connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { createInterface } from 'node:readline';

export type ServerSpec = { protocol: 'tcp' | 'udp'; port: number };

export type PodRequest =
  | {
      id: number;
      op: 'probe';
      protocol: 'tcp' | 'udp';
      host: string;
      port: number;
      timeoutMs: number;
    }
  | { id: number; op: 'open'; host: string; port: number; timeoutMs: number }
  | { id: number; op: 'send'; conn: number; data: string; timeoutMs: number }
  | { id: number; op: 'close'; conn: number };

export type PodResponse =
  | { id: number; ok: true; ms?: number; conn?: number; echo?: string }
  | { id: number; ok: false; error: string };

export function parseServers(spec: string): ServerSpec[] {
  if (spec.trim() === '') return [];
  return spec.split(',').map((item) => {
    const m = /^(tcp|udp):(\d{1,5})$/.exec(item.trim());
    const port = m ? Number(m[2]) : NaN;
    if (!m || port < 1 || port > 65535) {
      throw new Error(`server "${item}": expected tcp:<port> or udp:<port> with a port 1-65535`);
    }
    return { protocol: m[1] as 'tcp' | 'udp', port };
  });
}

function reply(r: PodResponse): void {
  process.stdout.write(JSON.stringify(r) + '\n');
}

async function serve(servers: ServerSpec[]): Promise<void> {
  await Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolve, reject) => {
          if (s.protocol === 'tcp') {
            const srv = createServer((sock) => {
              sock.on('error', () => sock.destroy());
              sock.on('data', (d) => sock.write(d));
            });
            srv.on('error', reject);
            srv.listen(s.port, '0.0.0.0', () => resolve());
          } else {
            const sock = createSocket('udp4');
            sock.on('error', reject);
            sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
            sock.bind(s.port, '0.0.0.0', () => resolve());
          }
        }),
    ),
  );
}

function probeTcp(host: string, port: number, timeoutMs: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    sock.on('error', (e) => {
      clearTimeout(timer);
      sock.destroy();
      reject(e);
    });
    // A connection counts only once data has gone both ways through the dataplane.
    sock.on('connect', () => sock.write('probe'));
    sock.on('data', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    });
  });
}

function probeUdp(host: string, port: number, timeoutMs: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const sock = createSocket('udp4');
    const timer = setTimeout(() => {
      sock.close();
      reject(new Error('timeout'));
    }, timeoutMs);
    sock.on('error', (e) => {
      clearTimeout(timer);
      sock.close();
      reject(e);
    });
    sock.on('message', () => {
      clearTimeout(timer);
      sock.close();
      resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    });
    sock.send('probe', port, host);
  });
}

const conns = new Map<number, Socket>();
let nextConn = 1;

function openTcp(host: string, port: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('timeout'));
    }, timeoutMs);
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('connect', () => {
      clearTimeout(timer);
      sock.removeAllListeners('error');
      sock.on('error', () => undefined);
      const id = nextConn++;
      conns.set(id, sock);
      resolve(id);
    });
  });
}

function sendTcp(conn: number, data: string, timeoutMs: number): Promise<string> {
  const sock = conns.get(conn);
  if (!sock) return Promise.reject(new Error(`no connection ${conn}`));
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer): void => {
      got += d.toString();
      if (got.length >= data.length) {
        clearTimeout(timer);
        sock.off('data', onData);
        resolve(got);
      }
    };
    const timer = setTimeout(() => {
      sock.off('data', onData);
      reject(new Error('timeout'));
    }, timeoutMs);
    sock.on('data', onData);
    sock.write(data);
  });
}

async function handle(req: PodRequest): Promise<PodResponse> {
  try {
    switch (req.op) {
      case 'probe': {
        const ms =
          req.protocol === 'tcp'
            ? await probeTcp(req.host, req.port, req.timeoutMs)
            : await probeUdp(req.host, req.port, req.timeoutMs);
        return { id: req.id, ok: true, ms };
      }
      case 'open':
        return { id: req.id, ok: true, conn: await openTcp(req.host, req.port, req.timeoutMs) };
      case 'send':
        return { id: req.id, ok: true, echo: await sendTcp(req.conn, req.data, req.timeoutMs) };
      case 'close':
        conns.get(req.conn)?.destroy();
        conns.delete(req.conn);
        return { id: req.id, ok: true };
    }
  } catch (e) {
    return { id: req.id, ok: false, error: (e as Error).message };
  }
}

async function main(): Promise<void> {
  const servers = parseServers(process.argv[2] ?? '');
  await serve(servers);
  reply({ id: 0, ok: true });
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let req: PodRequest;
    try {
      req = JSON.parse(line) as PodRequest;
    } catch {
      reply({ id: -1, ok: false, error: `bad request line: ${line.slice(0, 80)}` });
      return;
    }
    void handle(req).then(reply);
  });
  // The parent going away (stdin closed) ends the pod's process, unless it was started
  // to outlive its parent (a lab left up for the user to explore).
  const persist = process.argv[3] === '--persist';
  rl.on('close', () => {
    if (!persist) process.exit(0);
  });
}

if (process.argv[1] && /pod-process\.(js|ts)$/.test(process.argv[1])) {
  main().catch((e: Error) => {
    process.stderr.write(`pod-process: ${e.message}\n`);
    process.exit(1);
  });
}

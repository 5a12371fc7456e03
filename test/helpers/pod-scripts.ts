/**
 * Small programs run inside a lab namespace for e2e tests: a python3 or node script
 * started with `nsenter --net=<netns>`, its stdout read line by line.
 *
 * The attack and node-traffic tests each used to carry their own copy of this (a UDP or
 * ICMP recorder, a TCP line server, a recording TCP echo server, a one-shot sender); the
 * scripts stay in the tests (they are what each test is about), the process handling is
 * here once.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** How long a script may take to print its ready line; it only decides when to give up. */
const START_BOUND_MS = 60_000;

export interface NsScriptOptions {
  /** The line the script prints once it is ready (listening, connected…). */
  readonly ready: string;
  /** Every other line of its stdout, in order. */
  readonly onLine?: (line: string) => void;
  /** Keep stdin open (for scripts that read commands from it). */
  readonly stdin?: boolean;
}

/** Calls `fn` with each complete line of `child`'s stdout. */
export function onLines(child: ChildProcess, fn: (line: string) => void): void {
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      fn(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

/** A long-running script in a namespace, started and ready. */
export class NsScript {
  private stderr = '';
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number | null>;

  private constructor(readonly child: ChildProcess) {
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
  }

  /** What the script wrote to stderr so far. */
  get errors(): string {
    return this.stderr;
  }

  /**
   * Starts `argv` in `netns` and resolves once it printed `opts.ready`; rejects with its
   * stderr if it exits first.
   */
  static async start(netns: string, argv: string[], opts: NsScriptOptions): Promise<NsScript> {
    const child = spawn('nsenter', [`--net=${netns}`, '--', ...argv], {
      stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    });
    const s = new NsScript(child);
    const what = `${argv[0]} in ${netns}`;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${what}: no "${opts.ready}" within ${START_BOUND_MS} ms`)),
        START_BOUND_MS,
      );
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      void s.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited ${String(code)}: ${s.stderr}`));
      });
      onLines(child, (line) => {
        if (line === opts.ready) {
          clearTimeout(timer);
          resolve();
        } else opts.onLine?.(line);
      });
    });
    return s;
  }

  /** Writes one line to its stdin (started with `stdin: true`). */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/** A python3 script in `netns`, ready once it printed `opts.ready`. */
export function startPython(
  netns: string,
  script: string,
  opts: NsScriptOptions,
): Promise<NsScript> {
  return NsScript.start(netns, ['python3', '-c', script], opts);
}

/** A node script in `netns` (this Node binary), ready once it printed `opts.ready`. */
export function startNode(netns: string, script: string, opts: NsScriptOptions): Promise<NsScript> {
  return NsScript.start(netns, [process.execPath, '-e', script], opts);
}

/** Runs a python3 script in `netns` to its end; rejects with its stderr unless it exits 0. */
export function runPython(netns: string, script: string, args: string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', [`--net=${netns}`, '--', 'python3', '-c', script, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`python3 exited ${String(code)}: ${err}`)),
    );
  });
}

/**
 * A TCP server in `netns` on host:port (node) that echoes what it receives and records
 * the address of every peer it accepted.
 */
export async function recordingTcpServer(
  netns: string,
  port: number,
  host = '0.0.0.0',
): Promise<{ peers: string[]; server: NsScript }> {
  const script = [
    "const net = require('node:net');",
    'net.createServer((c) => {',
    "  process.stdout.write('peer ' + c.remoteAddress.replace(/^::ffff:/, '') + '\\n');",
    "  c.pipe(c); c.on('error', () => {});",
    `}).listen(${port}, '${host}', () => process.stdout.write('listening\\n'));`,
  ].join('\n');
  const peers: string[] = [];
  const server = await startNode(netns, script, {
    ready: 'listening',
    onLine: (line) => {
      if (line.startsWith('peer ')) peers.push(line.slice(5));
    },
  });
  return { peers, server };
}

/** A UDP server in `netns` on `port` that records "<source> <payload>" of every datagram. */
export async function udpRecorder(
  netns: string,
  port: number,
): Promise<{ received: string[]; server: NsScript }> {
  const script = [
    'import socket',
    's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
    `s.bind(("0.0.0.0", ${port}))`,
    'print("listening", flush=True)',
    'while True:',
    '    data, addr = s.recvfrom(65535)',
    '    print("from", addr[0], data.decode(errors="replace"), flush=True)',
  ].join('\n');
  const received: string[] = [];
  const server = await startPython(netns, script, {
    ready: 'listening',
    onLine: (line) => {
      if (line.startsWith('from ')) received.push(line.slice(5));
    },
  });
  return { received, server };
}

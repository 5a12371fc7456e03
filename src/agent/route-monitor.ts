/**
 * `ip monitor route` in the node's namespace, as a stream of "a route changed" signals.
 * With BGP routing the agent reads BIRD's kernel routes back into the BPF route map;
 * polling alone left a new block's map entry up to a second behind the kernel (measured
 * by `tortie bench convergence`), so a change seen here makes the agent read at once.
 * The poll stays as the safety net (a monitor that died is started again).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { netnsTarget } from '../plumbing/netns.js';

export interface RouteMonitorOptions {
  /** The node's namespace (undefined: the agent's own). */
  readonly nodeNetns: string | undefined;
  /** Only lines that contain this (e.g. "proto bird") count. */
  readonly match: string;
  /** Called for each matching line (the caller coalesces). */
  readonly onChange: () => void;
  /** Called when the monitor could not run or exited; it is started again after 1 s. */
  readonly onProblem?: (message: string) => void;
}

export class RouteMonitor {
  private child: ChildProcess | undefined;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: RouteMonitorOptions) {}

  start(): void {
    if (this.stopped || this.child !== undefined) return;
    const target = netnsTarget(this.opts.nodeNetns, 'node network namespace');
    const [file, args] =
      target.kind === 'current'
        ? ['ip', ['monitor', 'route']]
        : target.kind === 'named'
          ? ['ip', ['-n', target.name, 'monitor', 'route']]
          : ['nsenter', [`--net=${target.path}`, '--', 'ip', 'monitor', 'route']];
    const child = spawn(file, args as string[], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-500)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes(this.opts.match)) this.opts.onChange();
    });
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.stopped) return;
      this.opts.onProblem?.(`ip monitor route ${why}${stderr ? `: ${stderr.trim()}` : ''}`);
      this.restartTimer = setTimeout(() => this.start(), 1000);
      this.restartTimer.unref();
    };
    child.on('error', (e) => gone(`could not run (${e.message})`));
    child.on('exit', (code, signal) => gone(`exited (${signal ?? code})`));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }
}

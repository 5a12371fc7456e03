/**
 * The runtime's side of the CNI protocol: run a plugin executable with the CNI_*
 * environment and a config on stdin, as containerd or podman do, and report how it ended
 * and how long it took. Used by the e2e tests, the benchmark and the lab.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';

export interface PluginCall {
  /** The plugin executable. */
  plugin: string;
  command: 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
  containerId?: string;
  netns?: string;
  ifName?: string;
  args?: string;
  /** CNI_PATH entries. */
  path?: string[];
  config: unknown;
  /** Run the plugin inside this network namespace (through nsenter). */
  inNetns?: string;
  /** Extra environment (merged over a minimal PATH). */
  env?: Record<string, string>;
  /** Killed (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
  /**
   * Called once the plugin is started, with a function that kills it (SIGKILL) if it is
   * still running and says whether it did — never a process that reused its pid.
   */
  onSpawn?: (kill: () => boolean) => void;
}

export interface PluginOutcome {
  /** null when killed by a signal. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in ms. */
  ms: number;
  /** stdout parsed as JSON, when it is JSON. */
  json?: unknown;
}

export function invokePlugin(call: PluginCall): Promise<PluginOutcome> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: call.command,
    ...(call.containerId === undefined ? {} : { CNI_CONTAINERID: call.containerId }),
    ...(call.netns === undefined ? {} : { CNI_NETNS: call.netns }),
    ...(call.ifName === undefined ? {} : { CNI_IFNAME: call.ifName }),
    ...(call.args === undefined ? {} : { CNI_ARGS: call.args }),
    CNI_PATH: (call.path ?? []).join(':'),
    ...call.env,
  };
  const [file, argv] =
    call.inNetns === undefined
      ? [call.plugin, []]
      : ['nsenter', [`--net=${call.inNetns}`, '--', call.plugin]];
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(file, argv, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    call.onSpawn?.(
      () => child.exitCode === null && child.signalCode === null && child.kill('SIGKILL'),
    );
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), call.timeoutMs ?? 60_000);
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run CNI plugin ${call.plugin}: ${err.message}`));
    });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      const out = Buffer.concat(stdout).toString('utf8');
      const outcome: PluginOutcome = {
        exitCode,
        signal,
        stdout: out,
        stderr: Buffer.concat(stderr).toString('utf8'),
        ms: performance.now() - started,
      };
      try {
        if (out.trim() !== '') outcome.json = JSON.parse(out);
      } catch {
        // not JSON: the caller sees stdout as is
      }
      resolve(outcome);
    });
    child.stdin.end(JSON.stringify(call.config));
  });
}

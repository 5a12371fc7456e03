/**
 * One node's BIRD: started inside the node's network namespace
 * (`nsenter --net=<netns> -- bird -c <conf> -s <ctl> -P <pid>`), configured by writing
 * its file atomically and `birdc configure` (BIRD keeps every session whose protocol
 * block did not change), read back with `birdc show protocols all`.
 *
 * Files live in a run directory and carry the node name, so nodes (and labs) side by
 * side never share one:
 *
 *   <runDir>/bird-<node>.conf   the rendered configuration
 *   <runDir>/bird-<node>.ctl    the control socket (birdc -s)
 *   <runDir>/bird-<node>.pid    the pid file
 *   <runDir>/bird-<node>.log    BIRD's log
 *
 * BIRD daemonizes: it outlives the agent (as the BPF dataplane does). A new agent adopts
 * a BIRD whose pid file names a live `bird` with this node's control socket, instead of
 * starting a second one, and reloads it once (a no-op when nothing changed).
 */
import { pidAlive, stopPid } from '../util/proc.js';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROLE_DESCRIPTION, sessionType, type ReflectionRole, type SessionType } from './render.js';

export const BIRD = '/usr/sbin/bird';
export const BIRDC = '/usr/sbin/birdc';

export interface BirdPaths {
  readonly conf: string;
  readonly ctl: string;
  readonly pid: string;
  readonly log: string;
}

export function birdPaths(runDir: string, node: string): BirdPaths {
  const base = join(runDir, `bird-${node}`);
  return { conf: `${base}.conf`, ctl: `${base}.ctl`, pid: `${base}.pid`, log: `${base}.log` };
}

/** A BGP session as `tortie node status` shows it (calicoctl's columns). */
export interface BgpSession {
  /** BIRD protocol name (Mesh_…, Global_…, Node_…). */
  readonly name: string;
  readonly type: SessionType;
  readonly peer: string;
  /** BIRD's protocol state: up, start, down, … */
  readonly state: string;
  readonly since: string;
  /**
   * BGP state (Established, Active, Connect, …) and the last error if any; for a route
   * reflection session, its role in parentheses ("Established (route reflector)").
   */
  readonly info: string;
  /** Route reflection role (from the protocol's description, which the renderer sets). */
  readonly role?: ReflectionRole;
}

const ROLES = new Map(
  Object.entries(ROLE_DESCRIPTION).map(([role, text]) => [text, role as ReflectionRole]),
);

/**
 * `birdc show protocols all` → the tortie BGP sessions (other protocols left out). Needs
 * `timeformat protocol iso long` (the renderer sets it): "since" is two words.
 */
export function parseProtocols(text: string): BgpSession[] {
  const out: BgpSession[] = [];
  let cur:
    | {
        name: string;
        type: SessionType;
        state: string;
        since: string;
        info: string;
        peer: string;
        role?: ReflectionRole;
      }
    | undefined;
  const flush = () => {
    if (cur !== undefined)
      out.push(
        cur.role === undefined
          ? { ...cur }
          : {
              ...cur,
              info: `${cur.info}${cur.info === '' ? '' : ' '}(${ROLE_DESCRIPTION[cur.role]})`,
            },
      );
    cur = undefined;
  };
  for (const raw of text.split('\n')) {
    // birdc -v prefixes codes ("1002-"); plain birdc does not.
    const line = raw.replace(/^\d{4}[- ]/, '');
    if (line.trim() === '') continue;
    if (!/^\s/.test(line)) {
      flush();
      const m =
        /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?|\S+)\s*(.*)$/.exec(
          line,
        );
      if (m === null || m[2] !== 'BGP') continue;
      const type = sessionType(m[1]!);
      if (type === undefined) continue;
      cur = {
        name: m[1]!,
        type,
        state: m[4]!,
        since: m[5]!,
        info: m[6]!.trim().replace(/\s+/g, ' '),
        peer: m[1]!.split('_').slice(1, 5).join('.'),
      };
      continue;
    }
    if (cur === undefined) continue;
    const na = /^\s+Neighbor address:\s+(\S+)/.exec(line);
    if (na !== null) cur.peer = na[1]!;
    const d = /^\s+Description:\s+(.*\S)\s*$/.exec(line);
    const role = d === null ? undefined : ROLES.get(d[1]!);
    if (role !== undefined) cur.role = role;
  }
  flush();
  return out;
}

export interface BirdOptions {
  readonly node: string;
  readonly runDir: string;
  /** The node's network namespace (a path); undefined: the caller's own. */
  readonly netns?: string | undefined;
  readonly bird?: string;
  readonly birdc?: string;
}

export type ApplyResult = 'started' | 'reconfigured' | 'unchanged';

function run(
  file: string,
  args: readonly string[],
  timeoutMs = 10_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, [...args], { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code =
        err === null
          ? 0
          : typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err?.message ?? '') });
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

export class Bird {
  readonly paths: BirdPaths;
  /** The text BIRD runs with (undefined: not known to this object yet). */
  private applied: string | undefined;

  constructor(readonly options: BirdOptions) {
    this.paths = birdPaths(options.runDir, options.node);
  }

  /** The live BIRD of this node (its pid file names a running bird with our socket). */
  pid(): number | undefined {
    let pid: number;
    try {
      pid = Number(readFileSync(this.paths.pid, 'utf8').trim());
    } catch {
      return undefined;
    }
    if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) return undefined;
    const args = cmdline(pid);
    return args.some((a) => a.endsWith('bird')) && args.includes(this.paths.ctl) ? pid : undefined;
  }

  /**
   * Makes BIRD run `text`: starts it (none alive), or writes the file and reloads it when
   * the text differs from what it runs (and once after adopting a running BIRD). A
   * configuration BIRD refuses throws; the running BIRD keeps its previous one.
   */
  async apply(text: string): Promise<ApplyResult> {
    mkdirSync(this.options.runDir, { recursive: true });
    const pid = this.pid();
    if (pid === undefined) {
      this.write(text);
      await this.start();
      this.applied = text;
      return 'started';
    }
    if (this.applied === text) return 'unchanged';
    this.write(text);
    const r = await this.birdc(['configure']);
    if (r.code !== 0 || !/Reconfigur/.test(r.stdout)) {
      this.applied = undefined;
      throw new Error(`birdc configure failed: ${(r.stdout + r.stderr).trim()}`);
    }
    this.applied = text;
    return 'reconfigured';
  }

  private write(text: string): void {
    const tmp = `${this.paths.conf}.tmp-${process.pid}`;
    writeFileSync(tmp, text);
    renameSync(tmp, this.paths.conf);
  }

  private async start(): Promise<void> {
    // A killed BIRD leaves its socket and pid file behind.
    rmSync(this.paths.ctl, { force: true });
    rmSync(this.paths.pid, { force: true });
    const bird = this.options.bird ?? BIRD;
    const args = ['-c', this.paths.conf, '-s', this.paths.ctl, '-P', this.paths.pid];
    const r =
      this.options.netns === undefined
        ? await run(bird, args)
        : await run('nsenter', [`--net=${this.options.netns}`, '--', bird, ...args]);
    if (r.code !== 0)
      throw new Error(
        `bird for ${this.options.node} did not start: ${(r.stderr || r.stdout).trim()}`,
      );
    // It daemonized after reading the configuration; wait for its socket to answer.
    const deadline = Date.now() + 5000;
    for (;;) {
      if (existsSync(this.paths.ctl) && this.pid() !== undefined) {
        const s = await this.birdc(['show', 'status'], 2000);
        if (s.code === 0) return;
      }
      if (Date.now() > deadline)
        throw new Error(
          `bird for ${this.options.node} started but its socket ${this.paths.ctl} does not answer`,
        );
      await sleep(50);
    }
  }

  birdc(
    args: readonly string[],
    timeoutMs = 5000,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return run(this.options.birdc ?? BIRDC, ['-s', this.paths.ctl, ...args], timeoutMs);
  }

  /** The BGP sessions (empty when BIRD does not run or does not answer). */
  async sessions(): Promise<BgpSession[]> {
    if (this.pid() === undefined) return [];
    const r = await this.birdc(['show', 'protocols', 'all'], 3000);
    return r.code === 0 ? parseProtocols(r.stdout) : [];
  }

  /** `birdc show route` (all tables), as text. */
  async showRoute(): Promise<string> {
    return (await this.birdc(['show', 'route'])).stdout;
  }

  /** Stops BIRD (SIGTERM, then SIGKILL) and removes its socket and pid file; keeps the rest. */
  async stop(graceMs = 3000): Promise<void> {
    await stopPid(this.pid(), 'SIGTERM', graceMs);
    this.applied = undefined;
    rmSync(this.paths.ctl, { force: true });
    rmSync(this.paths.pid, { force: true });
  }
}

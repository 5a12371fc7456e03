/**
 * `tortie bench pod-to-pod`: traffic between two pods on one node, for the bare kernel
 * (baseline), the BPF dataplane and the iptables dataplane on the same pods
 * (bench/lab.ts), at growing policy sizes with the allowing rule last and first.
 *
 * Tools (Debian packages), each pinned with taskset — client on CPU 0, servers on CPU 1:
 *  - request/response: `sockperf ping-pong --tcp --mps=max` (one 64-byte message in
 *    flight): rate = messages of the valid duration / its length; p50/p99 round trip;
 *  - stream: `iperf3 -c` (one TCP stream), received bits per second;
 *  - new connections: `wrk -H "Connection: close"` against bench/conn-server.c (accept,
 *    read, answer, close): every request is a new TCP connection. Before every run the
 *    TIME_WAIT sockets of the client and server pods are destroyed (`ss -K`) and the run
 *    waits for both counts to be 0, and the client pod reuses its own TIME_WAIT ports
 *    (net.ipv4.tcp_tw_reuse=1): otherwise the client's connect() ends up walking every
 *    even port of its range held in TIME_WAIT by the runs before, ~2 ms of kernel time
 *    per connect, and a run collapses to ~300 connections/s in any mode
 *    (docs/benchmarks.md, "New connections: the TIME_WAIT collapse").
 * Per cell: a warm-up (a short wrk and sockperf's own warm-up), then `runs` runs of each
 * tool; the median and the spread (max − min) are reported. Before a cell is measured in
 * bpf or iptables mode, a probe checks the policy is enforced: the same policy without
 * its allowing rule must block the client, the policy itself must let it through.
 *
 * Across nodes (bench/cross-lab.ts): client pod on node 0, server pod on node 1 of a
 * 2-node lab, one lab per mode built, measured and removed in turn — baseline (two node
 * namespaces on an underlay bridge, plain kernel routing), bpf and iptables (ClusterLab,
 * encap none, policy through the store) and bpf-ipip (ClusterLab, IPIP in BPF). Same
 * tools, same cells, same enforcement check; its own table and charts
 * (pod-to-pod-cross-*.svg) and `crossNodeCells` in the JSON.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packagePath } from '../src/util/package-root.js';
import { barChart } from './chart.js';
import {
  benchId,
  cpuFor,
  fmt,
  machine,
  NsDaemon,
  progressFor,
  runInNs,
  sleep,
  stat,
  writeJson,
  writeText,
  type Machine,
  type Stat,
} from './common.js';
import { BenchLab, CLIENT_IP, PORTS, SERVER_IP, type Mode, type Placement } from './lab.js';
import {
  podToPodGoals,
  podToPodRatios,
  podToPodSummary,
  type Goal,
  type Ratio,
} from './pod-to-pod-summary.js';
import {
  createCrossLab,
  crossBenchId,
  type CrossLab,
  type CrossMode,
  type PodPair,
} from './cross-lab.js';

export interface PodToPodOptions {
  rules: number[];
  placements: Placement[];
  modes: Mode[];
  runs: number;
  /** Seconds per measurement. */
  duration: number;
  /** Seconds of wrk before each run of a cell, not counted (default 1; 0: none). */
  warmup?: number;
  /** Rule counts across nodes (empty: the cross-node half is skipped). */
  crossRules: number[];
  crossModes: CrossMode[];
  json: boolean;
  /** Directory for the JSON results and SVG charts (undefined: none written). */
  out?: string;
  id?: string;
  /** Per-run id of the cross-node labs ("bx…"). */
  crossId?: string;
  /** Skip the same-node half (rules ignored). */
  crossOnly?: boolean;
}

export interface Cell {
  /** Same node: baseline, bpf, iptables; across nodes also bpf-ipip. */
  mode: Mode | CrossMode;
  /** The row of the cell; baseline has no policy (measured next to that row's cells). */
  rules: number;
  placement: Placement;
  /** bpf/iptables: what the enforcement check saw. */
  enforcement?: { allowedWithRule: boolean; blockedWithoutRule: boolean };
  /** ms to program the policy of this cell. */
  programMs?: number;
  rr: { rate: Stat; p50Us: Stat; p99Us: Stat };
  stream: { gbps: Stat };
  /** timeWaitCleared: TIME_WAIT sockets the client pod held before each run, destroyed. */
  conn: { rate: Stat; errors: number; timeWaitCleared?: number[] };
}

export interface PodToPodResult {
  benchmark: 'pod-to-pod';
  machine: Machine;
  topology: string;
  /** How the cross-node labs are built (or why there are no cross-node cells). */
  crossNode: string;
  options: Omit<PodToPodOptions, 'json' | 'out' | 'id' | 'crossId' | 'crossOnly'>;
  tools: Record<string, string>;
  /** Same node. */
  cells: Cell[];
  /** Client on node 0, server on node 1 (one lab per mode, see bench/cross-lab.ts). */
  crossNodeCells: Cell[];
  /** Per cross-node mode: its lab, and an error if it could not be measured. */
  crossNodeLabs: { mode: CrossMode; lab: string; seconds: number; error?: string }[];
  /** bpf/baseline per row, same node and across nodes (bench/pod-to-pod-summary.ts). */
  ratios: Ratio[];
  /** The goals of issue 15 on these figures: met, missed or not measured. */
  goals: Goal[];
  elapsedSeconds: number;
  files: string[];
}

export const DEFAULT_WARMUP_SECONDS = 1;

/** Compiles bench/conn-server.c once (cached by source mtime) and returns the binary. */
export function connServerBinary(): string {
  const src = packagePath('bench', 'conn-server.c');
  const bin = join(tmpdir(), `tortie-bench-conn-server-${Math.floor(statSync(src).mtimeMs)}`);
  if (!existsSync(bin)) execFileSync('cc', ['-O2', '-Wall', '-o', bin, src]);
  return bin;
}

interface Servers {
  stop(): Promise<void>;
}

async function startServers(lab: PodPair): Promise<Servers> {
  const cpu = cpuFor('server');
  const ns = lab.serverNetns;
  const daemons = [
    NsDaemon.start(
      ns,
      ['sockperf', 'server', '--tcp', '-i', lab.serverIp, '-p', String(PORTS.sockperf)],
      { cpu },
    ),
    NsDaemon.start(ns, ['iperf3', '-s', '-p', String(PORTS.iperf)], { cpu }),
    NsDaemon.start(ns, [connServerBinary(), String(PORTS.http)], { cpu }),
  ];
  await sleep(500);
  for (const d of daemons)
    if (!d.running) {
      await Promise.all(daemons.map((x) => x.stop()));
      throw new Error(`${d.name} did not start in the server pod: ${d.log}`);
    }
  return { stop: async () => void (await Promise.all(daemons.map((d) => d.stop()))) };
}

export function parseSockperf(out: string): { rate: number; p50Us: number; p99Us: number } {
  // eslint-disable-next-line no-control-regex
  const text = out.replace(/\x1b\[[0-9;]*m/g, '');
  const valid =
    /\[Valid Duration\] RunTime=([\d.]+) sec; SentMessages=\d+; ReceivedMessages=(\d+)/.exec(text);
  const pct = (p: string) => {
    const m = new RegExp(`percentile ${p.replace('.', '\\.')} =\\s*([\\d.]+)`).exec(text);
    return m ? Number(m[1]) : NaN;
  };
  if (!valid) throw new Error(`sockperf: no [Valid Duration] line in: ${text.slice(-400)}`);
  return { rate: Number(valid[2]) / Number(valid[1]), p50Us: pct('50.000'), p99Us: pct('99.000') };
}

export function parseWrk(out: string): { rate: number; errors: number } {
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  if (!m) throw new Error(`wrk: no Requests/sec in: ${out.slice(-400)}`);
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors =
    (se ? Number(se[1]) + Number(se[3]) + Number(se[4]) : 0) + (non2xx ? Number(non2xx[1]) : 0);
  return { rate: Number(m[1]), errors };
}

async function sockperf(lab: PodPair, seconds: number) {
  const { stdout, stderr } = await runInNs(
    lab.clientNetns,
    [
      'sockperf',
      'ping-pong',
      '--tcp',
      '-i',
      lab.serverIp,
      '-p',
      String(PORTS.sockperf),
      '-t',
      String(seconds),
      '--mps=max',
      '--full-rtt',
      '-m',
      '64',
    ],
    { cpu: cpuFor('client'), timeoutMs: (seconds + 20) * 1000 },
  );
  return parseSockperf(stdout + stderr);
}

async function iperf(lab: PodPair, seconds: number): Promise<number> {
  const { stdout } = await runInNs(
    lab.clientNetns,
    ['iperf3', '-c', lab.serverIp, '-p', String(PORTS.iperf), '-t', String(seconds), '-J'],
    { cpu: cpuFor('client'), timeoutMs: (seconds + 20) * 1000 },
  );
  const j = JSON.parse(stdout) as { end?: { sum_received?: { bits_per_second?: number } } };
  const bps = j.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3: no result in ${stdout.slice(-400)}`);
  return bps / 1e9;
}

/** TIME_WAIT sockets in a namespace. */
async function timeWaitCount(netns: string): Promise<number> {
  const { stdout } = await runInNs(netns, ['ss', '-tanH', 'state', 'time-wait']);
  return stdout.split('\n').filter((l) => l.trim() !== '').length;
}

/** How long the kernel keeps a socket in TIME_WAIT (TCP_TIMEWAIT_LEN), and some slack. */
const TIME_WAIT_MS = 65_000;

/**
 * Destroys the TIME_WAIT sockets of the client and server pods and waits until both
 * namespaces have none, so every new-connection run starts from the same state instead
 * of the ports the runs before left (see the file comment). `ss -K` needs
 * CONFIG_INET_DIAG_DESTROY; without it the wait is for the kernel to end them (60 s).
 * Returns the TIME_WAIT sockets found in the client pod.
 */
async function clearTimeWait(lab: PodPair, progress: (s: string) => void): Promise<number> {
  const namespaces = [lab.clientNetns, lab.serverNetns];
  const found = await Promise.all(namespaces.map(timeWaitCount));
  let refused = '';
  for (const [i, ns] of namespaces.entries())
    if (found[i]! > 0)
      await runInNs(ns, ['ss', '-K', 'state', 'time-wait']).catch(
        (e: unknown) => (refused = e instanceof Error ? `: ${e.message}` : ''),
      );
  const deadline = performance.now() + TIME_WAIT_MS;
  let warned = false;
  for (;;) {
    const left = await Promise.all(namespaces.map(timeWaitCount));
    if (left.every((n) => n === 0)) return found[0]!;
    if (performance.now() > deadline)
      throw new Error(
        `TIME_WAIT sockets still held after ${TIME_WAIT_MS / 1000} s (client pod ${left[0]}, server pod ${left[1]})`,
      );
    if (!warned)
      progress(
        `ss -K left ${left[0]} + ${left[1]} TIME_WAIT sockets (kernel without CONFIG_INET_DIAG_DESTROY?${refused}): waiting for them to expire`,
      );
    warned = true;
    await sleep(250); // the poll period of the wait above
  }
}

async function wrk(lab: PodPair, seconds: number) {
  const { stdout } = await runInNs(
    lab.clientNetns,
    [
      'wrk',
      '-t1',
      '-c4',
      `-d${seconds}s`,
      '-H',
      'Connection: close',
      `http://${lab.serverIp}:${PORTS.http}/`,
    ],
    { cpu: cpuFor('client'), timeoutMs: (seconds + 20) * 1000 },
  );
  return parseWrk(stdout);
}

interface Samples {
  rate: number[];
  p50: number[];
  p99: number[];
  gbps: number[];
  conn: number[];
  /** TIME_WAIT sockets the client pod held before each run (destroyed before it ran). */
  timeWait: number[];
  errors: number;
}

/** One run of each tool after a short warm-up; appends to `s`. */
async function measureOnce(
  lab: PodPair,
  opts: { duration: number; warmup?: number },
  s: Samples,
  progress: (s: string) => void,
): Promise<void> {
  const warmup = opts.warmup ?? DEFAULT_WARMUP_SECONDS;
  if (warmup > 0) await wrk(lab, warmup); // sockperf warms up on its own
  const rr = await sockperf(lab, opts.duration);
  s.rate.push(rr.rate);
  s.p50.push(rr.p50Us);
  s.p99.push(rr.p99Us);
  s.gbps.push(await iperf(lab, opts.duration));
  s.timeWait.push(await clearTimeWait(lab, progress));
  const w = await wrk(lab, opts.duration);
  s.conn.push(w.rate);
  s.errors += w.errors;
}

type Entry = { mode: Mode | CrossMode; rules: number; placement: Placement };

/** Per rule count: a baseline cell (no policy), then every policed mode, last/first. */
function planFor(
  rules: readonly number[],
  modes: readonly (Mode | CrossMode)[],
  placements: readonly Placement[],
): Entry[] {
  return rules.flatMap((r) =>
    modes.flatMap((mode): Entry[] =>
      mode === 'baseline'
        ? [{ mode, rules: r, placement: 'last' }]
        : (r <= 1 ? ['last' as Placement] : placements).map((placement) => ({
            mode,
            rules: r,
            placement,
          })),
    ),
  );
}

const noSamples = (): Samples => ({
  rate: [],
  p50: [],
  p99: [],
  gbps: [],
  conn: [],
  timeWait: [],
  errors: 0,
});

interface PolicedLab extends PodPair {
  set(
    mode: Mode | CrossMode,
    spec: { rules: number; placement: Placement; allow?: boolean },
  ): Promise<{ ms: number }>;
}

/**
 * Measures `plan` on one lab: runs interleaved (run 1 of every cell, then run 2, ...) so
 * a change of the machine's load (it is shared) spreads over every cell instead of one.
 * Before the first run of a policed cell, the same policy without its allowing rule must
 * block the client and the policy itself must let it through.
 */
async function measurePlan(
  lab: PolicedLab,
  plan: readonly Entry[],
  opts: { runs: number; duration: number; warmup?: number },
  progress: (s: string) => void,
  label: string,
): Promise<Cell[]> {
  const samples = plan.map(noSamples);
  const checks: Cell['enforcement'][] = plan.map(() => undefined);
  const programMs: (number | undefined)[] = plan.map(() => undefined);
  let servers: Servers | undefined;
  try {
    servers = await startServers(lab);
    // The client reuses its TIME_WAIT ports older than 1 s, so a long run cannot use up
    // the port range by itself (clearTimeWait clears what the runs before left).
    await runInNs(lab.clientNetns, ['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1']);
    if (!(await lab.probe(1000))) throw new Error(`${label}: the client cannot reach the server`);
    for (let run = 0; run < opts.runs; run++) {
      for (const [i, { mode, rules, placement }] of plan.entries()) {
        if (mode !== 'baseline' && run === 0) {
          await lab.set(mode, { rules, placement, allow: false });
          const blocked = !(await lab.probe(300));
          programMs[i] = (await lab.set(mode, { rules, placement })).ms;
          const allowed = await lab.probe(1000);
          checks[i] = { allowedWithRule: allowed, blockedWithoutRule: blocked };
          if (!blocked)
            progress(
              `WARNING: ${label} ${mode} ${rules} rules: the client was not blocked without the allowing rule`,
            );
        } else await lab.set(mode, { rules, placement });
        if (!(await lab.probe(1000)))
          throw new Error(
            `${label} ${mode} ${rules} rules (${placement}): the allowed client is blocked`,
          );
        progress(
          `${label} run ${run + 1}/${opts.runs}: ${mode} ${rules} rules, allowing rule ${placement}`,
        );
        await measureOnce(lab, opts, samples[i]!, progress);
      }
    }
  } finally {
    await servers?.stop().catch(() => undefined);
  }
  return plan.map((p, i) => {
    const s = samples[i]!;
    const check = checks[i];
    const ms = programMs[i];
    return {
      ...p,
      ...(check ? { enforcement: check } : {}),
      ...(ms === undefined ? {} : { programMs: ms }),
      rr: { rate: stat(s.rate), p50Us: stat(s.p50), p99Us: stat(s.p99) },
      stream: { gbps: stat(s.gbps) },
      conn: { rate: stat(s.conn), errors: s.errors, timeWaitCleared: s.timeWait },
    };
  });
}

async function measureSameNode(
  opts: PodToPodOptions,
  progress: (s: string) => void,
): Promise<Cell[]> {
  const lab = await BenchLab.create(opts.id ?? benchId());
  const pair: PolicedLab = {
    clientNetns: lab.client.netns,
    serverNetns: lab.server.netns,
    clientIp: CLIENT_IP,
    serverIp: SERVER_IP,
    probe: (ms) => lab.probe(ms),
    set: (mode, spec) => lab.set(mode as Mode, spec),
  };
  const modes = opts.modes;
  try {
    return await measurePlan(
      pair,
      planFor(opts.rules, modes, opts.placements),
      opts,
      progress,
      'same node',
    );
  } finally {
    await lab.destroy();
  }
}

/**
 * Across nodes: one lab per mode, built, measured (runs interleaved over its cells) and
 * removed before the next — a mode that fails is reported and the others still run.
 */
async function measureCrossNode(
  opts: PodToPodOptions,
  progress: (s: string) => void,
): Promise<{ cells: Cell[]; labs: PodToPodResult['crossNodeLabs'] }> {
  const id = opts.crossId ?? crossBenchId();
  const cells: Cell[] = [];
  const labs: PodToPodResult['crossNodeLabs'] = [];
  for (const mode of opts.crossModes) {
    const t0 = performance.now();
    let lab: CrossLab | undefined;
    let description: string = mode;
    try {
      progress(`across nodes: building the ${mode} lab`);
      lab = await createCrossLab(id, mode);
      description = lab.description;
      const l = lab;
      const policed: PolicedLab = {
        clientNetns: l.clientNetns,
        serverNetns: l.serverNetns,
        clientIp: l.clientIp,
        serverIp: l.serverIp,
        probe: (ms) => l.probe(ms),
        set: (_mode, spec) => l.set(spec),
      };
      cells.push(
        ...(await measurePlan(
          policed,
          planFor(opts.crossRules, [mode], opts.placements),
          opts,
          progress,
          'across nodes',
        )),
      );
      labs.push({ mode, lab: description, seconds: (performance.now() - t0) / 1000 });
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      progress(`WARNING: across nodes, ${mode}: ${error}`);
      labs.push({ mode, lab: description, seconds: (performance.now() - t0) / 1000, error });
    } finally {
      await lab?.destroy();
    }
  }
  return { cells, labs };
}

export async function measurePodToPod(
  opts: PodToPodOptions,
  progress: (s: string) => void,
): Promise<PodToPodResult> {
  const started = performance.now();
  const cells = opts.crossOnly ? [] : await measureSameNode(opts, progress);
  const cross =
    opts.crossRules.length > 0 && opts.crossModes.length > 0
      ? await measureCrossNode(opts, progress)
      : { cells: [], labs: [] };
  const result: PodToPodResult = {
    benchmark: 'pod-to-pod',
    machine: machine(),
    topology: opts.crossOnly
      ? 'cross-node'
      : cross.cells.length
        ? 'same-node and cross-node'
        : 'same-node',
    crossNode:
      cross.labs.length === 0
        ? 'not measured (no cross-node rule counts or modes asked for)'
        : 'client pod on node 0, server pod on node 1 of a 2-node lab, one lab per mode built and removed in turn (runs interleaved within a mode, not across modes): ' +
          cross.labs
            .map((l) => `${l.mode} = ${l.lab}${l.error ? ` (FAILED: ${l.error})` : ''}`)
            .join('; '),
    options: {
      rules: opts.crossOnly ? [] : opts.rules,
      placements: opts.placements,
      modes: opts.crossOnly ? [] : opts.modes,
      runs: opts.runs,
      duration: opts.duration,
      warmup: opts.warmup ?? DEFAULT_WARMUP_SECONDS,
      crossRules: opts.crossRules,
      crossModes: opts.crossModes,
    },
    tools: {
      requestResponse: 'sockperf ping-pong --tcp --mps=max --full-rtt -m 64',
      stream: 'iperf3 -c (1 stream)',
      newConnections:
        'wrk -t1 -c4 -H "Connection: close" against bench/conn-server.c; before each run the TIME_WAIT sockets of both pods are destroyed (ss -K) and counted to 0; client pod net.ipv4.tcp_tw_reuse=1',
      pinning: `taskset: client CPU ${cpuFor('client')}, servers CPU ${cpuFor('server')}`,
      order: 'runs interleaved over the cells of a lab (run 1 of every cell, then run 2, ...)',
    },
    cells,
    crossNodeCells: cross.cells,
    crossNodeLabs: cross.labs,
    ratios: [],
    goals: [],
    elapsedSeconds: (performance.now() - started) / 1000,
    files: [],
  };
  result.ratios = podToPodRatios(result);
  result.goals = podToPodGoals(result);
  if (opts.out) result.files = writePodToPodFiles(opts.out, result);
  return result;
}

/** Rows of the side-by-side tables: one per (rules, placement) that a policed mode has. */
function rowKeys(cells: readonly Cell[]): { rules: number; placement: Placement }[] {
  const seen = new Map<string, { rules: number; placement: Placement }>();
  for (const c of cells)
    seen.set(`${c.rules}/${c.placement}`, { rules: c.rules, placement: c.placement });
  return [...seen.values()].sort(
    (a, b) => a.rules - b.rules || a.placement.localeCompare(b.placement) * -1,
  );
}

const METRICS = [
  {
    key: 'rr',
    title: 'TCP request/response rate (per second, higher is better)',
    unit: '/s',
    get: (c: Cell) => c.rr.rate,
    digits: 0,
  },
  {
    key: 'p50',
    title: 'request/response round trip p50 (µs, lower is better)',
    unit: 'µs',
    get: (c: Cell) => c.rr.p50Us,
    digits: 1,
  },
  {
    key: 'p99',
    title: 'request/response round trip p99 (µs, lower is better)',
    unit: 'µs',
    get: (c: Cell) => c.rr.p99Us,
    digits: 1,
  },
  {
    key: 'stream',
    title: 'TCP stream throughput (Gbit/s, higher is better)',
    unit: 'Gbit/s',
    get: (c: Cell) => c.stream.gbps,
    digits: 2,
  },
  {
    key: 'conn',
    title: 'new TCP connections per second (higher is better)',
    unit: '/s',
    get: (c: Cell) => c.conn.rate,
    digits: 0,
  },
] as const;

function find(
  cells: readonly Cell[],
  mode: Mode | CrossMode,
  rules: number,
  placement: Placement,
): Cell | undefined {
  if (mode === 'baseline') return cells.find((c) => c.mode === 'baseline' && c.rules === rules);
  return cells.find((c) => c.mode === mode && c.rules === rules && c.placement === placement);
}

/** Columns of a table: baseline, bpf, iptables — across nodes bpf-ipip too when measured. */
function columns(cells: readonly Cell[], cross: boolean): (Mode | CrossMode)[] {
  return cross && cells.some((c) => c.mode === 'bpf-ipip')
    ? ['baseline', 'bpf', 'iptables', 'bpf-ipip']
    : ['baseline', 'bpf', 'iptables'];
}

function metricTables(cells: readonly Cell[], runs: number, cross: boolean): string[] {
  const out: string[] = [];
  const cols = columns(cells, cross);
  for (const m of METRICS) {
    out.push(`\n${m.title}; median of ${runs} runs ± spread (max − min)`);
    out.push(
      `${'rules'.padStart(7)} ${'allow'.padEnd(6)}${cols.map((c) => c.padStart(20)).join('')}${'bpf/base'.padStart(10)}${'bpf/ipt'.padStart(9)}${cols.includes('bpf-ipip') ? 'ipip/base'.padStart(10) : ''}`,
    );
    for (const k of rowKeys(cells)) {
      const vals = cols.map((mode) => {
        const c = find(cells, mode, k.rules, k.placement);
        return c ? m.get(c) : undefined;
      });
      const cell = (s: Stat | undefined) =>
        (s ? `${fmt(s.median, m.digits)} ±${fmt(s.spread, m.digits)}` : '-').padStart(20);
      const ratio = (a: Stat | undefined, b: Stat | undefined) =>
        a && b && b.median > 0 ? `${(a.median / b.median).toFixed(2)}x` : '-';
      out.push(
        `${String(k.rules).padStart(7)} ${k.placement.padEnd(6)}${vals.map(cell).join('')}${ratio(vals[1], vals[0]).padStart(10)}${ratio(vals[1], vals[2]).padStart(9)}${cols.includes('bpf-ipip') ? ratio(vals[3], vals[0]).padStart(10) : ''}`,
      );
    }
  }
  const enf = cells.filter((c) => c.enforcement);
  if (enf.length > 0) {
    const failed = enf.filter(
      (c) => !c.enforcement!.allowedWithRule || !c.enforcement!.blockedWithoutRule,
    );
    out.push(
      `\nenforcement check (without the allowing rule the client is blocked, with it it passes): ${
        failed.length === 0
          ? `every ${cols.filter((c) => c !== 'baseline').join('/')} cell`
          : 'FAILED for ' + failed.map((c) => `${c.mode} ${c.rules} ${c.placement}`).join(', ')
      }`,
    );
  }
  return out;
}

/** The tables: one per metric, baseline / bpf / iptables side by side (median ± spread). */
export function podToPodTables(r: PodToPodResult): string {
  const out: string[] = [];
  if (r.cells.length > 0) {
    out.push('== same node');
    out.push(...metricTables(r.cells, r.options.runs, false));
  }
  const crossCells = r.crossNodeCells ?? [];
  if (crossCells.length > 0) {
    out.push('\n== across nodes (client on node 0, server on node 1)');
    out.push(...metricTables(crossCells, r.options.runs, true));
  }
  const failed = (r.crossNodeLabs ?? []).filter((l) => l.error);
  for (const l of failed) out.push(`cross node ${l.mode}: FAILED: ${l.error}`);
  if (crossCells.length === 0) out.push(`cross node: ${r.crossNode}`);
  return out.join('\n');
}

export function writePodToPodFiles(dir: string, r: PodToPodResult): string[] {
  const files = [writeJson(dir, 'pod-to-pod', r)];
  const sets = [
    { cells: r.cells, cross: false, name: 'pod-to-pod', where: 'same node' },
    { cells: r.crossNodeCells ?? [], cross: true, name: 'pod-to-pod-cross', where: 'across nodes' },
  ];
  for (const set of sets) {
    if (set.cells.length === 0) continue;
    const keys = rowKeys(set.cells);
    const categories = keys.map((k) =>
      k.rules <= 1 ? String(k.rules) : `${k.rules} ${k.placement}`,
    );
    for (const m of METRICS) {
      const svg = barChart({
        title: `pod-to-pod, ${set.where}: ${m.title.split(' (')[0]}`,
        yLabel: m.unit,
        categories,
        series: columns(set.cells, set.cross)
          .filter((mode) => set.cells.some((c) => c.mode === mode))
          .map((mode) => ({
            name: mode,
            values: keys.map((k) => {
              const c = find(set.cells, mode, k.rules, k.placement);
              return c ? m.get(c).median : undefined;
            }),
          })),
      });
      files.push(writeText(dir, `${set.name}-${m.key}.svg`, svg));
    }
  }
  return files;
}

export async function runPodToPodBench(opts: PodToPodOptions): Promise<PodToPodResult> {
  const r = await measurePodToPod(opts, progressFor(opts.json));
  if (opts.json) console.log(JSON.stringify(r));
  else {
    const la = r.machine.loadAverage.map((x) => x.toFixed(2)).join(' ');
    console.log(
      `\npod-to-pod — kernel ${r.machine.kernel}, ${r.machine.cores} cores (${r.machine.cpuModel}), load ${la} (at the end); ${r.options.duration} s per measurement`,
    );
    console.log(podToPodTables(r));
    console.log(podToPodSummary(r));
    if (r.files.length) console.log(`\nwrote ${r.files.join(', ')}`);
    console.log(`(${r.elapsedSeconds.toFixed(0)} s)`);
  }
  return r;
}

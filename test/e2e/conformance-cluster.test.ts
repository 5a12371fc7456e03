/**
 * The project's NetworkPolicy conformance set (test/conformance/*.json) on a 2-node lab:
 * etcd, one agent per node (BPF dataplane), the real CNI plugin, IPIP between the nodes.
 * Pods go round-robin over the nodes, so about half of the probes cross nodes (through
 * the IPIP tunnel); probes run in parallel with short timeouts, right after the lab's
 * exact wait (every agent has programmed the store revision of the change), without
 * polling. SCTP probes are skipped (the pod process has no SCTP), never passed.
 *
 * Then the CLI: `tortie lab conformance --nodes 2 --cases FILE --json` from dist.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterConformanceLab } from '../../src/lab/cluster/conformance.js';
import { destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import {
  ConformanceSession,
  formatCase,
  formatSummary,
  loadCaseFiles,
  modelFingerprint,
  runCaseFiles,
  summarize,
  type CaseFile,
  type JsonReport,
  type RunOptions,
  type RunResult,
} from '../../src/lab/conformance/index.js';
import { newRunId } from '../helpers/netns.js';

// Cluster lab ids: 1-8 characters; this run's all start with "cf".
const runId = newRunId().slice(0, 5);
const ids = { main: `cf${runId}a`, other: `cf${runId}b`, cli: `cf${runId}c` };
// A cell that disagrees is probed again with a wait long enough for a loaded machine (an
// answer ends it at once): a slow answer is not a verdict.
const options: RunOptions = { timeoutMs: 500, retryTimeoutMs: 10_000 };

const files = loadCaseFiles(['test/conformance']);
const mainModel = modelFingerprint(files[0]!.model);
const mainFiles = files.filter((f) => modelFingerprint(f.model) === mainModel);
const otherFiles = files.filter((f) => modelFingerprint(f.model) !== mainModel);

/** What the format says a lab without SCTP must skip: whole cases, and SCTP steps. */
function sctpCases(fs: readonly CaseFile[]): string[] {
  return fs.flatMap((f) => f.cases.filter((c) => c.requires.includes('SCTP')).map((c) => c.id));
}
function sctpSteps(fs: readonly CaseFile[]): string[] {
  return fs.flatMap((f) =>
    f.cases
      .filter((c) => !c.requires.includes('SCTP'))
      .flatMap((c) => c.steps.filter((s) => s.probe.protocol === 'SCTP').map((s) => s.path)),
  );
}

function failures(result: RunResult): string {
  return result.cases
    .filter((c) => c.status === 'fail')
    .map(formatCase)
    .join('\n');
}

function crossShare(r: { probes: number; crossNodeProbes?: number }): number {
  return (r.crossNodeProbes ?? 0) / r.probes;
}

/** Runs `node dist/bin/tortie.js ARGS`; resolves with its exit code and output. */
function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/bin/tortie.js', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('NetworkPolicy conformance on 2 nodes (BPF, IPIP)', () => {
  let lab: ClusterConformanceLab | undefined;
  let session: ConformanceSession | undefined;
  const dir = mkdtempSync(join(tmpdir(), `tortie-cf-${runId}-cases-`));

  beforeAll(async () => {
    lab = await ClusterConformanceLab.create({ id: ids.main, nodes: 2, encap: 'ipip' });
    session = await ConformanceSession.prepare(lab, mainFiles[0]!.model);
  }, 120_000);

  afterAll(async () => {
    await lab?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    // Also after a crash or a timeout half-way: nothing of this run may stay behind.
    for (const id of Object.values(ids)) await destroyClusterLab(id);
    for (const id of Object.values(ids)) {
      expect(existsSync(`/run/netns/tortie-${id}-ul`), id).toBe(false);
      expect(existsSync(`/sys/fs/bpf/tortie-${id}-n0`), id).toBe(false);
    }
  }, 120_000);

  it('spreads the pods over both nodes', () => {
    const nodes = mainFiles[0]!.model.pods.map((p) => lab!.nodeOf(p.key));
    expect(new Set(nodes).size).toBe(2);
    const counts = [...new Set(nodes)].map((n) => nodes.filter((m) => m === n).length);
    expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
  });

  it(
    'every case passes (SCTP skipped), half of the probes across nodes',
    { timeout: 240_000 },
    async () => {
      const results: RunResult[] = [];
      for (const f of mainFiles) results.push(await session!.run(f, options));
      const main = results.flatMap((r) => r.cases);
      const other = await runCaseFiles(
        otherFiles,
        () => ClusterConformanceLab.create({ id: ids.other, nodes: 2, encap: 'ipip' }),
        options,
      );
      const all = summarize(
        [...main, ...other.cases],
        results.reduce((n, r) => n + r.ms, 0) + other.ms,
        lab!.description,
      );
      console.log(formatSummary(all));
      // With an exact wait, cells should be right on the first probe; retries are logged.
      const recovered = all.cases.reduce(
        (n, c) => n + c.steps.reduce((m, s) => m + s.recovered, 0),
        0,
      );
      console.log(`cells that agreed only when probed again: ${recovered}`);

      expect(all.failed, failures(all)).toBe(0);
      expect(all.cases.map((c) => c.id)).toEqual(files.flatMap((f) => f.cases.map((c) => c.id)));
      const ran = all.cases.filter((c) => c.status !== 'skip');
      expect(ran.filter((c) => c.status !== 'pass').map((c) => c.id)).toEqual([]);
      // Skipped: exactly what the format marks as needing SCTP, nothing else.
      const skipped = all.cases.filter((c) => c.status === 'skip').map((c) => c.id);
      expect(skipped).toEqual(sctpCases(files));
      expect(skipped).toEqual(['default-deny-ingress-sctp', 'ingress-ports-sctp']);
      const skippedSteps = ran.flatMap((c) =>
        c.steps.filter((s) => s.status === 'skip').map((s) => s.path),
      );
      expect(skippedSteps).toEqual(sctpSteps(files));
      expect(all.passed).toBe(files.reduce((n, f) => n + f.cases.length, 0) - skipped.length);

      expect(all.crossNodeProbes).toBeDefined();
      const share = crossShare(all);
      expect(share).toBeGreaterThanOrEqual(0.35);
      expect(share).toBeLessThanOrEqual(0.65);
    },
  );

  it('the agents have programmed the revision of the last change', () => {
    const want = lab!.settle.revision;
    expect(want).toBeGreaterThan(0n);
    for (const n of lab!.lab.nodes)
      expect(n.agent!.programmedRevision).toBeGreaterThanOrEqual(want);
  });

  it(
    'the CLI: `lab conformance --nodes 2 --cases FILE --json` exits 0 with the cases passed',
    { timeout: 120_000 },
    async () => {
      expect(existsSync('dist/bin/tortie.js'), 'run `npm run build` first').toBe(true);
      // A small file: the shared model and its first two TCP/UDP cases.
      const raw = JSON.parse(readFileSync('test/conformance/01-isolation.json', 'utf8')) as {
        cases: { id: string; requires?: string[] }[];
      };
      const picked = raw.cases.filter((c) => !(c.requires ?? []).includes('SCTP')).slice(0, 2);
      const path = join(dir, 'small.json');
      writeFileSync(path, JSON.stringify({ ...raw, cases: picked }));
      const res = await runCli([
        'lab',
        'conformance',
        '--nodes',
        '2',
        '--id',
        ids.cli,
        '--timeout',
        '500',
        '--cases',
        path,
        '--json',
      ]);
      expect(res.code, res.stderr + res.stdout).toBe(0);
      const report = JSON.parse(res.stdout) as JsonReport;
      expect(report).toMatchObject({ passed: 2, failed: 0, skipped: 0 });
      expect(report.cases.map((c) => [c.id, c.status])).toEqual(picked.map((c) => [c.id, 'pass']));
      expect(crossShare(report)).toBeGreaterThanOrEqual(0.35);
      expect(crossShare(report)).toBeLessThanOrEqual(0.65);
      expect(existsSync(`/run/netns/tortie-${ids.cli}-ul`)).toBe(false);
    },
  );
});

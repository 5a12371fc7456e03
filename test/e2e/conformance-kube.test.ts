/**
 * The project's NetworkPolicy conformance set (test/conformance/*.json) through the
 * Kubernetes API, on 2 nodes, BPF dataplane, IPIP: a real kube-apiserver 1.34 (etcd 3.6),
 * the agents on the Kubernetes datastore with the tortie-node ServiceAccount's token, the
 * CNI plugin called as kubelet calls it. Namespaces and pods are API objects, every step's
 * NetworkPolicies and label changes go through the API, and each wait is exact: every
 * agent has programmed, per kind, the resourceVersion of the lab's last write of it. SCTP
 * probes are skipped (the pod process has no SCTP), never passed.
 *
 * Then the CLI: `tortie --datastore kubernetes lab conformance --cases FILE --json`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { destroyClusterLab } from '../../src/lab/cluster/cluster-lab.js';
import { KubeConformanceLab } from '../../src/lab/cluster/kube-conformance.js';
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
import { KUBE_START_TIMEOUT_MS, testKubeBinaries } from '../helpers/kube-api.js';
import { newRunId } from '../helpers/netns.js';

const runId = newRunId().slice(0, 5);
const ids = { main: `ck${runId}a`, other: `ck${runId}b`, cli: `ck${runId}c` };
const options: RunOptions = { timeoutMs: 500, retryTimeoutMs: 10_000 };

const files = loadCaseFiles(['test/conformance']);
const mainModel = modelFingerprint(files[0]!.model);
const mainFiles = files.filter((f) => modelFingerprint(f.model) === mainModel);
const otherFiles = files.filter((f) => modelFingerprint(f.model) !== mainModel);

function sctpCases(fs: readonly CaseFile[]): string[] {
  return fs.flatMap((f) => f.cases.filter((c) => c.requires.includes('SCTP')).map((c) => c.id));
}

function failures(result: RunResult): string {
  return result.cases
    .filter((c) => c.status === 'fail')
    .map(formatCase)
    .join('\n');
}

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/bin/tortie.js', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('NetworkPolicy conformance through the Kubernetes API on 2 nodes (BPF, IPIP)', () => {
  let lab: KubeConformanceLab | undefined;
  let session: ConformanceSession | undefined;
  const dir = mkdtempSync(join(tmpdir(), `tortie-ck-${runId}-cases-`));

  beforeAll(async () => {
    expect(existsSync('dist/bin/tortie.js'), 'run `npm run build` first').toBe(true);
    await testKubeBinaries();
    lab = await KubeConformanceLab.create({ id: ids.main, nodes: 2, encap: 'ipip' });
    session = await ConformanceSession.prepare(lab, mainFiles[0]!.model);
  }, KUBE_START_TIMEOUT_MS);

  afterAll(async () => {
    await lab?.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    for (const id of Object.values(ids)) await destroyClusterLab(id);
    for (const id of Object.values(ids)) {
      expect(existsSync(`/run/netns/tortie-${id}-ul`), id).toBe(false);
      expect(existsSync(`/sys/fs/bpf/tortie-${id}-n0`), id).toBe(false);
    }
  }, 120_000);

  it('the pods are API objects on both nodes, Running with their addresses', async () => {
    const api = lab!.lab.kube!.api;
    const pods = (await api.list('/api/v1/pods')).items.filter(
      (p) => p.metadata.namespace !== 'kube-system',
    );
    expect(pods.length).toBe(mainFiles[0]!.model.pods.length);
    const nodes = new Set(pods.map((p) => (p.spec as { nodeName: string }).nodeName));
    expect(nodes.size).toBe(2);
    for (const p of pods) {
      const status = p.status as { phase: string; podIP: string };
      expect(status.phase).toBe('Running');
      const ours = lab!.lab.pod(`${p.metadata.namespace}/${p.metadata.name}`);
      expect(status.podIP).toBe(ours.ip);
      expect(p.metadata.annotations?.['cni.projectcalico.org/podIP']).toBe(`${ours.ip}/32`);
    }
  });

  it(
    'every case passes (SCTP skipped), with exact per-kind waits',
    { timeout: 1_200_000 },
    async () => {
      const results: RunResult[] = [];
      for (const f of mainFiles) results.push(await session!.run(f, options));
      const main = results.flatMap((r) => r.cases);
      const other = await runCaseFiles(
        otherFiles,
        () => KubeConformanceLab.create({ id: ids.other, nodes: 2, encap: 'ipip' }),
        options,
      );
      const all = summarize(
        [...main, ...other.cases],
        results.reduce((n, r) => n + r.ms, 0) + other.ms,
        lab!.description,
      );
      console.log(formatSummary(all));
      const recovered = all.cases.reduce(
        (n, c) => n + c.steps.reduce((m, s) => m + s.recovered, 0),
        0,
      );
      console.log(
        `through Kubernetes: ${all.passed} passed, ${all.failed} failed, ${all.skipped} skipped; cells that agreed only when probed again: ${recovered}`,
      );
      expect(all.failed, failures(all)).toBe(0);
      expect(all.cases.map((c) => c.id)).toEqual(files.flatMap((f) => f.cases.map((c) => c.id)));
      const skipped = all.cases.filter((c) => c.status === 'skip').map((c) => c.id);
      expect(skipped).toEqual(sctpCases(files));
      expect(all.passed).toBe(files.reduce((n, f) => n + f.cases.length, 0) - skipped.length);
    },
  );

  it('every agent reports the per-kind revisions the lab waited for', async () => {
    const want = lab!.settle.revisions;
    expect(want.get('K8sNetworkPolicy')).toBeGreaterThan(0n);
    expect(want.get('WorkloadEndpoint')).toBeGreaterThan(0n);
    for (const n of lab!.lab.nodes) await n.process!.waitForKindRevisions(want, 1000);
  });

  it(
    'the CLI: `tortie --datastore kubernetes lab conformance --cases FILE --json` exits 0',
    { timeout: 300_000 },
    async () => {
      const raw = JSON.parse(readFileSync('test/conformance/01-isolation.json', 'utf8')) as {
        cases: { id: string; requires?: string[] }[];
      };
      const picked = raw.cases.filter((c) => !(c.requires ?? []).includes('SCTP')).slice(0, 2);
      const path = join(dir, 'small.json');
      writeFileSync(path, JSON.stringify({ ...raw, cases: picked }));
      const res = await runCli([
        '--datastore',
        'kubernetes',
        'lab',
        'conformance',
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
      expect(existsSync(`/run/netns/tortie-${ids.cli}-ul`)).toBe(false);
    },
  );
});

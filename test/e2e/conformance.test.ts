/**
 * The project's NetworkPolicy conformance set (test/conformance/*.json) on a one-node lab
 * with the BPF dataplane: real pods behind veths, real TCP and UDP probes, every case and
 * step judged cell by cell. One lab serves every file that shares its model (labels and
 * policies are reset between cases by the runner); a file with a model of its own gets a
 * lab of its own. SCTP probes are skipped (the pod process has no SCTP), never passed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConformanceSession,
  destroyOneNodeLab,
  formatCase,
  formatSummary,
  loadCaseFiles,
  modelFingerprint,
  OneNodeConformanceLab,
  parseCaseFile,
  runCaseFiles,
  type CaseFile,
  type RunOptions,
  type RunResult,
} from '../../src/lab/conformance/index.js';
import { newRunId } from '../helpers/netns.js';

const runId = newRunId();
const ids = [`t${runId}`, `t${runId}b`];
// A cell that disagrees is probed again with a wait long enough for a loaded machine (an
// answer ends it at once): a slow answer is not a verdict.
const options: RunOptions = { timeoutMs: 500, retryTimeoutMs: 10_000 };

const files = loadCaseFiles(['test/conformance']);
const mainModel = modelFingerprint(files[0]!.model);
const mainFiles = files.filter((f) => modelFingerprint(f.model) === mainModel);
const otherFiles = files.filter((f) => modelFingerprint(f.model) !== mainModel);

/** Failures as the CLI prints them, for the assertion message. */
function failures(result: RunResult): string {
  return result.cases
    .filter((c) => c.status === 'fail')
    .map(formatCase)
    .join('\n');
}

/** Skipped cases and steps must all be SCTP's: everything else this lab can do. */
function nonSctpSkips(result: RunResult): string[] {
  return result.cases.flatMap((c) => [
    ...(c.status === 'skip' && !/SCTP/.test(c.reason ?? '') ? [`${c.id}: ${c.reason}`] : []),
    ...c.steps
      .filter((s) => s.status === 'skip' && s.probe.protocol !== 'SCTP')
      .map((s) => `${c.id} ${s.path}: ${s.reason}`),
  ]);
}

describe('NetworkPolicy conformance on one node (BPF)', () => {
  let lab: OneNodeConformanceLab | undefined;
  let session: ConformanceSession | undefined;

  beforeAll(async () => {
    lab = await OneNodeConformanceLab.create({ id: ids[0]! });
    session = await ConformanceSession.prepare(lab, mainFiles[0]!.model);
  });

  afterAll(async () => {
    await lab?.close();
    // Also after a crash or a timeout half-way: nothing of this run may stay behind.
    for (const id of ids) await destroyOneNodeLab(id);
  });

  it('every case of the shared model passes', { timeout: 240_000 }, async () => {
    const results: RunResult[] = [];
    for (const f of mainFiles) results.push(await session!.run(f, options));
    const cases = results.flatMap((r) => r.cases);
    const all: RunResult = {
      cases,
      passed: results.reduce((n, r) => n + r.passed, 0),
      failed: results.reduce((n, r) => n + r.failed, 0),
      skipped: results.reduce((n, r) => n + r.skipped, 0),
      probes: results.reduce((n, r) => n + r.probes, 0),
      ms: results.reduce((n, r) => n + r.ms, 0),
      lab: lab!.description,
    };
    console.log(formatSummary(all));
    expect(all.failed, failures(all)).toBe(0);
    expect(nonSctpSkips(all)).toEqual([]);
    expect(all.passed).toBeGreaterThanOrEqual(40);
  });

  it(
    'the files with a model of their own pass on a lab of their own',
    { timeout: 120_000 },
    async () => {
      const result = await runCaseFiles(
        otherFiles,
        () => OneNodeConformanceLab.create({ id: ids[1]! }),
        options,
      );
      console.log(formatSummary(result));
      expect(result.failed, failures(result)).toBe(0);
      expect(nonSctpSkips(result)).toEqual([]);
    },
  );

  it('a wrong expectation fails on real packets, and only its wrong cells are named', async () => {
    const raw = {
      schemaVersion: 1,
      selfConnections: 'ignore',
      model: JSON.parse(JSON.stringify(rawModel(mainFiles[0]!))),
      cases: [
        {
          id: 'claims-y-a-is-open',
          policies: [
            {
              apiVersion: 'networking.k8s.io/v1',
              kind: 'NetworkPolicy',
              metadata: { name: 'deny-ingress', namespace: 'y' },
              spec: { podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress'] },
            },
          ],
          probe: { port: 80, protocol: 'UDP' },
          // Wrong on purpose: y/a is isolated, so x/a and z/c cannot reach it.
          expect: { default: true },
        },
      ],
    };
    const result = await session!.run(parseCaseFile(raw), options);
    expect(result.failed).toBe(1);
    const wrong = result.cases[0]!.steps[0]!.wrong;
    expect(wrong).toHaveLength(8);
    expect(wrong.every(([, to, expected, observed]) => to === 'y/a' && expected && !observed)).toBe(
      true,
    );
    expect(formatCase(result.cases[0]!)).toContain('FAIL  claims-y-a-is-open');
  });
});

/** The JSON form of a parsed model, to build a case file that shares it. */
function rawModel(f: CaseFile): Record<string, unknown> {
  return {
    namespaces: Object.fromEntries([...f.model.namespaces].map(([n, labels]) => [n, { labels }])),
    pods: f.model.pods.map((p) => ({
      namespace: p.namespace,
      name: p.name,
      labels: p.labels,
      containers: [{ name: 'all', ports: p.ports }],
    })),
    ports: f.model.ports,
    protocols: f.model.protocols,
  };
}

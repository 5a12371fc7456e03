/**
 * scripts/ci-summary.mjs prints the closing line CI reads. These tests run the real vitest,
 * with the reporter .ci/run uses, on the fixture files in test/fixtures/ci-summary/ (named
 * *.fixture.ts so this project's own run never picks them up), and check that every way a
 * run can go wrong ends in a non-zero failed count and exit status.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const fixtures = join(repoRoot, 'test/fixtures/ci-summary');
const summaryScript = join(repoRoot, 'scripts/ci-summary.mjs');
const reporter = join(repoRoot, 'scripts/vitest-ci-reporter.mjs');
const vitestBin = join(repoRoot, 'node_modules/vitest/vitest.mjs');

const dir = mkdtempSync(join(tmpdir(), 'tortie-ci-summary-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const CLOSING = /^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$/;

interface Summary {
  status: number | null;
  lines: string[];
  passed: number;
  failed: number;
  skipped: number;
}

function summarize(report: string): Summary {
  const run = spawnSync(process.execPath, [summaryScript, report], { encoding: 'utf8' });
  const lines = run.stdout.trimEnd().split('\n');
  const closing = CLOSING.exec(lines.at(-1) ?? '');
  if (!closing) throw new Error(`no closing line in:\n${run.stdout}${run.stderr}`);
  return {
    status: run.status,
    lines,
    passed: Number(closing[1]),
    failed: Number(closing[2]),
    skipped: Number(closing[3] ?? 0),
  };
}

/** Runs one fixture file under vitest as .ci/run does, then the summary on its report. */
function runFixture(name: string): Summary & { vitestStatus: number | null } {
  const report = join(dir, `${name}.json`);
  // The child vitest must not take itself for a worker of this one.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('VITEST')),
  );
  const run = spawnSync(
    process.execPath,
    [
      vitestBin,
      'run',
      '--root',
      fixtures,
      `--reporter=${reporter}`,
      `--outputFile=${report}`,
      `${name}.fixture.ts`,
    ],
    { cwd: repoRoot, env, encoding: 'utf8' },
  );
  return { ...summarize(report), vitestStatus: run.status };
}

function writeReport(name: string, report: unknown): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(report));
  return path;
}

function passingFile(name: string, durationMs: number) {
  return {
    name: join(repoRoot, name),
    status: 'passed',
    message: '',
    startTime: 0,
    endTime: 0,
    duration: durationMs,
    assertionResults: [{ title: 'passes', fullName: 'passes', status: 'passed' }],
  };
}

describe('ci-summary on real vitest runs', () => {
  it('an all-passing run ends in "1 passed, 0 failed", exits 0 and lists the slowest files', () => {
    const s = runFixture('passes');
    expect(s.vitestStatus).toBe(0);
    expect(s.lines.at(-1)).toBe('1 passed, 0 failed');
    expect(s.status).toBe(0);
    expect(s.lines).toContain('slowest test files (1 of 1):');
    expect(s.lines).toContainEqual(
      expect.stringMatching(/^ +\d+\.\d+s {2}test\/fixtures\/ci-summary\/passes\.fixture\.ts$/),
    );
  });

  it('a file whose beforeAll throws counts as failed, not as skipped tests alone', () => {
    const s = runFixture('before-all-throws');
    expect(s.vitestStatus).not.toBe(0);
    expect(s.failed).toBeGreaterThan(0);
    expect(s.status).toBe(1);
    expect(s.lines).toContain(
      'FAIL test/fixtures/ci-summary/before-all-throws.fixture.ts: setup failed',
    );
  });

  it('a file whose afterAll throws counts as failed although its tests passed', () => {
    const s = runFixture('after-all-throws');
    expect(s.vitestStatus).not.toBe(0);
    expect(s.passed).toBe(1);
    expect(s.failed).toBeGreaterThan(0);
    expect(s.status).toBe(1);
    expect(s.lines).toContain(
      'FAIL test/fixtures/ci-summary/after-all-throws.fixture.ts: left behind: a namespace',
    );
  });

  it('an unhandled rejection counts as failed although every test passed', () => {
    const s = runFixture('unhandled-rejection');
    expect(s.vitestStatus).not.toBe(0);
    expect(s.passed).toBe(1);
    expect(s.failed).toBeGreaterThan(0);
    expect(s.status).toBe(1);
    expect(s.lines).toContainEqual(
      expect.stringMatching(/^Unhandled Rejection .*nobody awaited me$/),
    );
  });
});

describe('ci-summary on reports it cannot trust', () => {
  it('a missing report is a failure', () => {
    const s = summarize(join(dir, 'no-such-report.json'));
    expect(s.lines.at(-1)).toBe('0 passed, 1 failed');
    expect(s.status).toBe(1);
  });

  it('a report in which no test ran is a failure', () => {
    const s = summarize(writeReport('empty', { testResults: [], unhandledErrors: [] }));
    expect(s.lines.at(-1)).toBe('0 passed, 1 failed');
    expect(s.status).toBe(1);
  });

  it('a report from the plain JSON reporter, which cannot show unhandled errors, is a failure', () => {
    const s = summarize(
      writeReport('plain-json', {
        numPassedTests: 1,
        testResults: [passingFile('test/unit/a.test.ts', 1)],
      }),
    );
    expect(s.failed).toBeGreaterThan(0);
    expect(s.status).toBe(1);
  });

  it('an interrupted run is a failure', () => {
    const s = summarize(
      writeReport('interrupted', {
        numPassedTests: 1,
        numPendingTests: 5,
        reason: 'interrupted',
        unhandledErrors: [],
        testResults: [passingFile('test/unit/a.test.ts', 1)],
      }),
    );
    expect(s.lines.at(-1)).toBe('1 passed, 1 failed, 5 skipped');
    expect(s.status).toBe(1);
  });
});

describe('ci-summary slowest files', () => {
  it('lists the ten slowest files, slowest first, in seconds, before the closing line', () => {
    const files = Array.from({ length: 12 }, (_, i) =>
      passingFile(`test/unit/f${i + 1}.test.ts`, (i + 1) * 1000),
    );
    const s = summarize(
      writeReport('twelve', {
        numPassedTests: 12,
        reason: 'passed',
        unhandledErrors: [],
        testResults: files,
      }),
    );
    expect(s.lines).toEqual([
      'slowest test files (10 of 12):',
      '  12.0s  test/unit/f12.test.ts',
      '  11.0s  test/unit/f11.test.ts',
      '  10.0s  test/unit/f10.test.ts',
      '   9.0s  test/unit/f9.test.ts',
      '   8.0s  test/unit/f8.test.ts',
      '   7.0s  test/unit/f7.test.ts',
      '   6.0s  test/unit/f6.test.ts',
      '   5.0s  test/unit/f5.test.ts',
      '   4.0s  test/unit/f4.test.ts',
      '   3.0s  test/unit/f3.test.ts',
      '12 passed, 0 failed',
    ]);
    expect(s.status).toBe(0);
  });
});

#!/usr/bin/env node
// Prints the closing line CI reads ("N passed, N failed[, N skipped]") from the JSON report
// that scripts/vitest-ci-reporter.mjs writes (vitest's JSON report plus unhandled errors,
// the run's end reason and per-file durations). Before it: what failed outside any test,
// and the ten slowest test files. The closing line is always the last line printed, and
// the exit status is 1 whenever it reports a failure.
//
// What counts as failed, beyond the tests vitest marks failed:
//   - a file that failed without a failed test: it did not load, or a beforeAll/afterAll
//     (the e2e files' "left behind" checks) threw. Such a file counts as ONE failure. Its
//     tests that never ran stay "skipped": the report cannot tell them from it.skip tests,
//     and one broken hook is one thing to fix.
//   - each unhandled error vitest caught (an unhandled rejection, say), which the plain
//     JSON reporter does not record at all;
//   - an interrupted run, a report that cannot show unhandled errors, a missing or
//     unreadable report, and a run in which no test passed or failed.
import { readFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = dirname(dirname(fileURLToPath(import.meta.url)));
const file = process.argv[2] ?? 'build/vitest-report.json';
const { passed, failed, skipped, problems, files } = summarize(file);
printSlowest(files);
for (const line of problems) console.log(line);
console.log(`${passed} passed, ${failed} failed` + (skipped > 0 ? `, ${skipped} skipped` : ''));
process.exitCode = failed > 0 ? 1 : 0;

function summarize(file) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
    if (!Array.isArray(report?.testResults)) throw new Error('it has no testResults');
  } catch (e) {
    return {
      passed: 0,
      failed: 1,
      skipped: 0,
      problems: [`no usable test report at ${file}: ${e.message}`],
      files: [],
    };
  }
  const files = report.testResults;
  const problems = [];
  // Files that failed although none of their tests did (see the header).
  let fileFailures = 0;
  for (const f of files) {
    if (f.status !== 'failed') continue;
    if ((f.assertionResults ?? []).some((t) => t.status === 'failed')) continue;
    fileFailures++;
    problems.push(
      `FAIL ${repoPath(f.name)}: ${firstLine(f.message) || 'a hook or the file itself failed'}`,
    );
  }

  let runFailures = 0;
  if (!Array.isArray(report.unhandledErrors)) {
    runFailures++;
    problems.push(
      'the report cannot show unhandled errors: write it with ' +
        '--reporter=./scripts/vitest-ci-reporter.mjs, not --reporter=json',
    );
  } else {
    for (const e of report.unhandledErrors) {
      runFailures++;
      const where = e.file ? ` while ${repoPath(e.file)} ran` : '';
      problems.push(`${e.type ?? 'Unhandled Error'}${where}: ${firstLine(e.message)}`);
    }
  }
  if (report.reason === 'interrupted') {
    runFailures++;
    problems.push('the run was interrupted: tests it never reached count as skipped');
  }

  const passed = report.numPassedTests ?? 0;
  let failed = (report.numFailedTests ?? 0) + fileFailures + runFailures;
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  if (passed === 0 && failed === 0) {
    failed = 1;
    problems.push('no test ran');
  }
  return { passed, failed, skipped, problems, files };
}

function printSlowest(files) {
  // `duration` comes from vitest-ci-reporter.mjs; vitest's own span (tests only, no hooks)
  // is the fallback for a report without it.
  const timed = files
    .map((f) => ({ name: f.name, ms: f.duration ?? (f.endTime - f.startTime || 0) }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 10);
  if (timed.length === 0) return;
  console.log(`slowest test files (${timed.length} of ${files.length}):`);
  const width = Math.max(...timed.map((t) => (t.ms / 1000).toFixed(1).length));
  for (const t of timed) {
    console.log(`  ${(t.ms / 1000).toFixed(1).padStart(width)}s  ${repoPath(t.name)}`);
  }
}

// One line per problem: the full messages and stacks are in vitest's own output above.
function firstLine(text) {
  return String(text ?? '').split('\n')[0];
}

function repoPath(path) {
  const rel = relative(repoRoot, String(path));
  return rel.startsWith('..') ? String(path) : rel;
}

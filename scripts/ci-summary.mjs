#!/usr/bin/env node
// Prints the closing line CI reads ("N passed, N failed[, N skipped]") from vitest's
// JSON report. A report that is missing or ran no test is a failure, not a pass.
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? 'build/vitest-report.json';
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (e) {
  console.log(`no test report at ${file}: ${e.message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// Files that failed to load count as failures too: their tests never ran.
const brokenFiles = (report.testResults ?? []).filter(
  (r) => r.status === 'failed' && (r.assertionResults ?? []).length === 0,
).length;
const failed = (report.numFailedTests ?? 0) + brokenFiles;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
const line = `${passed} passed, ${failed} failed` + (skipped > 0 ? `, ${skipped} skipped` : '');
console.log(line);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

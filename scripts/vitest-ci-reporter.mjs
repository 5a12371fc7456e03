// vitest's JSON report, plus the three things CI needs that vitest 3's JSON reporter
// leaves out (scripts/ci-summary.mjs reads them):
//   - `unhandledErrors`: errors vitest caught outside any test (an unhandled rejection, an
//     error thrown after a file finished). The JSON reporter drops them and even reports
//     `success: true`, although vitest itself exits 1.
//   - `reason`: how the run ended ("passed", "failed", "interrupted"). An interrupted run
//     reports the tests it never reached as skipped.
//   - `duration` on each file: the time the file held a worker (import, setup, all hooks
//     and tests), in ms. The JSON reporter's startTime/endTime span only the tests, so a
//     file whose beforeAll builds namespaces for a minute shows as a few ms.
//
// Use it in place of `--reporter=json`, with the same `--outputFile`.
import { JsonReporter } from 'vitest/reporters';

export default class CiJsonReporter extends JsonReporter {
  #run = { modules: [], unhandledErrors: [], reason: 'failed' };

  constructor(options) {
    super(options ?? {});
  }

  // vitest calls onFinished and onTestRunEnd for the same run end, concurrently. Only
  // onTestRunEnd is told the reason, so the report is written from there, once.
  onFinished() {}

  async onTestRunEnd(testModules, unhandledErrors, reason) {
    this.#run = { modules: testModules, unhandledErrors, reason };
    await super.onFinished(this.ctx.state.getFiles(), [...unhandledErrors]);
  }

  async writeReport(report) {
    const { modules, unhandledErrors, reason } = this.#run;
    const durations = new Map(modules.map((m) => [m.moduleId, moduleDuration(m)]));
    const parsed = JSON.parse(report);
    for (const file of parsed.testResults) file.duration = durations.get(file.name) ?? 0;
    parsed.reason = reason;
    parsed.unhandledErrors = unhandledErrors.map((e) => ({
      type: e?.type ?? 'Unhandled Error',
      message: String(e?.message ?? e),
      // vitest notes which file was running when the error surfaced, when it knows.
      file: e?.VITEST_TEST_PATH,
    }));
    await super.writeReport(JSON.stringify(parsed));
  }
}

function moduleDuration(testModule) {
  const d = testModule.diagnostic();
  return (
    d.environmentSetupDuration +
    d.prepareDuration +
    d.setupDuration +
    d.collectDuration +
    d.duration
  );
}

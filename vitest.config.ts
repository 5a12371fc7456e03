import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Owns this run's ids and removes what killed runs left (namespaces, links, pins, …).
    globalSetup: ['test/helpers/global-setup.ts'],
    // Dataplane and e2e tests share the kernel: run files one at a time so per-run
    // namespaces and bpffs roots never contend for the two cores of the CI machine.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});

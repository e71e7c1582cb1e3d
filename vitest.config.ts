import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['operators/**/*.spec.ts', 'pipeline/**/*.spec.ts', 'connectors/**/*.spec.ts', 'ops/**/*.spec.ts', 'test/**/*.test.ts'],
    // Integration suites each start their own nats-server and database; two cores
    // carry two of them at once without starving the servers they spawn.
    maxWorkers: 2,
    testTimeout: 60_000,
    // The JSON report gives .ci/run a plain "N passed, N failed" closing line.
    reporters: ['default', 'json'],
    outputFile: { json: '.billstream/vitest-report.json' },
    hookTimeout: 60_000,
  },
});

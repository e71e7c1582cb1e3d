import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['operators/**/*.spec.ts', 'pipeline/**/*.spec.ts', 'connectors/**/*.spec.ts', 'ops/**/*.spec.ts', 'test/**/*.test.ts'],
    // Integration suites start their own nats-server, database and often several
    // billstream processes; run one file at a time, so that lease, ack-wait and
    // takeover bounds are measured on a machine not also busy with another suite.
    maxWorkers: 1,
    testTimeout: 60_000,
    // The JSON report gives .ci/run a plain "N passed, N failed" closing line.
    reporters: ['default', 'json'],
    outputFile: { json: '.billstream/vitest-report.json' },
    hookTimeout: 60_000,
  },
});

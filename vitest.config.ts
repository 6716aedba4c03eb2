import { defineConfig } from 'vitest/config';

// One id per test run, inherited by the workers: the label value tests sweep by.
process.env.TFORK_TEST_RUN ??= `run-${process.pid}`;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration suites share one podman storage: run files one at a time.
    fileParallelism: false,
    testTimeout: 180_000,
    hookTimeout: 300_000,
    reporters: ['default'],
  },
});

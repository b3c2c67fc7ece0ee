import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    // Clean-up hooks drop databases: one took over 60 s in CI while another suite (the
    // fleet-budget acceptance) created and dropped hundreds of databases beside it.
    hookTimeout: 180_000,
    // Suites share one Postgres, MariaDB and Redis; each uses its own names, but two
    // cores are all there is, so keep the file-level parallelism modest.
    maxWorkers: 2,
    globalSetup: ['test/support/global-setup.ts', 'test/support/redis-cluster-setup.ts'],
  },
});

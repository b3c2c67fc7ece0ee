import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Suites share one Postgres, MariaDB and Redis; each uses its own names, but two
    // cores are all there is, so keep the file-level parallelism modest.
    maxWorkers: 2,
    globalSetup: ['test/global-setup.ts', 'test/redis-cluster-setup.ts'],
  },
});

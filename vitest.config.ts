import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The fleet-budget acceptance runs four worker processes against hundreds of databases
 * for minutes, and counts connections on servers every suite shares: it runs last, on its
 * own, so no other suite's load decides whether it passes (it flaked in CI beside them).
 */
const ALONE = ['test/tenancy/fleet-budget/acceptance.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    // Clean-up hooks drop databases: one took over 60 s in CI while another suite (the
    // fleet-budget acceptance) created and dropped hundreds of databases beside it.
    hookTimeout: 180_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'suites',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...ALONE],
          // Suites share one Postgres, MariaDB and Redis; each uses its own names, but two
          // cores are all there is, so keep the file-level parallelism modest.
          maxWorkers: 2,
          globalSetup: ['test/support/global-setup.ts', 'test/support/redis-cluster-setup.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'alone',
          include: ALONE,
          maxWorkers: 1,
          globalSetup: ['test/support/global-setup.ts'],
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});

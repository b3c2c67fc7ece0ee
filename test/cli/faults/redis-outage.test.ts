/**
 * A running worker whose Redis goes away says so once (not once per reconnect attempt),
 * keeps running, and says when Redis is back. The Redis is a private server of this test,
 * stopped and restarted on the same port.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { type PrivateRedis, startPrivateRedis } from '../../support/private-redis.js';
import { tempDir } from '../../support/services.js';
import { until } from '../../support/wait.js';
import { ROOT, startCli } from '../support.js';

const cwd = tempDir('tenant-fleet-outage-');
afterAll(() => rmSync(cwd, { recursive: true, force: true }));

const lines = (stderr: string, msg: RegExp) =>
  stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .filter((line) => msg.test(String((JSON.parse(line) as { msg?: string }).msg)));

describe('a worker losing Redis', () => {
  it('logs the outage once, keeps running, and logs when Redis is back', async () => {
    let redis: PrivateRedis = await startPrivateRedis();
    const port = Number(new URL(redis.url).port);
    writeFileSync(
      join(cwd, 'handlers.mjs'),
      `import { defineHandlers } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/index.js')).href)};
export default defineHandlers({ reports: async () => {} });
`,
    );
    const worker = startCli(['worker', '--handlers', './handlers.mjs'], {
      cwd,
      env: {
        FLEET_REGISTRY_URL: `sqlite:${join(cwd, 'registry.db')}`,
        FLEET_REDIS_URL: redis.url,
        FLEET_LOG_LEVEL: 'info',
      },
    });
    try {
      await until(() => lines(worker.stderr(), /^worker running/).length > 0, 'the worker to run');
      await redis.stop();
      await until(() => lines(worker.stderr(), /^Redis unreachable/).length > 0, 'the outage line');
      // Let the connections fail their reconnect attempts a good many times meanwhile.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      redis = await startPrivateRedis({ port });
      await until(() => lines(worker.stderr(), /^Redis is back/).length > 0, 'the line saying Redis is back');
      expect(lines(worker.stderr(), /^Redis unreachable/)).toHaveLength(1);
      expect(worker.stderr()).not.toMatch(/Unhandled error event/);
      expect(worker.child.exitCode).toBeNull();
      worker.child.kill('SIGTERM');
      expect(await worker.exit).toBe(0);
    } finally {
      if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
      await redis.stop();
    }
  });
});

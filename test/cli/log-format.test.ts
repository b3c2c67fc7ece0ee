/**
 * `--log-format json|pretty`: the worker's "worker running" line in both formats, from
 * the built CLI; and the pretty line made from the logger's redacted JSON line.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { prettyLine } from '../../src/cli/process/pretty-log.js';
import { createLogger } from '../../src/reporting/logger.js';
import { tempDir } from '../support/services.js';
import { until } from '../support/wait.js';
import { ROOT, runCli, startCli } from './support.js';

/** Starts a memory-engine worker with `args`, waits for its "worker running" line, stops it. */
async function workerOutput(cwd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const worker = startCli(['worker', '--handlers', './handlers.mjs', '--no-prewarm', ...args], { cwd, env });
  try {
    await until(() => /worker running/.test(worker.stderr()), 'the worker to run');
    worker.child.kill('SIGTERM');
    expect(await worker.exit).toBe(0);
    return worker.stderr();
  } finally {
    if (worker.child.exitCode === null) worker.child.kill('SIGKILL');
  }
}

describe('--log-format', () => {
  it('json (the default) and pretty both write the "worker running" line', async () => {
    const cwd = tempDir('tenant-fleet-log-format-');
    try {
      writeFileSync(
        join(cwd, 'handlers.mjs'),
        `import { defineHandlers } from ${JSON.stringify(pathToFileURL(join(ROOT, 'dist/src/index.js')).href)};
export default defineHandlers({ reports: async () => {} });
`,
      );
      writeFileSync(
        join(cwd, 'fleet.config.json'),
        JSON.stringify({ registryUrl: `sqlite:${join(cwd, 'registry.db')}`, engine: 'memory' }),
      );
      const [byDefault, json, pretty, fromEnv] = await Promise.all([
        workerOutput(cwd, []),
        workerOutput(cwd, ['--log-format', 'json']),
        workerOutput(cwd, ['--log-format', 'pretty']),
        workerOutput(cwd, [], { FLEET_LOG_FORMAT: 'pretty' }),
      ]);
      for (const out of [byDefault, json]) {
        const lines = out.trim().split('\n');
        expect(lines.every((line) => line.startsWith('{'))).toBe(true);
        const running = lines
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .find((e) => /^worker running/.test(String(e.msg)));
        expect(running).toMatchObject({ level: 30, queues: ['reports'], engine: 'memory' });
      }
      for (const out of [pretty, fromEnv]) {
        expect(out).not.toMatch(/^\{/m);
        expect(out).toMatch(
          /^\d\d:\d\d:\d\d\.\d{3} INFO {2}worker running; SIGINT or SIGTERM stops it queues=\["reports"\] engine=memory .*concurrency=\d+/m,
        );
        expect(out).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO {2}worker stopped/m);
      }
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('rejects an unknown format with exit 2, naming the flag', async () => {
    const run = await runCli(['--log-format', 'xml', 'config']);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--log-format/);
    expect(run.stderr).toMatch(/xml/);
  });

  it('pretty lines are made from the redacted line: no password, fields and error kept', () => {
    const lines: string[] = [];
    const logger = createLogger({ destination: { write: (line: string) => lines.push(prettyLine(line)) } });
    const url = 'postgres://app:Sup3r-s3cret@db.internal:5432/acme';
    logger.warn(
      { tenant: 'acme', url, nested: { dsn: url }, err: new Error(`cannot reach ${url}`) },
      `lost ${url}`,
    );
    const [line] = lines;
    expect(line).not.toContain('Sup3r-s3cret');
    expect(line).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} WARN {2}lost postgres:\/\/app:\*\*\*@db\.internal:5432\/acme tenant=acme url=postgres:\/\/app:\*\*\*@/,
    );
    expect(line).toContain('err="Error: cannot reach postgres://app:***@db.internal:5432/acme"');
  });
});

/**
 * The dashboard as a fastify plugin: the fleet page at `/`, `/api/fleet`, live updates
 * at `/api/fleet/events` (server-sent events), `/metrics`, a tenant search, and
 * bull-board at `/queues` (read-only on the in-memory engine). Register it in an app's own server, with a
 * prefix if wanted; `startDashboard` runs it on a server of its own.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { snapshotStoreFor } from '../src/metrics/store-for-engine.js';
import { BullMqEngine } from '../src/queue/bullmq/bullmq-engine.js';
import { checkTenant } from '../src/queue/job-input.js';
import { MemoryEngine } from '../src/queue/memory/memory-engine.js';
import { PgBossEngine } from '../src/queue/pgboss/pgboss-engine.js';
import { tokenGuard } from './auth.js';
import { FleetView } from './fleet-view.js';
import { type DashboardOptions, resolveDashboardOptions } from './options.js';
import { bullMqAdapters, memoryAdapters, pgBossAdapters } from './partitions/partition-adapters.js';
import { PartitionBoard } from './partitions/partition-board.js';
import { fleetRegistry } from './prometheus.js';

/** How often the page receives an update by server-sent events. */
const EVENT_PERIOD_MS = 1000;

const ASSETS: Record<string, string> = {
  'fleet.js': 'text/javascript; charset=utf-8',
  'fleet.css': 'text/css; charset=utf-8',
  'index.html': 'text/html; charset=utf-8',
};

/** The page's files: beside this module in the sources, two folders up from dist/dashboard. */
async function readAsset(name: string): Promise<Buffer> {
  const here = dirname(fileURLToPath(import.meta.url));
  try {
    return await readFile(join(here, 'public', name));
  } catch {
    return readFile(join(here, '..', '..', 'dashboard', 'public', name));
  }
}

/** Removes what the page does not need from the answer (the long backlog list). */
function forClient<T extends { backlogTenants: unknown }>(page: T): Omit<T, 'backlogTenants'> {
  const { backlogTenants: _, ...rest } = page;
  return rest;
}

/** The dashboard plugin. Reads no environment variable: the caller passes the token. */
export function createDashboard(options: DashboardOptions): FastifyPluginAsync {
  const resolved = resolveDashboardOptions(options);
  return async (app: FastifyInstance) => {
    const store = resolved.store ?? snapshotStoreFor(resolved.engine);
    const view = new FleetView(
      resolved.engine,
      store,
      resolved.queues,
      resolved.topTenants,
      resolved.backlogTenants,
    );
    const registry = fleetRegistry(view, resolved.topTenants);
    const adapters =
      resolved.engine instanceof BullMqEngine
        ? bullMqAdapters(resolved.engine, resolved.readOnly)
        : resolved.engine instanceof PgBossEngine
          ? pgBossAdapters(resolved.engine, resolved.readOnly)
          : resolved.engine instanceof MemoryEngine
            ? memoryAdapters(resolved.engine)
            : null;
    const board = adapters ? new PartitionBoard(adapters, view, resolved.topTenants) : null;
    const streams = new Set<() => void>();
    app.addHook('onClose', async () => {
      for (const end of [...streams]) end();
      await board?.close();
      if (!resolved.store) await store.close();
    });
    if (resolved.token !== undefined) {
      const guard = tokenGuard(resolved.token);
      app.addHook('onRequest', guard);
      // A path or method no route matches is answered by the not-found handler, whose
      // context may be the parent's: guard it too, so that nothing answers without the token.
      app.setNotFoundHandler({ preHandler: guard }, async (_request, reply) =>
        reply.code(404).send({ error: 'Not Found' }),
      );
    }

    const base = app.prefix;
    app.get('/', async (_request, reply) => {
      const html = (await readAsset('index.html')).toString('utf8').replaceAll('{{base}}', base);
      return reply.type(ASSETS['index.html']!).send(html);
    });
    app.get<{ Params: { file: string } }>('/assets/:file', async (request, reply) => {
      const type = ASSETS[request.params.file];
      if (!type || request.params.file === 'index.html') return reply.code(404).send({ error: 'Not Found' });
      return reply
        .type(type)
        .header('cache-control', 'no-cache')
        .send(await readAsset(request.params.file));
    });
    app.get('/api/fleet', async () => ({
      ...forClient(await view.latest()),
      bullBoard: board ? { registered: board.registered } : null,
    }));
    app.get('/api/fleet/events', (request, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      let stopped = false;
      const send = async () => {
        try {
          const page = forClient(await view.read());
          if (!stopped) res.write(`data: ${JSON.stringify(page)}\n\n`);
        } catch (error) {
          if (!stopped)
            res.write(
              `event: fleet-error\ndata: ${JSON.stringify({ message: (error as Error).message })}\n\n`,
            );
        }
      };
      const timer = setInterval(() => void send(), EVENT_PERIOD_MS);
      void send();
      const stop = () => {
        stopped = true;
        clearInterval(timer);
        streams.delete(end);
      };
      const end = () => {
        stop();
        res.end();
      };
      streams.add(end);
      request.raw.on('close', stop);
    });
    app.get<{ Querystring: { tenant?: string } }>('/api/search', async (request, reply) => {
      let tenant: string;
      try {
        tenant = checkTenant(request.query.tenant);
      } catch (error) {
        return reply.code(400).send({ error: 'Bad Request', message: (error as Error).message });
      }
      if (!board) return { tenant, partitions: [], bullBoard: false };
      return { tenant, partitions: await board.search(tenant), bullBoard: true };
    });
    app.get('/metrics', async (_request, reply) =>
      reply.type(registry.contentType).send(await registry.metrics()),
    );
    if (board) await board.mount(app, `${base}/`);
  };
}

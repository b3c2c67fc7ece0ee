/**
 * A long-running command's view of its Redis: the engine's connections retry on their
 * own through an outage, and jobs wait meanwhile; this says so once when Redis goes
 * away, once a minute while it stays away (with how many errors), and once when it is
 * back, instead of staying silent or printing every reconnect attempt.
 */
import type { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { QueueEngine } from '../../queue/engine.js';
import { redactUrl } from '../../reporting/errors.js';
import type { Logger } from '../../reporting/logger.js';

/** How often a probe checks whether Redis is back. */
const PROBE_INTERVAL_MS = 1000;
/** How often an ongoing outage is reported again. */
const REMIND_INTERVAL_MS = 60_000;

/** Watches `engine`'s Redis (bullmq engine only); the returned function stops watching. */
export function watchRedis(engine: QueueEngine, url: string, logger: Logger): () => void {
  if (engine.name !== 'bullmq') return () => {};
  const redis = redactUrl(url);
  const events = engine as unknown as EventEmitter;
  let since = 0;
  let errors = 0;
  let lastReport = 0;
  let probe: NodeJS.Timeout | undefined;
  let probing = false;

  const checkBack = async () => {
    if (probing) return;
    probing = true;
    const client = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectionName: 'tenant-fleet:probe',
    });
    client.on('error', () => {});
    try {
      await client.connect();
      await client.ping();
      clearInterval(probe);
      probe = undefined;
      logger.info({ redis, downMs: Date.now() - since, errors }, 'Redis is back');
      since = 0;
    } catch {
      if (Date.now() - lastReport >= REMIND_INTERVAL_MS) {
        lastReport = Date.now();
        logger.warn({ redis, downMs: Date.now() - since, errors }, 'Redis still unreachable; retrying');
      }
    } finally {
      client.disconnect();
      probing = false;
    }
  };

  const onError = ({ error }: { error: Error }) => {
    errors++;
    if (since !== 0) return;
    since = Date.now();
    lastReport = since;
    errors = 1;
    logger.error(
      { redis, err: redactUrl(error.message) },
      'Redis unreachable: jobs wait until it is back; retrying',
    );
    probe = setInterval(() => void checkBack(), PROBE_INTERVAL_MS);
    probe.unref();
  };
  events.on('redis:error', onError);
  return () => {
    events.off('redis:error', onError);
    clearInterval(probe);
  };
}

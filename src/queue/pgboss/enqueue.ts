/** Enqueueing on the pg-boss engine: bulks split into statements of bounded size. */
import type pg from 'pg';
import type { EnqueueOutcome } from '../engine.js';
import type { NormalisedJob } from '../job-input.js';
import { newJobUuid, toBossPriority } from './rows.js';
import { enqueueSql } from './statements.js';

/** Jobs per INSERT: 11 arrays of this many elements stay well inside one message. */
const ENQUEUE_CHUNK = 1000;

/**
 * Inserts checked jobs into `queue` (whose pg-boss queue exists), each chunk one statement
 * with its partitions, batches and wake-up; a chunk is atomic, a bulk over 1,000 jobs is not.
 */
export async function insertJobs(
  pool: pg.Pool,
  schema: string,
  queue: string,
  jobs: readonly NormalisedJob[],
): Promise<EnqueueOutcome> {
  const ids: string[] = [];
  let added = 0;
  for (let start = 0; start < jobs.length; start += ENQUEUE_CHUNK) {
    const chunk = jobs.slice(start, start + ENQUEUE_CHUNK);
    const uuids = chunk.map((job) => newJobUuid(job.tenant, job.jobId));
    const result = await pool.query<{ added: number }>(enqueueSql(schema), [
      queue,
      uuids,
      chunk.map((job) => job.tenant),
      chunk.map((job) => job.jobId),
      chunk.map((job) => job.name),
      chunk.map((job) => job.json),
      chunk.map((job) => toBossPriority(job.priority)),
      chunk.map((job) => job.attempts - 1),
      chunk.map((job) => JSON.stringify(job.backoff)),
      chunk.map((job) => job.delayMs),
      chunk.map((job) => job.batchId),
    ]);
    added += result.rows[0]!.added;
    for (const [i, job] of chunk.entries()) ids.push(job.jobId ?? uuids[i]!);
  }
  return { ids, added };
}

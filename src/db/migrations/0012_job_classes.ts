import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/**
 * Follow-up jobs have a queue of their own (`media-follow-up`, see src/queue/classed-queue.ts):
 * the WebM jobs of earlier versions still waiting in `media` move there, so that they run in the
 * follow-up slots and keep holding their dedupe key against new WebM jobs of the same media.
 * Running and finished ones stay where they are (a failed one is still listed and retried).
 */
export async function up(db: Kysely<any>, _dialect: Dialect): Promise<void> {
  await sql`update queue_jobs set queue = 'media-follow-up' where queue = 'media' and name = 'make-webm' and state = 'waiting'`.execute(db);
}

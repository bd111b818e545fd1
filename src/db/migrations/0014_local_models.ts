import { sql, type Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';
import { hasColumn, replaceValueCheck } from '../check-constraints.js';

/**
 * What the local models write. A media's labels say where they came from: `model` (what the vision
 * models saw), `ocr` (bank entries found in on-screen text), `transcript` (in its speech),
 * `caption` (in the text people wrote about it), `user` (added by hand); a bank's
 * `match_threshold` is the similarity a text must reach to match one of its entries. Caption tracks say where they came from (`user`: uploaded,
 * `auto`: transcribed from the media's speech, replaced by an uploaded track of its language).
 * Moderation by the local models: a media that becomes ready while they are to look at it is
 * `pending` (seen by its owner and admins only) until they have; the system records `await`
 * when it starts waiting and `clear` when the models found nothing over a threshold.
 */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  await replaceValueCheck(db, dialect, {
    table: 'mediaassets',
    column: 'moderation_state',
    oldValues: ['none', 'held', 'approved', 'rejected'],
    newValues: ['none', 'pending', 'held', 'approved', 'rejected'],
  });
  await replaceValueCheck(db, dialect, {
    table: 'moderation_decisions',
    column: 'decision',
    oldValues: ['hold', 'approve', 'reject'],
    newValues: ['await', 'clear', 'hold', 'approve', 'reject'],
  });
  await replaceValueCheck(db, dialect, {
    table: 'asset_labels',
    column: 'source',
    oldValues: ['user', 'model'],
    newValues: ['user', 'model', 'ocr', 'transcript', 'caption'],
  });
  // Each step can be run again: a process that stopped half-way through migrates again on its next start.
  if (!(await hasColumn(db, dialect, 'label_banks', 'match_threshold'))) {
    await db.schema.alterTable('label_banks').addColumn('match_threshold', 'real').execute();
  }
  if (!(await hasColumn(db, dialect, 'caption_tracks', 'source'))) {
    await db.schema
      .alterTable('caption_tracks')
      .addColumn('source', 'text', (c) => c.notNull().defaultTo('user').check(sql`source in ('user', 'auto')`))
      .execute();
  }
}

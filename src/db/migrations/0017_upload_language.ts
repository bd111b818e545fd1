import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';
import { hasColumn } from '../check-constraints.js';

/** The spoken language an upload declares (a BCP 47 tag): its transcript is made in it. */
export async function up(db: Kysely<any>, dialect: Dialect): Promise<void> {
  if (!(await hasColumn(db, dialect, 'upload_sessions', 'language'))) {
    await db.schema.alterTable('upload_sessions').addColumn('language', 'text').execute();
  }
}

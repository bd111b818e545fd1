import { sql, type Kysely } from 'kysely';

/**
 * A chunk's receipt records `crc32:<hex>` or `sha256:<hex>` (sha256 only when the client sent
 * one to check against): the column says so, and the sha256 digests of chunks already on
 * record get their tag.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('upload_chunks').renameColumn('sha256', 'checksum').execute();
  await sql`update upload_chunks set checksum = 'sha256:' || checksum where checksum not like '%:%'`.execute(db);
}

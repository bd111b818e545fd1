import { sql } from 'kysely';
import type { DatabaseHandle, Db } from './database.js';

/**
 * Runs `fn` in a transaction that holds the right to write from its first statement.
 *
 * On SQLite that is `BEGIN IMMEDIATE`: the database's one write lock is taken at the start
 * (waiting out `busy_timeout` while another process holds it), so everything the transaction
 * reads is the latest committed state and no other process can commit until it ends. A plain
 * `BEGIN` would start reading first; a read of this connection's (such as the data_version watch)
 * landing between `BEGIN` and the first write pins a snapshot, and that write then fails at once
 * with SQLITE_BUSY_SNAPSHOT when another process committed meanwhile.
 *
 * On PostgreSQL it is an ordinary transaction: the rows to be written are locked where needed.
 */
export async function writeTransaction<T>(handle: Pick<DatabaseHandle, 'db' | 'dialect'>, fn: (trx: Db) => Promise<T>): Promise<T> {
  if (handle.dialect === 'postgres') return handle.db.transaction().execute(fn);
  return handle.db.connection().execute(async (conn) => {
    await sql`begin immediate`.execute(conn);
    let result: T;
    try {
      result = await fn(conn);
    } catch (err) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw err;
    }
    await sql`commit`.execute(conn);
    return result;
  });
}

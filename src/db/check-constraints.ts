import { sql, type Kysely } from 'kysely';
import type { Dialect } from './dialect.js';

/**
 * Replaces the CHECK constraint of one column that lists its allowed values, on either backend.
 *
 * PostgreSQL drops and adds the constraint. SQLite cannot alter a constraint, so the table is
 * rebuilt by SQLite's own procedure (https://sqlite.org/lang_altertable.html#otheralter): a copy
 * with the new definition, the rows, the old table dropped and the copy renamed, its indexes made
 * again, with foreign keys off meanwhile (dropping the old table would otherwise cascade to every
 * row that refers to it) and checked before commit. Run again, it changes nothing.
 */
export async function replaceValueCheck(
  db: Kysely<any>,
  dialect: Dialect,
  c: { table: string; column: string; oldValues: readonly string[]; newValues: readonly string[] },
): Promise<void> {
  const list = (values: readonly string[]) => values.map((v) => `'${v.replaceAll("'", "''")}'`).join(', ');
  const oldCheck = `${c.column} in (${list(c.oldValues)})`;
  const newCheck = `${c.column} in (${list(c.newValues)})`;
  if (dialect === 'postgres') {
    // The check constraints on this one column (not every one that mentions its name).
    const found = await sql<{ conname: string }>`
      select conname from pg_constraint
      where conrelid = ${c.table}::regclass and contype = 'c'
        and conkey = array[(select attnum from pg_attribute where attrelid = ${c.table}::regclass and attname = ${c.column})]::smallint[]`.execute(db);
    for (const row of found.rows) await sql`alter table ${sql.table(c.table)} drop constraint ${sql.id(row.conname)}`.execute(db);
    await sql`alter table ${sql.table(c.table)} add constraint ${sql.id(`${c.table}_${c.column}_check`)} check (${sql.raw(newCheck)})`.execute(db);
    return;
  }
  await sql`pragma foreign_keys = off`.execute(db);
  try {
    await sql`begin immediate`.execute(db);
    try {
      const objects = await sql<{ type: string; name: string; sql: string | null }>`
        select type, name, sql from sqlite_master where tbl_name = ${c.table}`.execute(db);
      const table = objects.rows.find((o) => o.type === 'table');
      if (!table?.sql) throw new Error(`table ${c.table} not found`);
      if (table.sql.includes(newCheck)) {
        await sql`commit`.execute(db);
        return;
      }
      if (!table.sql.includes(oldCheck)) throw new Error(`table ${c.table} has no check "${oldCheck}"`);
      const copy = `${c.table}__rebuilt`;
      const definition = table.sql.replace(oldCheck, newCheck).replace(/^create table\s+("?)[^\s("]+\1/i, `create table "${copy}"`);
      await sql.raw(definition).execute(db);
      await sql`insert into ${sql.table(copy)} select * from ${sql.table(c.table)}`.execute(db);
      await sql`drop table ${sql.table(c.table)}`.execute(db);
      await sql`alter table ${sql.table(copy)} rename to ${sql.table(c.table)}`.execute(db);
      for (const o of objects.rows) if (o.type !== 'table' && o.sql) await sql.raw(o.sql).execute(db);
      const broken = await sql`pragma foreign_key_check`.execute(db);
      if (broken.rows.length) throw new Error(`rebuilding ${c.table} broke ${broken.rows.length} foreign keys`);
      await sql`commit`.execute(db);
    } catch (err) {
      await sql`rollback`.execute(db);
      throw err;
    }
  } finally {
    await sql`pragma foreign_keys = on`.execute(db);
  }
}

/** Whether a table has a column: a migration that adds one can then be run again after a crash. */
export async function hasColumn(db: Kysely<any>, dialect: Dialect, table: string, column: string): Promise<boolean> {
  if (dialect === 'postgres') {
    const r = await sql`select 1 from pg_attribute where attrelid = ${table}::regclass and attname = ${column} and not attisdropped`.execute(db);
    return r.rows.length > 0;
  }
  const r = await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(db);
  return r.rows.some((row) => row.name === column);
}

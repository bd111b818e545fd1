import { Migrator, type Kysely, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely';
import type { Dialect } from './dialect.js';
import type { DatabaseHandle } from './database.js';
import * as m0001 from './migrations/0001_initial.js';
import * as m0002 from './migrations/0002_playback.js';
import * as m0003 from './migrations/0003_media_management.js';
import * as m0004 from './migrations/0004_labels_moderation.js';
import * as m0005 from './migrations/0005_search.js';
import * as m0006 from './migrations/0006_captions.js';
import * as m0007 from './migrations/0007_chunk_checksums.js';
import * as m0008 from './migrations/0008_search_consistency.js';
import * as m0009 from './migrations/0009_fair_queue.js';
import * as m0010 from './migrations/0010_upload_recovery_quotas.js';
import * as m0011 from './migrations/0011_media_events.js';
import * as m0012 from './migrations/0012_job_classes.js';
import * as m0013 from './migrations/0013_media_locks.js';
import * as m0014 from './migrations/0014_local_models.js';
import * as m0015 from './migrations/0015_document_texts.js';
import * as m0016 from './migrations/0016_label_names.js';
import * as m0017 from './migrations/0017_upload_language.js';

type DialectMigration = { up(db: Kysely<any>, dialect: Dialect): Promise<void> };

const migrations: Record<string, DialectMigration> = {
  '0001_initial': m0001,
  '0002_playback': m0002,
  '0003_media_management': m0003,
  '0004_labels_moderation': m0004,
  '0005_search': m0005,
  '0006_captions': m0006,
  '0007_chunk_checksums': m0007,
  '0008_search_consistency': m0008,
  '0009_fair_queue': m0009,
  '0010_upload_recovery_quotas': m0010,
  '0011_media_events': m0011,
  '0012_job_classes': m0012,
  '0013_media_locks': m0013,
  '0014_local_models': m0014,
  '0015_document_texts': m0015,
  '0016_label_names': m0016,
  '0017_upload_language': m0017,
};

/** Every migration's name, oldest first. */
export const migrationNames: readonly string[] = Object.keys(migrations);

class InCodeProvider implements MigrationProvider {
  constructor(private readonly dialect: Dialect) {}
  async getMigrations(): Promise<Record<string, Migration>> {
    return Object.fromEntries(Object.entries(migrations).map(([name, m]) => [name, { up: (db: Kysely<any>) => m.up(db, this.dialect) }]));
  }
}

function migratorOf(handle: DatabaseHandle): Migrator {
  // The schema is named explicitly: otherwise Kysely finds its tables in any schema of the
  // database and may skip creating them in ours.
  return new Migrator({
    db: handle.db,
    provider: new InCodeProvider(handle.dialect),
    ...(handle.schema ? { migrationTableSchema: handle.schema } : {}),
  });
}

/**
 * Applies every pending migration. On PostgreSQL several processes may start at once (Kysely
 * takes a lock); on SQLite, whose adapter takes none, one that loses the race fails its start
 * (busy, or the migration already recorded) and starts cleanly when run again, since a migration
 * that changes a table checks first whether it already did.
 */
export async function migrateToLatest(handle: DatabaseHandle): Promise<string[]> {
  return outcome(await migratorOf(handle).migrateToLatest());
}

/** Applies the migrations up to and including `name` (tests of a migration on data of the version before). */
export async function migrateUpTo(handle: DatabaseHandle, name: string): Promise<string[]> {
  return outcome(await migratorOf(handle).migrateTo(name));
}

function outcome(result: MigrationResultSet): string[] {
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error');
    throw new Error(`migration ${failed?.migrationName ?? '?'} failed: ${(result.error as Error).message ?? result.error}`);
  }
  return (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

import { sql } from 'kysely';
import type { DatabaseHandle, Db } from '../db/database.js';
import { writeTransaction } from '../db/write-transaction.js';
import { AppError } from '../shared/errors.js';
import type { DiskSpace } from '../storage/disk-space.js';
import type { TenancyService } from '../tenancy/tenancy-service.js';

type Owner = { tenantId: string; userId: string };

/**
 * What one user and one tenant may hold in uploads: at most `maxOpenPerUser` uploads open at
 * once (both protocols), and the tenant's storage quota, checked from the declared size when an
 * upload is created and again whenever its bytes arrive. Both also need room on the disk.
 */
export class UploadLimits {
  constructor(
    private readonly database: Pick<DatabaseHandle, 'db' | 'dialect'>,
    private readonly tenancy: TenancyService,
    private readonly maxOpenPerUser: number,
    private readonly disk: DiskSpace,
  ) {}

  /** Before an upload of `size` bytes is created: room on the disk and in the tenant's quota. */
  async assertRoomFor(p: Owner, size: number): Promise<void> {
    await this.disk.assertRoom();
    // Most tenants have no quota: their usage is not summed at all.
    if ((await this.tenancy.quotaBytes(p.tenantId)) === null) return;
    const { quota_bytes, usage_bytes } = await this.tenancy.storageUsage(p.tenantId);
    if (quota_bytes !== null && usage_bytes + size > quota_bytes) {
      throw new AppError('quota-exceeded', `${size} bytes do not fit: ${usage_bytes} of the quota of ${quota_bytes} bytes are used`, {
        quota_bytes,
        usage_bytes,
      });
    }
  }

  /**
   * Inserts a new open upload's session row (`insert`) unless the user already has
   * `maxOpenPerUser` open: the count and the insert are one write transaction, serialised per
   * user (SQLite's write lock; a per-user advisory lock on PostgreSQL), so creations at the same
   * instant cannot all pass the count.
   */
  async insertWithinCap(p: Owner, insert: (trx: Db) => Promise<unknown>): Promise<void> {
    await writeTransaction(this.database, async (trx) => {
      if (this.database.dialect === 'postgres') {
        await sql`select pg_advisory_xact_lock(hashtext(current_schema() || ${`:qasar-open-uploads:${p.tenantId}:${p.userId}`}))`.execute(trx);
      }
      const row = await trx
        .selectFrom('upload_sessions')
        .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
        .where('tenant_id', '=', p.tenantId)
        .where('state', 'in', ['open', 'completing'])
        .where('user_id', '=', p.userId)
        .executeTakeFirstOrThrow();
      if (Number(row.n) >= this.maxOpenPerUser) {
        throw new AppError('too-many-open-uploads', `at most ${this.maxOpenPerUser} uploads may be open at once`, { max_open: this.maxOpenPerUser });
      }
      await insert(trx);
    });
  }

  /**
   * Before an open upload's bytes are written: the quota may have been lowered since it was
   * created, or uploads created at the same moment may overrun it together. It counts the media
   * and the uploads created up to this one, so the earliest go on and the later ones are refused.
   */
  async assertStillFits(session: { id: string; tenant_id: string; created_at: unknown }): Promise<void> {
    await this.disk.assertRoom();
    if ((await this.tenancy.quotaBytes(session.tenant_id)) === null) return;
    const createdAt = session.created_at instanceof Date ? session.created_at.toISOString() : String(session.created_at);
    const { quota_bytes, usage_bytes } = await this.tenancy.storageUsage(session.tenant_id, { id: session.id, created_at: createdAt });
    if (quota_bytes !== null && usage_bytes > quota_bytes) {
      throw new AppError('quota-exceeded', `the upload no longer fits: ${usage_bytes} bytes counted against the quota of ${quota_bytes}`, {
        quota_bytes,
        usage_bytes,
      });
    }
  }
}

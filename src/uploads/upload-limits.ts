import type { Db } from '../db/database.js';
import { AppError } from '../errors.js';
import type { DiskSpace } from '../storage/disk-space.js';
import type { TenancyService } from '../tenancy/tenancy-service.js';

/**
 * What one user and one tenant may hold in uploads: at most `maxOpenPerUser` uploads open at
 * once (both protocols), and the tenant's storage quota, checked from the declared size when an
 * upload is created and again whenever its bytes arrive. Both also need room on the disk.
 */
export class UploadLimits {
  constructor(
    private readonly db: Db,
    private readonly tenancy: TenancyService,
    private readonly maxOpenPerUser: number,
    private readonly disk: DiskSpace,
  ) {}

  /** Before an upload of `size` bytes is created. */
  async assertMayOpen(p: { tenantId: string; userId: string }, size: number): Promise<void> {
    await this.disk.assertRoom();
    const row = await this.db
      .selectFrom('upload_sessions')
      .select((eb) => eb.fn.countAll<number | string | bigint>().as('n'))
      .where('tenant_id', '=', p.tenantId)
      .where('state', 'in', ['open', 'completing'])
      .where('user_id', '=', p.userId)
      .executeTakeFirstOrThrow();
    if (Number(row.n) >= this.maxOpenPerUser) {
      throw new AppError('too-many-open-uploads', `at most ${this.maxOpenPerUser} uploads may be open at once`, { max_open: this.maxOpenPerUser });
    }
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

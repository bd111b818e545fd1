import { monotonicClock, type Clock } from '../shared/clock.js';
import type { Db } from '../db/database.js';
import { preparedQuery } from '../db/prepared.js';
import { nowIso } from '../db/schema.js';
import { AppError } from '../shared/errors.js';
import { newId, USER_ID_PATTERN } from '../shared/ids.js';
import { generateApiKey, hashApiKey, looksLikeApiKey } from './api-keys.js';
import type { Principal } from './principal.js';

export interface CreatedKey {
  id: string;
  tenant_id: string;
  user_id: string | null;
  admin: boolean;
  key: string;
}

/** The user an admin key acts as when it names none. */
export const DEFAULT_USER_ID = 'default';

/** A key as a request needs it, kept for a short while so a request costs no key lookup. */
interface CachedKey {
  id: string;
  tenantId: string;
  userId: string | null;
  isAdmin: boolean;
  until: number;
}

/** Most keys remembered at once (the oldest is forgotten first). */
const KEY_CACHE_SIZE = 10_000;

const keyByHashQuery = preparedQuery((db, keyHash: string) =>
  db.selectFrom('api_keys').select(['id', 'tenant_id', 'user_id', 'is_admin', 'revoked_at']).where('key_hash', '=', keyHash),
);

export class TenancyService {
  private readonly keys = new Map<string, CachedKey>();
  /** Counts revocations through this process, so a lookup racing one is not remembered. */
  private revocations = 0;

  /**
   * `keyCacheTtlMs`: how long a valid key is remembered. A revocation through this process
   * takes effect at once; other processes stop accepting the key within that time.
   */
  constructor(
    private readonly db: Db,
    private readonly keyCacheTtlMs = 0,
    private readonly clock: Clock = monotonicClock,
  ) {}

  async createTenant(name: string): Promise<{ id: string; name: string }> {
    const clean = name.trim();
    if (!clean || clean.length > 200 || /[\u0000-\u001f\u007f]/.test(clean)) {
      throw new AppError('validation-failed', 'tenant name must be 1-200 printable characters');
    }
    const existing = await this.db.selectFrom('tenants').select('id').where('name', '=', clean).executeTakeFirst();
    if (existing) throw new AppError('conflict', `a tenant named "${clean}" exists`);
    const tenant = { id: newId(), name: clean, created_at: nowIso() };
    await this.db.insertInto('tenants').values(tenant).execute();
    return { id: tenant.id, name: tenant.name };
  }

  async getTenant(id: string): Promise<{ id: string; name: string } | undefined> {
    return this.db.selectFrom('tenants').select(['id', 'name']).where('id', '=', id).executeTakeFirst();
  }

  /** Sets a tenant's storage quota in bytes (null: none). */
  async setQuota(tenantId: string, quotaBytes: number | null): Promise<{ tenant_id: string; quota_bytes: number | null }> {
    if (quotaBytes !== null && (!Number.isSafeInteger(quotaBytes) || quotaBytes < 0)) {
      throw new AppError('validation-failed', 'a quota is a whole number of bytes, or none');
    }
    const res = await this.db.updateTable('tenants').set({ quota_bytes: quotaBytes }).where('id', '=', tenantId).executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) throw new AppError('not-found', `tenant ${tenantId} not found`);
    return { tenant_id: tenantId, quota_bytes: quotaBytes };
  }

  /** A tenant's storage quota in bytes; null: none. */
  async quotaBytes(tenantId: string): Promise<number | null> {
    const row = await this.db.selectFrom('tenants').select('quota_bytes').where('id', '=', tenantId).executeTakeFirst();
    return row?.quota_bytes === null || row?.quota_bytes === undefined ? null : Number(row.quota_bytes);
  }

  /**
   * A tenant's quota and what counts against it: the size of every media's original, plus the
   * declared size of every upload still open or completing (all of it, from its creation).
   * `uploadsBefore` counts only the uploads created before that one (and it itself), so that of
   * uploads that together overrun the quota the earliest ones go on.
   */
  async storageUsage(tenantId: string, uploadsBefore?: { id: string; created_at: string }): Promise<{ quota_bytes: number | null; usage_bytes: number }> {
    const quota = await this.quotaBytes(tenantId);
    const media = await this.db
      .selectFrom('mediaassets')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number | string | bigint>('size'), eb.lit(0)).as('bytes'))
      .where('tenant_id', '=', tenantId)
      .executeTakeFirstOrThrow();
    let uploads = this.db
      .selectFrom('upload_sessions')
      .select((eb) => eb.fn.coalesce(eb.fn.sum<number | string | bigint>('total_size'), eb.lit(0)).as('bytes'))
      .where('tenant_id', '=', tenantId)
      .where('state', 'in', ['open', 'completing']);
    if (uploadsBefore) {
      const { id, created_at } = uploadsBefore;
      uploads = uploads.where((eb) => eb.or([eb('created_at', '<', created_at), eb.and([eb('created_at', '=', created_at), eb('id', '<=', id)])]));
    }
    const open = await uploads.executeTakeFirstOrThrow();
    return { quota_bytes: quota, usage_bytes: Number(media.bytes) + Number(open.bytes) };
  }

  async countTenants(): Promise<number> {
    const row = await this.db
      .selectFrom('tenants')
      .select((eb) => eb.fn.countAll().as('n'))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /**
   * A key without a user and without admin acts as the tenant's default user; an admin key
   * may name any user per request.
   */
  async createKey(opts: { tenantId: string; userId?: string | null; admin?: boolean; name?: string }): Promise<CreatedKey> {
    if (!(await this.getTenant(opts.tenantId))) throw new AppError('not-found', `tenant ${opts.tenantId} not found`);
    const userId = opts.userId ?? (opts.admin ? null : DEFAULT_USER_ID);
    if (userId !== null && !USER_ID_PATTERN.test(userId)) {
      throw new AppError('validation-failed', 'user id must be 1-64 letters, digits, _ or -, starting with a letter or digit');
    }
    const key = generateApiKey();
    const row = {
      id: newId(),
      tenant_id: opts.tenantId,
      user_id: userId,
      is_admin: opts.admin ? 1 : 0,
      name: opts.name ?? null,
      key_hash: hashApiKey(key),
      created_at: nowIso(),
      last_used_at: null,
      revoked_at: null,
    };
    await this.db.insertInto('api_keys').values(row).execute();
    return { id: row.id, tenant_id: row.tenant_id, user_id: row.user_id, admin: !!opts.admin, key };
  }

  async revokeKey(tenantId: string, keyId: string): Promise<boolean> {
    const res = await this.db
      .updateTable('api_keys')
      .set({ revoked_at: nowIso() })
      .where('id', '=', keyId)
      .where('tenant_id', '=', tenantId)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    this.revocations++;
    for (const [hash, k] of this.keys) if (k.id === keyId) this.keys.delete(hash);
    return Number(res.numUpdatedRows) > 0;
  }

  /**
   * Resolves a bearer key to a principal, or throws `unauthenticated`. `actAs` is the user
   * an admin key asks to act for; other keys may only name their own user.
   */
  async authenticate(key: string | undefined, actAs?: string): Promise<Principal> {
    if (!key || !looksLikeApiKey(key)) throw new AppError('unauthenticated', 'missing or malformed API key');
    const k = await this.lookUpKey(hashApiKey(key));
    let userId = k.userId ?? DEFAULT_USER_ID;
    if (actAs !== undefined && actAs !== userId) {
      if (!k.isAdmin) throw new AppError('forbidden', 'only an admin key may act for another user');
      if (!USER_ID_PATTERN.test(actAs)) throw new AppError('validation-failed', 'invalid user id in X-Qasar-User');
      userId = actAs;
    }
    return { tenantId: k.tenantId, keyId: k.id, userId, isAdmin: k.isAdmin };
  }

  /** A valid key by its hash, from memory while it is fresh; unknown and revoked keys always ask the database. */
  private async lookUpKey(keyHash: string): Promise<CachedKey> {
    const now = this.clock.now();
    const cached = this.keys.get(keyHash);
    if (cached && cached.until > now) return cached;
    const revocations = this.revocations;
    const row = await keyByHashQuery.first(this.db, keyHash);
    if (!row || row.revoked_at) {
      this.keys.delete(keyHash);
      throw new AppError('unauthenticated', 'unknown or revoked API key');
    }
    const k: CachedKey = { id: row.id, tenantId: row.tenant_id, userId: row.user_id, isAdmin: Number(row.is_admin) === 1, until: now + this.keyCacheTtlMs };
    // A revocation that ran meanwhile may have read this key's row before it was remembered.
    if (this.keyCacheTtlMs > 0 && revocations === this.revocations) {
      this.keys.delete(keyHash);
      if (this.keys.size >= KEY_CACHE_SIZE) this.keys.delete(this.keys.keys().next().value!);
      this.keys.set(keyHash, k);
    }
    return k;
  }
}

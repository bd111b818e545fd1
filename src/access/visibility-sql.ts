import { sql, type RawBuilder } from 'kysely';

/**
 * Who is looking, for visibility rules: feeds are for everyone in the tenant; search is for a
 * member, who also sees their own media that is not ready or held by moderation (an admin: all).
 */
export type Audience = { kind: 'feed' } | { kind: 'member'; userId: string; isAdmin: boolean };

/** Ready and not held/rejected by moderation: what feeds, search and recommendations show to anyone. */
export function publiclyVisible(alias = 'm'): RawBuilder<boolean> {
  const m = sql.ref(alias);
  return sql<boolean>`(${m}.status = 'ready' and ${m}.moderation_state in ('none', 'approved'))`;
}

export function visibleTo(audience: Audience, alias = 'm'): RawBuilder<boolean> {
  if (audience.kind === 'feed') return publiclyVisible(alias);
  if (audience.isAdmin) return sql<boolean>`1 = 1`;
  return sql<boolean>`(${publiclyVisible(alias)} or ${sql.ref(alias)}.user_id = ${audience.userId})`;
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { visibleTo } from '../../src/access/visibility-sql.js';
import { hiddenByModeration, visibleToAudience, type Audience } from '../../src/access/visibility.js';
import type { MediaStatus, ModerationState } from '../../src/db/schema.js';
import { startTestApp, type TestApp } from '../support/harness.js';
import { insertMedia } from '../support/media-seed.js';

const STATUSES: MediaStatus[] = ['queued', 'processing', 'ready', 'error'];
const STATES: ModerationState[] = ['none', 'pending', 'held', 'approved', 'rejected'];
const OWNERS = ['alice', 'bob'];
const AUDIENCES: Record<string, Audience> = {
  feed: { kind: 'feed' },
  alice: { kind: 'member', userId: 'alice', isAdmin: false },
  carol: { kind: 'member', userId: 'carol', isAdmin: false },
  admin: { kind: 'member', userId: 'dave', isAdmin: true },
};

/** The "who may see this media" rule has a SQL form and an in-memory form: every case must agree. */
describe('the visibility rule, in SQL and in memory', () => {
  let t: TestApp;
  const seeds: Array<{ id: string; status: MediaStatus; moderation_state: ModerationState; user_id: string }> = [];

  before(async () => {
    t = await startTestApp();
    for (const status of STATUSES)
      for (const moderation of STATES)
        for (const userId of OWNERS) {
          const id = await insertMedia(t, { status, moderation, userId });
          seeds.push({ id, status, moderation_state: moderation, user_id: userId });
        }
  });
  after(() => t.close());

  for (const [name, audience] of Object.entries(AUDIENCES)) {
    it(`agrees for every status × moderation state × owner, seen by ${name}`, async () => {
      const rows = await t.ctx.database.db
        .selectFrom('mediaassets as m')
        .select('m.id')
        .where('m.tenant_id', '=', t.tenant.id)
        .where(visibleTo(audience, 'm'))
        .execute();
      const bySql = new Set(rows.map((r) => r.id));
      for (const s of seeds) {
        assert.equal(bySql.has(s.id), visibleToAudience(audience, s), `${name} sees ${s.status}/${s.moderation_state}/${s.user_id}`);
      }
      assert.ok((bySql.size > 0 && bySql.size < seeds.length) || (audience.kind === 'member' && audience.isAdmin), 'the cases split both ways');
    });
  }

  it('hides every moderation state except none and approved from anyone but the owner and admins', () => {
    assert.deepEqual(
      STATES.filter((s) => !hiddenByModeration(s)),
      ['none', 'approved'],
    );
    assert.equal(hiddenByModeration('pending'), true, 'a state added later is hidden until listed');
  });
});

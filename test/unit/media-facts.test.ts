import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { visibleToAudience, type Audience } from '../../src/access/visibility.js';
import { factsMatch, type MediaFacts } from '../../src/search/media-facts.js';
import type { SearchFilters } from '../../src/search/search-index.js';

const media = (over: Partial<MediaFacts>): MediaFacts => ({
  id: 'm1',
  kind: 'video',
  status: 'ready',
  user_id: 'alice',
  moderation_state: 'none',
  created_at: '2026-01-10T00:00:00.000Z',
  title: null,
  caption: null,
  original_filename: 'a.mp4',
  duration: null,
  width: null,
  height: null,
  artifacts: {},
  playback_key: 'k',
  tags: [],
  label_ids: ['l1', 'l2'],
  ...over,
});

const feed: Audience = { kind: 'feed' };
const alice: Audience = { kind: 'member', userId: 'alice', isAdmin: false };
const bob: Audience = { kind: 'member', userId: 'bob', isAdmin: false };
const admin: Audience = { kind: 'member', userId: 'carol', isAdmin: true };

describe('media facts: the in-memory twin of search filters and visibility', () => {
  it('shows ready, unmoderated or approved media to everyone; the rest to its owner and admins only', () => {
    const cases: Array<[Partial<MediaFacts>, [boolean, boolean, boolean, boolean]]> = [
      [{}, [true, true, true, true]],
      [{ moderation_state: 'approved' }, [true, true, true, true]],
      [{ moderation_state: 'held' }, [false, true, false, true]],
      [{ moderation_state: 'rejected' }, [false, true, false, true]],
      [{ status: 'processing' }, [false, true, false, true]],
      [{ status: 'error', moderation_state: 'held' }, [false, true, false, true]],
    ];
    for (const [over, expected] of cases) {
      const m = media(over);
      assert.deepEqual(
        [feed, alice, bob, admin].map((a) => visibleToAudience(a, m)),
        expected,
        JSON.stringify(over),
      );
    }
  });

  it('applies kind, status, dates (from inclusive, to exclusive), labels and the first page instant', () => {
    const m = media({});
    const match = (filters: SearchFilters, asOf?: string) => factsMatch({ audience: bob, filters, ...(asOf ? { asOf } : {}) }, m);
    assert.equal(match({}), true);
    assert.equal(match({ kind: 'video' }), true);
    assert.equal(match({ kind: 'audio' }), false);
    assert.equal(match({ status: 'ready' }), true);
    assert.equal(match({ status: 'queued' }), false);
    assert.equal(match({ createdFrom: '2026-01-10T00:00:00.000Z' }), true);
    assert.equal(match({ createdFrom: '2026-01-10T00:00:00.001Z' }), false);
    assert.equal(match({ createdTo: '2026-01-10T00:00:00.000Z' }), false);
    assert.equal(match({ createdTo: '2026-01-10T00:00:00.001Z' }), true);
    assert.equal(match({ labelIds: ['l9', 'l2'] }), true);
    assert.equal(match({ labelIds: ['l9'] }), false);
    assert.equal(match({ labelIds: [] }), false, 'a label that matches nothing filters out everything');
    assert.equal(match({}, '2026-01-10T00:00:00.000Z'), true);
    assert.equal(match({}, '2026-01-09T23:59:59.999Z'), false);
    assert.equal(factsMatch({ audience: bob, filters: {} }, media({ moderation_state: 'held' })), false, 'visibility first');
  });
});

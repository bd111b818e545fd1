import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { DatabaseHandle } from '../db/database.js';
import type { MediaChanges } from '../media/media-changes.js';
import type { PlaybackTokens } from '../media/playback-tokens.js';
import { DefaultRecommendationEngine } from '../recommendations/default-engine.js';
import { ExternalRecommendationEngine } from '../recommendations/external-engine.js';
import { RecommendationService } from '../recommendations/recommendation-service.js';
import { SearchIndexer } from '../search/indexer.js';
import { SearchResultCache } from '../search/result-cache.js';
import { createSearchIndex, type SearchIndex } from '../search/search-index.js';
import { SearchService, type CachedSearch } from '../search/search-service.js';
import { FeedItemBuilder } from './feed-items.js';
import { FeedService } from './feed-service.js';

/** Search, feeds and recommendations, wired together. */
export interface Discovery {
  indexer: SearchIndexer;
  search: SearchService;
  recommendations: RecommendationService;
  feeds: FeedService;
  items: FeedItemBuilder;
}

/** The index, forgetting a tenant's cached rankings after each write of its documents. */
function invalidatingWrites(index: SearchIndex, cache: SearchResultCache<unknown>): SearchIndex {
  return {
    stableScores: index.stableScores,
    search: (q) => index.search(q),
    unindexed: (limit) => index.unindexed(limit),
    async upsert(db, docs) {
      await index.upsert(db, docs);
      for (const tenantId of new Set(docs.map((d) => d.tenantId))) cache.invalidate(tenantId);
    },
    async remove(db, tenantId, mediaIds) {
      await index.remove(db, tenantId, mediaIds);
      cache.invalidate(tenantId);
    },
  };
}

/**
 * Wires search, feeds and recommendations, subscribes the indexer to media changes (in every
 * process) and indexes media that have no search document yet.
 */
export async function createDiscovery(deps: {
  database: DatabaseHandle;
  /** The playback URL signer (the delivery service's). */
  tokens: PlaybackTokens;
  changes: MediaChanges;
  settings: Settings;
  log: Logger;
}): Promise<Discovery> {
  const { database, settings, log } = deps;
  const index = createSearchIndex(database, settings.searchRankCandidates);
  const cache = new SearchResultCache<CachedSearch>(settings.searchCacheTtl);
  const indexer = new SearchIndexer(database, invalidatingWrites(index, cache), log);
  deps.changes.on((change) => {
    // Status, moderation and deletions change what a search shows without an index write.
    cache.invalidate(change.tenantId);
    return indexer.onChange(change);
  });
  await indexer.backfill();
  const search = new SearchService(database.db, index, settings.searchMaxQueryLength, cache);
  const external = settings.recommenderUrl ? new ExternalRecommendationEngine(settings.recommenderUrl, settings.recommenderTimeout) : undefined;
  const recommendations = new RecommendationService(database.db, new DefaultRecommendationEngine(database.db), external, log);
  const items = new FeedItemBuilder(database.db, deps.tokens, settings.playbackTtl);
  const feeds = new FeedService(database, items, search, recommendations);
  return { indexer, search, recommendations, feeds, items };
}

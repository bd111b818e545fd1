import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { DatabaseHandle } from '../db/database.js';
import type { MediaChanges } from '../events/media-changes.js';
import type { PlaybackTokens } from '../media/playback-tokens.js';
import { DefaultRecommendationEngine } from '../recommendations/default-engine.js';
import { ExternalRecommendationEngine } from '../recommendations/external-engine.js';
import { RecommendationService } from '../recommendations/recommendation-service.js';
import { SearchIndexer } from '../search/indexer.js';
import { SearchResultCache } from '../cache/result-cache.js';
import type { Clock } from '../shared/clock.js';
import { createSearchIndex } from '../search/search-index.js';
import { SearchService, type CachedSearch } from '../search/search-service.js';
import { FeedItemBuilder } from './feed-items.js';
import type { MediaFactsSource } from '../search/media-facts.js';
import type { LabelDirectory } from '../labels/label-directory.js';
import { FeedService } from './feed-service.js';

/** Search, feeds and recommendations, wired together. */
export interface Discovery {
  indexer: SearchIndexer;
  search: SearchService;
  recommendations: RecommendationService;
  feeds: FeedService;
  items: FeedItemBuilder;
  /** Recent rankings (forgotten by writes of this process itself; others' through the change bus). */
  searchCache: SearchResultCache<CachedSearch>;
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
  facts: MediaFactsSource;
  labelDirectory: LabelDirectory;
  /** A watch of other processes' writes (see RecordCache): when it tells, every ranking is forgotten. */
  watchOthers: () => (() => boolean) | undefined;
  clock?: Clock;
}): Promise<Discovery> {
  const { database, settings, log } = deps;
  const index = createSearchIndex(database, settings.searchRankCandidates);
  const cache = new SearchResultCache<CachedSearch>(settings.searchCacheTtl, undefined, deps.watchOthers(), deps.clock);
  // Forgotten after commits, never before: a search between a forget and its commit would keep
  // the old ranking under the new generation (PostgreSQL reads on other connections meanwhile).
  const indexer = new SearchIndexer(database, index, log, (tenantId) => cache.invalidate(tenantId));
  deps.changes.on(async (change) => {
    try {
      await indexer.onChange(change);
    } finally {
      // Status and moderation change what a search shows without an index write; they were committed before being told.
      cache.invalidate(change.tenantId);
    }
  });
  await indexer.backfill();
  const search = new SearchService(database.db, index, deps.facts, settings.searchMaxQueryLength, cache);
  const external = settings.recommenderUrl ? new ExternalRecommendationEngine(settings.recommenderUrl, settings.recommenderTimeout) : undefined;
  const recommendations = new RecommendationService(database.db, new DefaultRecommendationEngine(database.db, deps.labelDirectory), external, log);
  const items = new FeedItemBuilder(deps.facts, deps.labelDirectory, deps.tokens, settings.playbackTtl);
  const feeds = new FeedService(database, items, search, recommendations);
  return { indexer, search, recommendations, feeds, items, searchCache: cache };
}

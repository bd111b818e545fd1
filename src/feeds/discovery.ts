import type { Logger } from 'pino';
import type { Settings } from '../config/settings.js';
import type { DatabaseHandle } from '../db/database.js';
import type { MediaChanges } from '../media/media-changes.js';
import type { PlaybackTokens } from '../media/playback-tokens.js';
import { DefaultRecommendationEngine } from '../recommendations/default-engine.js';
import { ExternalRecommendationEngine } from '../recommendations/external-engine.js';
import { RecommendationService } from '../recommendations/recommendation-service.js';
import { SearchIndexer } from '../search/indexer.js';
import { createSearchIndex } from '../search/search-index.js';
import { SearchService } from '../search/search-service.js';
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
  const indexer = new SearchIndexer(database, index, log);
  deps.changes.on((change) => indexer.onChange(change));
  await indexer.backfill();
  const search = new SearchService(database.db, index, settings.searchMaxQueryLength);
  const external = settings.recommenderUrl ? new ExternalRecommendationEngine(settings.recommenderUrl, settings.recommenderTimeout) : undefined;
  const recommendations = new RecommendationService(database.db, new DefaultRecommendationEngine(database.db), external, log);
  const items = new FeedItemBuilder(database.db, deps.tokens, settings.playbackTtl);
  const feeds = new FeedService(database, items, search, recommendations);
  return { indexer, search, recommendations, feeds, items };
}

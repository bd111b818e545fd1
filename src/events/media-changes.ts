import type { MediaStatus } from '../db/schema.js';

/**
 * `artifacts`: derived files and their facts in file_metadata (written by processing steps).
 * `text`: the words processing read from the file changed (a document's title, author and text).
 */
export type MediaChangeReason = 'created' | 'status' | 'metadata' | 'labels' | 'captions' | 'moderation' | 'artifacts' | 'text' | 'deleted';

export interface MediaChange {
  tenantId: string;
  mediaId: string;
  reason: MediaChangeReason;
  status?: MediaStatus;
  /** The change's event in the tenant's media event log (see media-events.ts), when it has one. */
  seq?: number;
}

export type MediaChangeListener = (change: MediaChange) => Promise<void> | void;

/**
 * In-process notification of writes to a media, so derived state (the search index, stream
 * subscribers) follows every write. Each process wires its own listeners; the state they keep
 * lives in the database, so an API process and a worker process stay consistent.
 * A failing listener is reported, never allowed to undo the write that was already made.
 * Writers do not emit themselves: they record events in their transaction, and `announce`
 * (media-events.ts) emits the committed ones.
 */
export class MediaChanges {
  private readonly listeners: MediaChangeListener[] = [];

  constructor(private readonly onListenerError: (err: unknown, change: MediaChange) => void = () => undefined) {}

  on(listener: MediaChangeListener): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  async emit(change: MediaChange): Promise<void> {
    for (const listener of [...this.listeners]) {
      try {
        await listener(change);
      } catch (err) {
        this.onListenerError(err, change);
      }
    }
  }
}

import type { AppContext } from './compose.js';
import { sweepSnapshots } from '../search/snapshots.js';

/** Periodic housekeeping of a process: each task runs on its own timer and never overlaps itself. */
export function startMaintenance(ctx: AppContext, roles: { api: boolean; worker: boolean }): () => void {
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, name: string, task: () => Promise<unknown>) => {
    let running = false;
    const run = async () => {
      if (running) return;
      running = true;
      try {
        await task();
      } catch (err) {
        ctx.log.warn({ err, task: name }, 'maintenance task failed');
      } finally {
        running = false;
      }
    };
    const t = setInterval(run, ms);
    t.unref();
    timers.push(t);
    void run();
  };
  if (roles.api) {
    // Runs at start-up too: uploads a crashed process left completing are taken up again first.
    every(ctx.settings.uploadSweepInterval, 'sweep-uploads', async () => {
      await ctx.uploads.recoverStranded();
      await ctx.tus.recoverStranded();
      await ctx.uploads.sweepExpired();
      await ctx.tus.sweepExpired();
    });
    // Only SQLite keeps ranking snapshots (PostgreSQL pages by keyset).
    if (ctx.database.dialect === 'sqlite') every(60_000, 'sweep-search-snapshots', () => sweepSnapshots(ctx.database.db));
  }
  if (roles.worker) {
    every(60_000, 'requeue-stale-media', () => ctx.worker.requeueStale(60_000));
    every(60_000, 'requeue-stale-follow-ups', () => ctx.worker.requeueStaleFollowUps(Math.max(5 * 60_000, 4 * ctx.settings.jobLease)));
    every(60_000, 'fail-abandoned-media', () => ctx.worker.failAbandoned(Math.max(60_000, 2 * ctx.settings.jobLease)));
    // The embedded queue keeps finished jobs until pruned (BullMQ removes its own).
    if (ctx.queue.backend === 'embedded' && ctx.queue.pruneCompleted) {
      const queue = ctx.queue;
      every(3_600_000, 'prune-completed-jobs', () => queue.pruneCompleted!(7 * 86_400_000));
    }
  }
  return () => timers.forEach(clearInterval);
}

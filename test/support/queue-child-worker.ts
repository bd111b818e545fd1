/**
 * A worker process for the "dead worker" contract test. Settings come from the environment
 * (testEnv().env). It starts a worker whose handler prints `STARTED <job id> <attempt>` on
 * stdout and then hangs forever, so the parent can SIGKILL it while it holds the job.
 */
import { loadSettings } from '../../src/config/settings.js';
import { openQueue } from './queue-backend.js';

const settings = loadSettings(process.env);
const { queue } = await openQueue(settings);
queue.work(
  async (job) => {
    process.stdout.write(`STARTED ${job.id} ${job.attempt}\n`);
    await new Promise<never>(() => {
      setInterval(() => undefined, 60_000);
    });
  },
  { concurrency: 1 },
);
process.stdout.write('READY\n');

/**
 * A process writing media events, for the concurrency tests of the event log. Settings come from
 * the environment (testEnv().env); the arguments:
 *
 *   <tenant> <media> <count>   append `count` events of the tenant, one transaction each; every
 *                              third transaction rolls back after appending. Prints READY once
 *                              the database is open, waits for a line on stdin, then prints DONE.
 */
import { createInterface } from 'node:readline';
import { loadSettings } from '../../src/config/settings.js';
import { openDatabase } from '../../src/db/database.js';
import { appendMediaEvents } from '../../src/events/media-events.js';

const settings = loadSettings(process.env);
const handle = await openDatabase(settings);
const [tenantId, mediaId, count] = process.argv.slice(2);
process.stdout.write('READY\n');
await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
class RolledBack extends Error {}
for (let i = 0; i < Number(count); i++) {
  try {
    await handle.db.transaction().execute(async (tx) => {
      await appendMediaEvents(tx, [{ tenantId: tenantId!, mediaId: mediaId!, type: 'metadata', data: { writer: process.pid, i } }]);
      if (i % 3 === 2) throw new RolledBack();
    });
  } catch (err) {
    if (!(err instanceof RolledBack)) throw err;
  }
}
process.stdout.write('DONE\n');
await handle.close();

/**
 * A process that holds a media lock until it is killed, for the "dead holder" test. Settings
 * come from the environment (testEnv().env); the media id is the first argument. Prints `HELD`
 * once it holds the lock.
 */
import { loadSettings } from '../../src/config/settings.js';
import { openDatabase } from '../../src/db/database.js';
import { openMediaLocks } from '../../src/media/media-lock.js';

const settings = loadSettings(process.env);
const database = await openDatabase(settings);
const locks = await openMediaLocks(database, settings);
const lock = await locks.acquire(process.argv[2]!, 10_000);
if (!lock) throw new Error('the lock was not free');
process.stdout.write('HELD\n');
setInterval(() => undefined, 60_000);

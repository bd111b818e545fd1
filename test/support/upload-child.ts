/**
 * An API process for the crash tests of uploads. Settings come from the environment
 * (testEnv().env); the arguments say what to do, as the tenant's user:
 *
 *   chunk <tenant> <user> <session> <index> <bytes>   send that many bytes of the chunk, print
 *                                                    SENDING, then hang with the send open
 *   complete <tenant> <user> <session>               print COMPLETING and complete the session
 *   serve                                            serve the API on a free port, printing
 *                                                    LISTENING <port>
 *
 * The parent SIGKILLs it at the moment it wants.
 */
import { Readable } from 'node:stream';
import { loadSettings } from '../../src/config/settings.js';
import { createContext } from '../../src/cli/compose.js';
import { buildApp } from '../../src/http/app.js';
import { createLogger } from '../../src/shared/logger.js';

const settings = loadSettings(process.env);
const ctx = await createContext(settings, { log: createLogger(settings.logLevel), migrate: false });
const [mode, tenantId, userId, id, ...rest] = process.argv.slice(2);
const principal = { tenantId: tenantId!, userId: userId!, keyId: 'child', isAdmin: false };

if (mode === 'chunk') {
  const [index, bytes] = rest.map(Number) as [number, number];
  let sent = false;
  const body = new Readable({
    read() {
      if (sent) return; // the rest never comes
      sent = true;
      this.push(Buffer.alloc(bytes, 7));
      process.stdout.write('SENDING\n');
    },
  });
  // Nothing else may keep the process alive while the send hangs.
  setInterval(() => undefined, 60_000);
  await ctx.uploads.putChunk(principal, id!, index, body, {});
} else if (mode === 'complete') {
  process.stdout.write('COMPLETING\n');
  await ctx.uploads.complete(principal, id!);
  process.stdout.write('COMPLETED\n');
} else if (mode === 'serve') {
  const app = await buildApp(ctx);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  process.stdout.write(`LISTENING ${typeof address === 'object' && address ? address.port : 0}\n`);
  await new Promise<never>(() => setInterval(() => undefined, 60_000));
} else {
  throw new Error(`unknown mode ${mode}`);
}
await ctx.close();

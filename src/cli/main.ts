import { Command, Option } from 'commander';
import { loadSettings, parseBytes, settingSpecs, SettingsError, type Settings } from '../config/settings.js';
import { createContext, type AppContext } from './compose.js';
import { openDatabase } from '../db/database.js';
import { migrateToLatest } from '../db/migrate.js';
import { AppError } from '../shared/errors.js';
import { buildApp } from '../http/app.js';
import { createLogger } from '../shared/logger.js';
import { startMaintenance } from './maintenance.js';
import { readBankDocument } from '../labels/bank-document-file.js';

function settingsOrExit(): Settings {
  try {
    return loadSettings();
  } catch (err) {
    if (err instanceof SettingsError) {
      process.stderr.write(`qasar: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

async function withContext<T>(fn: (ctx: AppContext) => Promise<T>): Promise<T> {
  const settings = settingsOrExit();
  const ctx = await createContext(settings, { log: createLogger(process.env.LOG_LEVEL ?? 'warn') });
  try {
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

/** On a first start with no tenant at all, creates one with an admin key and shows the key once. */
async function bootstrap(ctx: AppContext): Promise<void> {
  if ((await ctx.tenancy.countTenants()) > 0) return;
  const tenant = await ctx.tenancy.createTenant('default');
  const key = await ctx.tenancy.createKey({ tenantId: tenant.id, admin: true, name: 'bootstrap admin' });
  const lines = [
    '',
    'Qasar: first start. Created tenant "default" and its admin API key (shown only this once):',
    '',
    `  QASAR_API_KEY=${key.key}`,
    '',
    `  tenant id: ${tenant.id}`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function run(roles: { api: boolean; worker: boolean }): Promise<void> {
  const settings = settingsOrExit();
  const ctx = await createContext(settings);
  const stops: Array<() => Promise<void> | void> = [];
  if (roles.api) {
    await bootstrap(ctx);
    const app = await buildApp(ctx);
    const address = await app.listen({ host: settings.host, port: settings.port });
    const base = settings.publicBaseUrl || address.replace('0.0.0.0', '127.0.0.1');
    process.stdout.write(`Qasar API listening on ${base}${settings.apiPrefix}\nAPI docs: ${base}/docs  (OpenAPI: ${base}/openapi.json)\n`);
    stops.push(() => app.close());
  }
  if (roles.worker) {
    const worker = ctx.worker.start(settings.workerConcurrency, settings.workerFollowupConcurrency);
    ctx.log.info(
      { backend: ctx.queue.backend, concurrency: settings.workerConcurrency, followUpConcurrency: settings.workerFollowupConcurrency },
      'worker started',
    );
    stops.push(() => worker.close());
  }
  stops.push(startMaintenance(ctx, roles));
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    ctx.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    for (const stop of stops.reverse()) await stop();
    await ctx.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

const settingsHelp = `\nSettings (environment variables):\n${settingSpecs.map((s) => `  ${s.env.padEnd(26)} ${s.description} [default: ${s.default === '' ? '(empty)' : s.default}]`).join('\n')}\n`;

const program = new Command();
program
  .name('qasar')
  .description('Qasar Media Server: self-hosted, multi-tenant media uploads, packaging and streaming.')
  .showHelpAfterError()
  .addHelpText('after', settingsHelp);

program
  .command('serve')
  .description('Run the API and the worker in one process (the embedded default: SQLite, local disk, in-process queue).')
  .action(() => run({ api: true, worker: true }));

program
  .command('api')
  .description('Run the HTTP API only (scale-up: several behind a proxy, with PostgreSQL and Redis).')
  .action(() => run({ api: true, worker: false }));

program
  .command('worker')
  .description('Run a processing worker only (scale-up: as many as the CPUs allow).')
  .action(() => run({ api: false, worker: true }));

program
  .command('migrate')
  .description('Apply pending database migrations and exit.')
  .action(async () => {
    const settings = settingsOrExit();
    const db = await openDatabase(settings);
    try {
      printJson({ applied: await migrateToLatest(db) });
    } finally {
      await db.close();
    }
  });

const tenant = program.command('tenant').description('Manage tenants.');
tenant
  .command('create')
  .description('Create a tenant; prints its id as JSON.')
  .argument('<name>', 'unique tenant name')
  .action((name: string) => withContext(async (ctx) => printJson(await ctx.tenancy.createTenant(name))));
tenant
  .command('quota')
  .description("Set a tenant's storage quota (its media originals plus its open uploads' declared sizes); prints it as JSON.")
  .argument('<tenant-id>', 'tenant id')
  .argument('<size>', 'a size such as 50GiB or 500MB, or none')
  .action((tenantId: string, size: string) =>
    withContext(async (ctx) => {
      let bytes: number | null = null;
      if (size.trim().toLowerCase() !== 'none') {
        try {
          bytes = parseBytes(size);
        } catch (err) {
          throw new AppError('validation-failed', (err as Error).message);
        }
      }
      await ctx.tenancy.setQuota(tenantId, bytes);
      printJson({ tenant_id: tenantId, ...(await ctx.tenancy.storageUsage(tenantId)) });
    }),
  );

const key = program.command('key').description('Manage API keys.');
key
  .command('create')
  .description('Create an API key; prints it as JSON. The key is shown only once (only its hash is stored).')
  .requiredOption('--tenant <id>', 'tenant id')
  .option('--user <id>', 'bind the key to this user id')
  .option('--admin', 'a tenant-admin key: may act for any user of the tenant (X-Qasar-User header)', false)
  .option('--name <name>', 'a note to recognise the key by')
  .action((opts: { tenant: string; user?: string; admin: boolean; name?: string }) =>
    withContext(async (ctx) =>
      printJson(
        await ctx.tenancy.createKey({ tenantId: opts.tenant, userId: opts.user ?? null, admin: opts.admin, ...(opts.name ? { name: opts.name } : {}) }),
      ),
    ),
  );
key
  .command('revoke')
  .description('Revoke an API key.')
  .requiredOption('--tenant <id>', 'tenant id')
  .argument('<key-id>', 'the key id printed by key create')
  .action((keyId: string, opts: { tenant: string }) => withContext(async (ctx) => printJson({ revoked: await ctx.tenancy.revokeKey(opts.tenant, keyId) })));

const labelBank = program.command('label-bank').description('Manage global label banks (every tenant sees them unless it has a bank of the same name).');
const globalOnly = (opts: { global?: boolean }) => {
  if (!opts.global) throw new AppError('validation-failed', 'pass --global: tenants manage their own banks through the API');
};
labelBank
  .command('import')
  .description('Create a global bank from a JSON document (the format GET …/label-banks/{id}/export writes); prints it as JSON.')
  .option('--global', 'the bank is global')
  .option('--replace', 'update the global bank of the same name in place', false)
  .argument('<file>', 'the bank document (JSON)')
  .action((file: string, opts: { global?: boolean; replace: boolean }) =>
    withContext(async (ctx) => {
      globalOnly(opts);
      const doc = await readBankDocument(file);
      const { bank, created } = await ctx.labelBanks.import({ global: true }, doc.kind ?? 'general', doc, { replace: opts.replace });
      printJson({ created, bank });
    }),
  );
labelBank
  .command('export')
  .description('Print a global bank as a JSON document.')
  .option('--global', 'the bank is global')
  .argument('<name>', 'the bank name')
  .action((name: string, opts: { global?: boolean }) =>
    withContext(async (ctx) => {
      globalOnly(opts);
      const bank = await ctx.labelBanks.findGlobalByName(name);
      if (!bank) throw new AppError('not-found', `no global label bank named "${name}"`);
      printJson(await ctx.labelBanks.export(null, bank.kind, bank.id));
    }),
  );
labelBank
  .command('list')
  .description('List the global banks as JSON.')
  .option('--global', 'the banks are global')
  .action((opts: { global?: boolean }) =>
    withContext(async (ctx) => {
      globalOnly(opts);
      printJson(await ctx.labelBanks.listGlobal());
    }),
  );
labelBank
  .command('delete')
  .description('Delete a global bank.')
  .option('--global', 'the bank is global')
  .argument('<name>', 'the bank name')
  .action((name: string, opts: { global?: boolean }) =>
    withContext(async (ctx) => {
      globalOnly(opts);
      const bank = await ctx.labelBanks.findGlobalByName(name);
      if (!bank) throw new AppError('not-found', `no global label bank named "${name}"`);
      await ctx.labelBanks.delete({ global: true }, bank.kind, bank.id);
      printJson({ deleted: bank.name });
    }),
  );

const labels = program.command('labels').description('Media labels made by the local models.');
labels
  .command('recompute')
  .description('Run the local models again on every ready media of a tenant (a worker does it); prints how many were queued.')
  .requiredOption('--tenant <id>', 'the tenant')
  .action((opts: { tenant: string }) =>
    withContext(async (ctx) => {
      if (!(await ctx.tenancy.getTenant(opts.tenant))) throw new AppError('not-found', `tenant ${opts.tenant} not found`);
      printJson({ tenant_id: opts.tenant, queued: await ctx.labelRecompute.forTenant(opts.tenant) });
    }),
  );

const jobs = program.command('jobs').description('Inspect the processing queue.');
jobs
  .command('failed')
  .description('List failed jobs as JSON.')
  .addOption(new Option('--limit <n>', 'how many').default('100'))
  .action((opts: { limit: string }) => withContext(async (ctx) => printJson(await ctx.queue.listFailed(Number(opts.limit)))));
jobs
  .command('retry')
  .description('Retry one failed job.')
  .argument('<job-id>')
  .action((jobId: string) => withContext(async (ctx) => printJson({ retried: await ctx.queue.retry(jobId) })));
jobs
  .command('counts')
  .description('Jobs per state, and running jobs per tenant, as JSON.')
  .action(() => withContext(async (ctx) => printJson({ ...(await ctx.queue.counts()), running_by_tenant: await ctx.queue.runningByTenant() })));

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof AppError) {
    process.stderr.write(`qasar: ${err.message}\n`);
    process.exit(1);
  }
  process.stderr.write(`qasar: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});

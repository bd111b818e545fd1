import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { sqliteFile } from '../../src/config/settings.js';
import { insertMedia } from '../support/media-seed.js';
import { BACKEND, startTestApp, type TestApp } from '../support/harness.js';

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * Another process's transaction that changes a media's caption while it holds the row's write
 * lock, and commits `holdMs` later. Resolves `locked` once the change is made (not committed),
 * and `committed` once it is.
 */
async function changeCaptionElsewhere(t: TestApp, mediaId: string, caption: string, holdMs: number): Promise<{ committed: Promise<void> }> {
  const settings = t.env.settings;
  if (settings.databaseUrl.startsWith('sqlite:')) {
    // A child process: the server's SQLite connection blocks its thread while it waits for a lock.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const db = require('better-sqlite3')(process.argv[1]);
         db.prepare('begin immediate').run();
         db.prepare('update mediaassets set caption = ? where id = ?').run(process.argv[3], process.argv[2]);
         process.stdout.write('locked\\n');
         setTimeout(() => { db.prepare('commit').run(); db.close(); process.stdout.write('committed\\n'); }, Number(process.argv[4]));`,
        sqliteFile(settings),
        mediaId,
        caption,
        String(holdMs),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    const seen = (word: string) =>
      new Promise<void>((resolve, reject) => {
        const check = () => out.includes(word) && resolve();
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          check();
        });
        child.on('exit', (code) => (out.includes(word) ? resolve() : reject(new Error(`the locking process exited (${code}) before "${word}"`))));
        check();
      });
    const committed = seen('committed');
    await seen('locked');
    return { committed: committed.then(() => once(child, 'exit')).then(() => undefined) };
  }
  const client = new pg.Client({ connectionString: settings.databaseUrl });
  await client.connect();
  await client.query(`set search_path to "${settings.databaseSchema}"`);
  await client.query('begin');
  await client.query('update mediaassets set caption = $1 where id = $2', [caption, mediaId]);
  const committed = new Promise<void>((resolve, reject) => {
    setTimeout(() => {
      client
        .query('commit')
        .then(() => client.end())
        .then(resolve, reject);
    }, holdMs);
  });
  return { committed };
}

describe(`search documents under concurrent changes (${BACKEND})`, () => {
  let t: TestApp;
  const ids = async (q: string) => {
    const res = await t.app.inject({ url: `/api/v1/search?q=${encodeURIComponent(q)}`, headers: t.auth(t.tenant.userKey) });
    assert.equal(res.statusCode, 200, res.body);
    return (res.json() as { items: { id: string }[] }).items.map((i) => i.id);
  };

  before(async () => {
    t = await startTestApp();
  });
  after(() => t.close());

  it('a rebuild that starts while another transaction changes the media indexes the change, not what was there before', async () => {
    const id = await insertMedia(t, { caption: 'marmalade lighthouse' });
    assert.deepEqual(await ids('marmalade'), [id]);
    // The change is made and holds its lock; the rebuild starts before it commits. Read outside
    // the lock, the rebuild would index the old caption and write it after the commit.
    const { committed } = await changeCaptionElsewhere(t, id, 'quetzal plumage', 1000);
    const rebuild = t.ctx.discovery.indexer.reindexMedia(t.tenant.id, id);
    await Promise.all([rebuild, committed]);
    assert.deepEqual(await ids('quetzal'), [id], 'the document holds the caption committed while it was rebuilt');
    assert.deepEqual(await ids('marmalade'), [], 'and no longer the old one');
  });
});

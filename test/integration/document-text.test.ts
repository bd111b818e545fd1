/**
 * Documents' own words in search, through the worker, on the backend QASAR_TEST_BACKEND names: a
 * PDF's title, author and text layer, an EPUB's title, author and chapters; the cover drawn for an
 * EPUB without one; a PDF whose text cannot be read; documents processed before the upgrade.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Migrator, sql, type Migration } from 'kysely';
import sharp from 'sharp';
import { createContext } from '../../src/cli/compose.js';
import { openDatabase } from '../../src/db/database.js';
import { nowIso, toJson } from '../../src/db/schema.js';
import { buildApp } from '../../src/http/app.js';
import { ftsTableOf } from '../../src/search/search-index.js';
import { createLogger } from '../../src/shared/logger.js';
import { newId } from '../../src/shared/ids.js';
import { BACKEND, mediaSettled, startTestApp, testEnv, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';
import { textPdf } from '../unit/pdf-fixtures.js';
import { epubBook, xhtmlChapter } from '../unit/zip-fixtures.js';

const MIGRATIONS = path.resolve(import.meta.dirname, '../../src/db/migrations');

/** The PDF of these tests: its distinctive words are in its information (title, author) and on its second page only. */
const PDF = textPdf({
  title: 'Cartography of Quiet Harbours',
  author: 'Ilse Vantongeren',
  pages: [['A chart of the northern coast.'], ['Soundings near the zymurgorrax shoals, taken at low water.']],
});

const EPUB = epubBook({
  title: 'The Lanternfish Almanac',
  creators: ['Mirela Oduya'],
  chapters: [
    xhtmlChapter('<h1>Tides</h1><p>The quondamvellichor glows below the thermocline.</p><script>var scriptonlyword = 1;</script>'),
    xhtmlChapter('<p>A second chapter about brinelight.</p>'),
  ],
});

async function upload(t: TestApp, data: Buffer, filename: string, key = t.tenant.userKey): Promise<string> {
  const { completed } = await new SessionClient(t.app, key).uploadWhole(data, { filename });
  assert.equal(completed.statusCode, 201, completed.body);
  return completed.json().id as string;
}

async function searchIds(t: TestApp, q: string, key = t.tenant.userKey): Promise<string[]> {
  const res = await t.app.inject({ url: `/api/v1/search?q=${encodeURIComponent(q)}`, headers: t.auth(key) });
  assert.equal(res.statusCode, 200, res.body);
  return (res.json().items as { id: string }[]).map((i) => i.id);
}

describe(`documents' words are searchable (${BACKEND} backend)`, () => {
  let t: TestApp;
  let pdfId: string;
  let epubId: string;

  before(async () => {
    t = await startTestApp({}, { worker: true });
    pdfId = await upload(t, PDF, 'scan-0042.pdf');
    epubId = await upload(t, EPUB, 'book-7.epub');
    for (const id of [pdfId, epubId]) assert.equal((await mediaSettled(t, t.tenant.userKey, id)).status, 'ready');
  });
  after(() => t?.close());

  it('finds a PDF by a word only its text layer holds, and by its own title and author; another tenant does not', async () => {
    const m = await mediaSettled(t, t.tenant.userKey, pdfId);
    assert.equal(m.kind, 'document');
    assert.equal(m.file_metadata.pages, 2);
    assert.equal(m.title, null, 'the record has no title of its own');
    assert.equal(m.file_metadata.document.title, 'Cartography of Quiet Harbours');
    assert.equal(m.file_metadata.document.author, 'Ilse Vantongeren');
    assert.ok(m.file_metadata.document.text_chars > 60);
    assert.equal(m.file_metadata.document.text_truncated, false);
    assert.equal(JSON.stringify(m.file_metadata).includes('zymurgorrax'), false, 'the text is not in the record');
    for (const q of ['zymurgorrax', 'zymurg', 'soundings shoals', 'cartography harbours', 'vantongeren']) {
      assert.deepEqual(await searchIds(t, q), [pdfId], q);
    }
    assert.deepEqual(await searchIds(t, 'zymurgorrax', t.other.userKey), []);
  });

  it('ranks a title match of a document above a match in its body text only', async () => {
    const titled = await upload(t, textPdf({ title: 'Gullwing Treatise', pages: [['nothing here']] }), 'a.pdf');
    const bodied = await upload(t, textPdf({ title: 'Unrelated', pages: [['the gullwing is mentioned once in the text']] }), 'b.pdf');
    for (const id of [titled, bodied]) assert.equal((await mediaSettled(t, t.tenant.userKey, id)).status, 'ready');
    assert.deepEqual(await searchIds(t, 'gullwing'), [titled, bodied]);
  });

  it('an EPUB without a cover gets one drawn from its title and author (poster and thumbnail at the image sizes), and its words are found', async () => {
    const m = await mediaSettled(t, t.tenant.userKey, epubId);
    assert.equal(m.file_metadata.document.cover_source, 'drawn');
    const pkg = (await t.app.inject({ url: `/api/v1/media/${epubId}/package`, headers: t.auth(t.tenant.userKey) })).json();
    const fetched = async (url: string) => {
      const res = await t.app.inject({ url: new URL(url).pathname });
      assert.equal(res.statusCode, 200, res.body.slice(0, 200));
      return sharp(res.rawPayload).metadata();
    };
    const jpeg = await fetched(pkg.poster.jpeg);
    const webp = await fetched(pkg.poster.webp);
    assert.deepEqual([jpeg.format, jpeg.width, jpeg.height], ['jpeg', 853, 1280]);
    assert.deepEqual([webp.format, webp.width, webp.height], ['webp', 853, 1280]);
    const thumb = await fetched(pkg.thumbnails[0]);
    assert.deepEqual([thumb.format, thumb.width, thumb.height], ['webp', 213, 320]);
    for (const q of ['quondamvellichor', 'brinelight', 'lanternfish almanac', 'oduya']) {
      assert.deepEqual(await searchIds(t, q), [epubId], q);
    }
    assert.deepEqual(await searchIds(t, 'scriptonlyword'), [], 'scripts are not text');
  });

  it("keeps the title a user gave; the document's own title stays a fact, and both are found, through a reprocess", async () => {
    const patch = await t.app.inject({
      method: 'PATCH',
      url: `/api/v1/media/${pdfId}`,
      headers: t.auth(t.tenant.userKey),
      payload: { title: 'Harbour survey scan' },
    });
    assert.equal(patch.statusCode, 200, patch.body);
    const again = await t.app.inject({ method: 'POST', url: `/api/v1/media/${pdfId}/reprocess`, headers: t.auth(t.tenant.userKey) });
    assert.equal(again.statusCode, 202, again.body);
    const m = await mediaSettled(t, t.tenant.userKey, pdfId);
    assert.equal(m.status, 'ready');
    assert.equal(m.title, 'Harbour survey scan');
    assert.equal(m.file_metadata.document.title, 'Cartography of Quiet Harbours');
    for (const q of ['survey', 'cartography', 'zymurgorrax']) assert.deepEqual(await searchIds(t, q), [pdfId], q);
  });

  it('rebuilds a document from its stored text (stale marks, a lost index entry), and forgets the text with the media', async () => {
    const db = t.ctx.database.db;
    await db.insertInto('search_stale').values({ media_id: epubId, tenant_id: t.tenant.id, version: 0 }).execute();
    assert.ok((await t.ctx.discovery.indexer.refreshStale(t.tenant.id)) >= 1);
    assert.deepEqual(await searchIds(t, 'quondamvellichor'), [epubId]);
    await t.ctx.discovery.indexer.removeMedia(t.tenant.id, [epubId]);
    assert.deepEqual(await searchIds(t, 'quondamvellichor'), []);
    await t.ctx.discovery.indexer.backfill();
    assert.deepEqual(await searchIds(t, 'quondamvellichor'), [epubId]);

    assert.equal((await t.app.inject({ method: 'DELETE', url: `/api/v1/media/${epubId}`, headers: t.auth(t.tenant.userKey) })).statusCode, 204);
    assert.deepEqual(await searchIds(t, 'quondamvellichor'), []);
    assert.deepEqual(await db.selectFrom('document_texts').select('media_id').where('media_id', '=', epubId).execute(), []);
  });
});

describe(`a PDF whose text cannot be read (${BACKEND} backend)`, () => {
  let t: TestApp;
  let bin: string;
  let savedPath: string | undefined;

  before(async () => {
    // A pdftotext that never finishes, first on PATH: pdfinfo and pdftoppm are the real ones.
    bin = await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-fake-pdftotext-'));
    await fs.writeFile(path.join(bin, 'pdftotext'), '#!/bin/sh\nexec sleep 60\n', { mode: 0o755 });
    savedPath = process.env.PATH;
    process.env.PATH = `${bin}${path.delimiter}${savedPath}`;
    t = await startTestApp({ DOCUMENT_TIMEOUT: '3s' }, { worker: true });
  });
  after(async () => {
    process.env.PATH = savedPath;
    await t?.close();
    if (bin) await fs.rm(bin, { recursive: true, force: true });
  });

  it('is ready with its pages and poster, says why it has no text, is found by its title, and the worker goes on', async () => {
    const id = await upload(t, textPdf({ title: 'Timeworn Ledger', pages: [['hiddenbodyword'], ['two']] }), 'ledger.pdf');
    const m = await mediaSettled(t, t.tenant.userKey, id);
    assert.equal(m.status, 'ready', JSON.stringify(m.error));
    assert.equal(m.file_metadata.pages, 2);
    assert.ok(m.file_metadata.artifacts.poster, 'the first page is still its poster');
    assert.equal(m.file_metadata.document.text_error, 'reading the text layer took longer than 3 s');
    assert.equal(m.file_metadata.document.text_chars, undefined);
    assert.deepEqual(await searchIds(t, 'timeworn'), [id]);
    assert.deepEqual(await searchIds(t, 'hiddenbodyword'), []);
    const next = await upload(t, Buffer.from('plain words\n'), 'after.txt');
    assert.equal((await mediaSettled(t, t.tenant.userKey, next)).status, 'ready');
  });
});

describe(`documents processed before the upgrade (${BACKEND} backend)`, () => {
  it('are found by their own title and author once the server starts again', async () => {
    const env = await testEnv();
    try {
      const handle = await openDatabase(env.settings);
      const tenantId = newId();
      const mediaId = newId();
      try {
        const files = (await fs.readdir(MIGRATIONS)).filter((f) => /^\d{4}_.*\.ts$/.test(f)).sort();
        const migrations: Record<string, Migration> = {};
        for (const f of files) {
          const m = (await import(path.join(MIGRATIONS, f))) as { up(db: unknown, dialect: string): Promise<void> };
          migrations[f.replace(/\.ts$/, '')] = { up: (db) => m.up(db, handle.dialect) };
        }
        const migrator = new Migrator({
          db: handle.db,
          provider: { getMigrations: async () => migrations },
          ...(handle.schema ? { migrationTableSchema: handle.schema } : {}),
        });
        const last = files
          .map((f) => f.replace(/\.ts$/, ''))
          .filter((n) => n < '0015')
          .at(-1)!;
        assert.equal((await migrator.migrateTo(last)).error, undefined);
        const db = handle.db as any;
        const at = nowIso();
        await db.insertInto('tenants').values({ id: tenantId, name: 'before', created_at: at }).execute();
        await db
          .insertInto('mediaassets')
          .values({
            id: mediaId,
            tenant_id: tenantId,
            user_id: 'alice',
            status: 'ready',
            kind: 'document',
            original_filename: 'old.pdf',
            mime_type: 'application/pdf',
            size: 1,
            sha256: '0',
            user_tags: toJson([]),
            file_metadata: toJson({
              title: 'Perihelion Gazetteer',
              document: { format: 'pdf', pages: 1, title: 'Perihelion Gazetteer', author: 'Tamsin Oakhurst' },
            }),
            created_at: at,
            updated_at: at,
          })
          .execute();
        // Its search document as the version before made it: file name words only.
        if (handle.dialect === 'postgres') {
          await sql`insert into media_search (media_id, tenant_id, document, indexed_at) values (${mediaId}, ${tenantId}, to_tsvector('simple', 'old pdf'), ${at})`.execute(
            db,
          );
        } else {
          const fts = sql.raw(ftsTableOf(tenantId));
          await sql`create virtual table ${fts} using fts5(title, filename, caption, description, tags, labels, tracks, tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3')`.execute(
            db,
          );
          const row = await sql<{
            id: number;
          }>`insert into media_search_docs (media_id, tenant_id, indexed_at) values (${mediaId}, ${tenantId}, ${at}) returning id`.execute(db);
          await sql`insert into ${fts} (rowid, title, filename, caption, description, tags, labels, tracks) values (${row.rows[0]!.id}, '', 'old pdf', '', '', '', '', '')`.execute(
            db,
          );
        }
      } finally {
        await handle.close();
      }

      const ctx = await createContext(env.settings, { log: createLogger(env.settings.logLevel) });
      try {
        const app = await buildApp(ctx);
        await app.ready();
        const key = await ctx.tenancy.createKey({ tenantId, userId: 'alice' });
        const found = async (q: string) => {
          const res = await app.inject({ url: `/api/v1/search?q=${encodeURIComponent(q)}`, headers: { authorization: `Bearer ${key.key}` } });
          assert.equal(res.statusCode, 200, res.body);
          return (res.json().items as { id: string }[]).map((i) => i.id);
        };
        for (const q of ['perihelion gazetteer', 'oakhurst', 'old']) assert.deepEqual(await found(q), [mediaId], q);
        await app.close();
      } finally {
        await ctx.close();
      }
    } finally {
      await env.cleanup();
    }
  });
});

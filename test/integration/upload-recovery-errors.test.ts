import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { expectProblem, startTestApp, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const MiB = 1024 * 1024;
/** A holder that cannot be judged from here (another machine): only its expiry counts. */
const ELSEWHERE = 'elsewhere|other-machine|other-boot|pid:[1]|1|1';

/**
 * Failures while a `completing` session is taken up or lost: the client gets a problem, never a
 * 500, and the session stays recoverable.
 */
describe('upload completion: failures while taking up or losing a completion', () => {
  let t: TestApp;
  let client: SessionClient;

  before(async () => {
    t = await startTestApp();
    client = new SessionClient(t.app, t.tenant.userKey);
  });
  after(() => t.close());

  async function sentSession(): Promise<string> {
    const data = randomBytes(2 * MiB);
    const created = await client.create({ filename: 'two.bin', total_size: data.length, chunk_size: MiB });
    assert.equal(created.statusCode, 201, created.body);
    const id = created.json().session_id as string;
    for (const i of [0, 1]) assert.equal((await client.putChunk(id, i, data.subarray(i * MiB, (i + 1) * MiB))).statusCode, 200);
    return id;
  }

  const stateOf = async (id: string) =>
    (await t.ctx.database.db.selectFrom('upload_sessions').select('state').where('id', '=', id).executeTakeFirstOrThrow()).state;

  it('answers 409 upload-busy when a stranded session cannot be taken up yet, and the next sweep takes it up', async () => {
    const id = await sentSession();
    // A completion that died after handing the data file off, on another machine, its lease lapsed.
    const dir = t.ctx.layout.sessionChunkDir(t.tenant.id, id);
    const handoff = path.join(t.ctx.layout.tmpDir(), `${id}.upload`);
    await fsp.mkdir(t.ctx.layout.tmpDir(), { recursive: true });
    await fsp.rename(t.ctx.layout.sessionDataFile(t.tenant.id, id), handoff);
    await t.ctx.database.db
      .updateTable('upload_sessions')
      .set({ state: 'completing', lease_owner: ELSEWHERE, lease_until: new Date(Date.now() - 60_000).toISOString(), pending_media_id: null })
      .where('id', '=', id)
      .execute();
    // Its folder is out of reach for now: the data file cannot be put back.
    await fsp.rename(dir, `${dir}.away`);
    try {
      expectProblem(await client.complete(id), 409, 'upload-busy');
      expectProblem(await client.abort(id), 409, 'upload-busy');
      assert.equal(await stateOf(id), 'completing');
    } finally {
      await fsp.rename(`${dir}.away`, dir);
    }
    assert.equal(await t.ctx.uploads.recoverStranded(), 1, 'the failed attempt let go of the session at once');
    assert.equal(await stateOf(id), 'open');
    const completed = await client.complete(id);
    assert.equal(completed.statusCode, 201, completed.body);
  });

  /** Another process takes over every completion of this protocol the moment it is claimed. */
  async function stealCompletions(protocol: 'chunked' | 'tus'): Promise<() => Promise<void>> {
    const db = t.ctx.database.db;
    if (t.ctx.database.dialect === 'postgres') {
      await sql
        .raw(
          `create function steal_completion() returns trigger language plpgsql as $$ begin new.lease_owner := '${ELSEWHERE}'; return new; end $$;` +
            `create trigger steal_completion before update on upload_sessions for each row when (new.state = 'completing' and new.protocol = '${protocol}') execute function steal_completion();`,
        )
        .execute(db);
      return async () => void (await sql.raw('drop trigger steal_completion on upload_sessions; drop function steal_completion();').execute(db));
    }
    await sql
      .raw(
        `create trigger steal_completion after update of state on upload_sessions when new.state = 'completing' and new.protocol = '${protocol}' ` +
          `begin update upload_sessions set lease_owner = '${ELSEWHERE}' where id = new.id; end`,
      )
      .execute(db);
    return async () => void (await sql.raw('drop trigger steal_completion').execute(db));
  }

  /** Makes this process's completions fail on a file operation: their staging folder is a file. */
  async function breakStaging(): Promise<() => Promise<void>> {
    const tmp = t.ctx.layout.tmpDir();
    await fsp.mkdir(tmp, { recursive: true });
    await fsp.rename(tmp, `${tmp}.away`);
    await fsp.writeFile(tmp, 'not a folder');
    return async () => {
      await fsp.rm(tmp);
      await fsp.rename(`${tmp}.away`, tmp);
    };
  }

  it('answers 409 upload-busy, not the raw error, when another process took the completion over while it failed', async () => {
    const id = await sentSession();
    const unsteal = await stealCompletions('chunked');
    const unbreak = await breakStaging();
    try {
      expectProblem(await client.complete(id), 409, 'upload-busy');
    } finally {
      await unbreak();
      await unsteal();
    }
    assert.equal(await stateOf(id), 'completing', 'left to the process that took it over');
  });

  it('answers a tus finish that another process took over while it failed with 409 upload-busy', async () => {
    const unsteal = await stealCompletions('tus');
    const unbreak = await breakStaging();
    try {
      const data = randomBytes(4096);
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/tus',
        headers: {
          ...t.auth(t.tenant.userKey),
          'tus-resumable': '1.0.0',
          'upload-length': String(data.length),
          'upload-metadata': `filename ${Buffer.from('t.bin').toString('base64')}`,
          'content-type': 'application/offset+octet-stream',
        },
        payload: data,
      });
      assert.equal(res.statusCode, 409, res.body);
      assert.match(res.body, /^upload-busy/);
    } finally {
      await unbreak();
      await unsteal();
    }
  });
});

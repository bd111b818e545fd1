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

  it('answers 409 upload-busy, not the raw error, when another process took the completion over while it failed', async () => {
    const id = await sentSession();
    // Another process takes the completion over the moment it is claimed.
    const dialect = t.ctx.database.dialect;
    const db = t.ctx.database.db;
    if (dialect === 'postgres') {
      await sql
        .raw(
          `create function steal_completion() returns trigger language plpgsql as $$ begin new.lease_owner := '${ELSEWHERE}'; return new; end $$;` +
            `create trigger steal_completion before update on upload_sessions for each row when (new.state = 'completing' and new.id = '${id}') execute function steal_completion();`,
        )
        .execute(db);
    } else {
      await sql
        .raw(
          `create trigger steal_completion after update of state on upload_sessions when new.state = 'completing' and new.id = '${id}' ` +
            `begin update upload_sessions set lease_owner = '${ELSEWHERE}' where id = new.id; end`,
        )
        .execute(db);
    }
    // And this process's completion then fails on a file operation (its staging folder is a file).
    const tmp = t.ctx.layout.tmpDir();
    await fsp.mkdir(tmp, { recursive: true });
    await fsp.rename(tmp, `${tmp}.away`);
    await fsp.writeFile(tmp, 'not a folder');
    try {
      expectProblem(await client.complete(id), 409, 'upload-busy');
    } finally {
      await fsp.rm(tmp);
      await fsp.rename(`${tmp}.away`, tmp);
      await sql.raw(dialect === 'postgres' ? 'drop trigger steal_completion on upload_sessions; drop function steal_completion();' : 'drop trigger steal_completion').execute(db);
    }
    assert.equal(await stateOf(id), 'completing', 'left to the process that took it over');
  });
});

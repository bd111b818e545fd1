import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readImageHeader } from '../../src/processing/image/image-header.js';
import { publicReason, scrubPaths } from '../../src/processing/public-reason.js';
import { ToolFailure } from '../../src/tools/tool-failure.js';
import { PermanentJobError } from '../../src/shared/errors.js';

describe('reasons people read on a failed media', () => {
  let root: string;

  before(async () => {
    // A storage root with spaces in its name, as an operator may well choose.
    root = path.join(await fs.mkdtemp(path.join(os.tmpdir(), 'qasar-reason-')), 'my media', 'qasar store');
    await fs.mkdir(path.join(root, 't1', 'alice', 'm1', 'media'), { recursive: true });
  });
  after(async () => {
    await fs.rm(path.dirname(path.dirname(root)), { recursive: true, force: true });
  });

  it('removes a storage root with spaces, and any path under it, whole', () => {
    const file = `${root}/t1/alice/m1/media/original.mp4`;
    assert.equal(scrubPaths(`${file}: Invalid data found`, root), '(file): Invalid data found');
    assert.equal(scrubPaths(`cannot open '${file}' for reading`, root), "cannot open '(file)' for reading");
    assert.equal(scrubPaths(`nothing was written in ${root}.`, root), 'nothing was written in (file).');
    assert.equal(scrubPaths(`nothing was written in ${root}/.`, root), 'nothing was written in (file).');
    // A root given with a trailing slash is the same root.
    assert.equal(scrubPaths(`${file} is short`, `${root}/`), '(file) is short');
    // Other absolute paths still go, up to a space.
    assert.equal(scrubPaths(`${file} and /usr/lib/x.so broke`, root), '(file) and (file) broke');
    assert.equal(publicReason(new PermanentJobError(`bad: ${file}: Invalid data`, 'x'), 1, root), 'bad: (file): Invalid data');
  });

  it('says a broken image is unreadable in plain words, and keeps what libvips said for the logs', async () => {
    const file = path.join(root, 't1', 'alice', 'm1', 'media', 'original.png');
    await fs.writeFile(
      file,
      Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('0000000d49484452', 'hex'), randomBytes(3_000)]),
    );
    await assert.rejects(readImageHeader(file), (err: unknown) => {
      assert.ok(err instanceof ToolFailure, `a ToolFailure, got ${String(err)}`);
      assert.equal(err.code, 'unreadable-media');
      assert.equal(err.message, 'the file is not a readable image: it is damaged or not in a format that can be read');
      assert.ok(err.detail.length > 0, 'the library message is kept as detail');
      assert.doesNotMatch(publicReason(err, 1, root), /qasar store|my media|vips|png/i);
      return true;
    });
  });
});

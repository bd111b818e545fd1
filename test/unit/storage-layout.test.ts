import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { assertKey, joinKey, keyBelow, mediaPrefix, originalKey, StorageLayout, UnsafePathError, safeJoin } from '../../src/storage/layout.js';
import { validateFilename } from '../../src/uploads/filename.js';
import { AppError } from '../../src/shared/errors.js';

describe('storage layout', () => {
  const layout = new StorageLayout('/srv/q', '.chunks');
  const ref = { tenantId: 't1', userId: 'alice', mediaId: 'm1' };

  it('puts each media under <root>/<tenant>/<user>/<media>/<folder>', () => {
    assert.equal(layout.mediaDir(ref), path.resolve('/srv/q/t1/alice/m1'));
    assert.equal(layout.mediaFolder(ref, 'hls'), path.resolve('/srv/q/t1/alice/m1/hls'));
    assert.equal(layout.originalFile(ref, 'mp4'), path.resolve('/srv/q/t1/alice/m1/media/original.mp4'));
    assert.equal(layout.chunkFile('t1', 's1', 3), path.resolve('/srv/q/.chunks/t1/s1/3.chunk'));
    assert.equal(layout.relative(layout.originalFile(ref, 'mp4')), 't1/alice/m1/media/original.mp4');
  });

  it('never builds a path from a hostile id or extension', () => {
    for (const bad of ['..', '../x', 'a/b', '', '.hidden', 'a\0b', 'x'.repeat(200)]) {
      assert.throws(() => layout.mediaDir({ ...ref, mediaId: bad }), UnsafePathError, bad);
      assert.throws(() => layout.mediaDir({ ...ref, userId: bad }), UnsafePathError, bad);
    }
    assert.equal(path.basename(layout.originalFile(ref, '../../etc')), 'original.bin');
    assert.throws(() => layout.chunkFile('t1', 's1', -1), UnsafePathError);
  });

  it('names stored files by keys that mirror the folders', () => {
    assert.equal(mediaPrefix(ref), 't1/alice/m1');
    assert.equal(originalKey(ref, 'mp4'), 't1/alice/m1/media/original.mp4');
    assert.equal(originalKey(ref, '../../etc'), 't1/alice/m1/media/original.bin');
    assert.equal(layout.relative(layout.originalFile(ref, 'mp4')), originalKey(ref, 'mp4'));
    assert.equal(joinKey('t1/alice/m1', 'hls/master.m3u8'), 't1/alice/m1/hls/master.m3u8');
    assert.equal(joinKey('', 'hls/master.m3u8'), 'hls/master.m3u8');
    assert.equal(keyBelow('t1/alice/m1/hls/master.m3u8', 't1/alice/m1'), 'hls/master.m3u8');
    assert.equal(keyBelow('t1/alice/m10/hls/master.m3u8', 't1/alice/m1'), undefined);
    assert.equal(keyBelow('t1/alice/m1', 't1/alice/m1'), undefined);
    for (const bad of ['', '/etc/passwd', '..', 'a/../b', 'a//b', 'a/./b', 'a/.work-x', 'a\\b', 'a/b\0', 'x'.repeat(1025)]) {
      assert.throws(() => assertKey(bad), UnsafePathError, JSON.stringify(bad));
    }
    assert.throws(() => mediaPrefix({ ...ref, mediaId: '..' }), UnsafePathError);
  });

  it('refuses joins that leave the root', () => {
    assert.throws(() => safeJoin('/srv/q', '..', 'etc'), UnsafePathError);
    assert.throws(() => safeJoin('/srv/q', '/etc/passwd'), UnsafePathError);
    assert.equal(safeJoin('/srv/q', 'a', 'b'), path.resolve('/srv/q/a/b'));
  });
});

describe('client file names', () => {
  it('keeps ordinary names, including unicode and spaces', () => {
    assert.equal(validateFilename('  Holiday clip (1).MP4 '), 'Holiday clip (1).MP4');
    assert.equal(validateFilename('vidéo-été.mov'), 'vidéo-été.mov');
  });
  for (const bad of ['../etc/passwd', '..', 'a/b.mp4', 'a\\b.mp4', 'bad\u0000name', 'tab\tname', 'new\nline', '', ' ', 'x'.repeat(256)]) {
    it(`refuses ${JSON.stringify(bad).slice(0, 30)}`, () => {
      assert.throws(
        () => validateFilename(bad),
        (e: unknown) => e instanceof AppError && e.slug === 'invalid-filename',
      );
    });
  }
});

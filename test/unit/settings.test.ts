import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadSettings, parseBytes, parseDuration, settingSpecs, SettingsError } from '../../src/config/settings.js';

describe('settings', () => {
  it('has working defaults for the embedded mode', () => {
    const s = loadSettings({});
    assert.equal(s.apiPrefix, '/api/v1');
    assert.equal(s.databaseUrl, 'sqlite:./data/qasar.sqlite');
    assert.equal(s.redisUrl, '');
    assert.equal(s.chunkTmpDirName, '.chunks');
    assert.equal(s.enableHls, true);
    assert.equal(s.port, 8000);
    assert.equal(s.uploadDefaultChunkSize, 8 * 1024 * 1024);
    assert.equal(s.uploadSessionExpiry, 24 * 3_600_000);
    assert.equal(s.uploadMaxOpenPerUser, 20);
    assert.equal(s.storageMinFree, 256 * 1024 * 1024);
    assert.ok(path.isAbsolute(s.storageRoot));
  });

  it('parses the seed names', () => {
    const s = loadSettings({
      DATABASE_URL: 'postgres://u@db:5432/q',
      REDIS_URL: 'redis://cache:6379/2',
      STORAGE_ROOT: '/srv/qasar',
      FILE_BASE_URL: 'https://cdn.example.org/media/',
      CHUNK_TMP_DIR_NAME: '.parts',
      ENABLE_HLS: 'false',
      ENABLE_DASH: '0',
      ENABLE_WEBM: 'no',
      ENABLE_THUMBNAILS: 'off',
      ENABLE_POSTERS: 'true',
      ENABLE_TRANSCRIPTS: 'yes',
      ENABLE_WEBP: '1',
      ENABLE_WORKER_LABELING: 'true',
      LABELING_FPS: '0.5',
      LABELING_THRESHOLD: '0.7',
      LABELING_SOURCE: 'frames',
      API_PREFIX: '/media-api/v2',
      UPLOAD_MAX_SIZE: '2GiB',
      TRUST_PROXY: '2',
      CORS_ORIGINS: 'https://a.example, https://b.example',
    });
    assert.equal(s.fileBaseUrl, 'https://cdn.example.org/media');
    assert.equal(s.chunkTmpDirName, '.parts');
    assert.deepEqual([s.enableHls, s.enableDash, s.enableWebm, s.enableThumbnails], [false, false, false, false]);
    assert.deepEqual([s.enablePosters, s.enableTranscripts, s.enableWebp, s.enableWorkerLabeling], [true, true, true, true]);
    assert.equal(s.labelingFps, 0.5);
    assert.equal(s.labelingSource, 'frames');
    assert.equal(s.apiPrefix, '/media-api/v2');
    assert.equal(s.uploadMaxSize, 2 * 1024 ** 3);
    assert.equal(s.trustProxy, 2);
    assert.deepEqual(s.corsOrigins, ['https://a.example', 'https://b.example']);
  });

  for (const [env, value] of [
    ['ENABLE_HLS', 'maybe'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://x'],
    ['REDIS_URL', 'http://x'],
    ['UPLOAD_MAX_SIZE', 'lots'],
    ['UPLOAD_SESSION_EXPIRY', 'forever'],
    ['LABELING_THRESHOLD', '1.5'],
    ['API_PREFIX', 'api/'],
    ['CHUNK_TMP_DIR_NAME', '../up'],
    ['FILE_BASE_URL', 'ftp://x'],
    ['UPLOAD_MAX_OPEN_PER_USER', '0'],
    ['STORAGE_MIN_FREE', 'plenty'],
  ] as const) {
    it(`refuses a bad ${env} naming it`, () => {
      assert.throws(
        () => loadSettings({ [env]: value }),
        (err: unknown) => err instanceof SettingsError && err.setting === env && err.message.startsWith(`invalid setting ${env}:`),
      );
    });
  }

  it('checks chunk bounds against each other', () => {
    assert.throws(() => loadSettings({ UPLOAD_MIN_CHUNK_SIZE: '10MiB', UPLOAD_MAX_CHUNK_SIZE: '1MiB' }), /UPLOAD_MIN_CHUNK_SIZE/);
    assert.throws(() => loadSettings({ UPLOAD_DEFAULT_CHUNK_SIZE: '1KiB' }), /UPLOAD_DEFAULT_CHUNK_SIZE/);
  });

  it('keeps a cached search ranking well inside the hour its cursors live', () => {
    assert.throws(() => loadSettings({ SEARCH_CACHE_TTL: '11m' }), /SEARCH_CACHE_TTL/);
    assert.equal(loadSettings({ SEARCH_CACHE_TTL: '10m' }).searchCacheTtl, 600_000);
  });

  it('parses sizes and durations with units', () => {
    assert.equal(parseBytes('512'), 512);
    assert.equal(parseBytes('1.5KiB'), 1536);
    assert.equal(parseBytes('8M'), 8 * 1024 * 1024);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('15m'), 900_000);
    assert.equal(parseDuration('2d'), 172_800_000);
    assert.throws(() => parseBytes('-1'));
    assert.throws(() => parseDuration('1w'));
  });

  it('is documented in the README, every setting', () => {
    const readme = fs.readFileSync(path.resolve(import.meta.dirname, '../../README.md'), 'utf8');
    const missing = settingSpecs.filter((s) => !readme.includes(`\`${s.env}\``)).map((s) => s.env);
    assert.deepEqual(missing, []);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { redactTokens } from '../../src/shared/logger.js';

const ID = '01a25124-6ad0-750f-be60-3736597fa905';
const TOKEN = `${ID}.tpp2li.iHWssB2dcYvjEKYGbZGa11p-gMG-3jZLFiBsk_ZSPEc`;

describe('log redaction of playback tokens', () => {
  it('replaces tokens in playback paths, query parameters and anywhere else, keeping the media id', () => {
    assert.equal(redactTokens(`"url":"/play/${TOKEN}/hls/master.m3u8"`), `"url":"/play/${ID}.[redacted]/hls/master.m3u8"`);
    assert.equal(redactTokens('GET /play/not-a-token/x'), 'GET /play/[redacted]/x');
    assert.equal(redactTokens(`/x?a=1&token=${TOKEN}&access_token=abc#f`), '/x?a=1&token=[redacted]&access_token=[redacted]#f');
    assert.equal(redactTokens(`bad token ${TOKEN} seen`), `bad token ${ID}.[redacted] seen`);
  });

  it('leaves lines without tokens alone', () => {
    const line = `{"msg":"request completed","url":"/api/v1/media/${ID}/files/hls/master.m3u8","playback":"/players/x"}`;
    assert.equal(redactTokens(line), line);
  });
});

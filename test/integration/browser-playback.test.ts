/**
 * Real-browser playback: Debian's Chromium (driven by playwright-core, never a downloaded
 * browser) plays the signed playback URLs of a processed video with hls.js (HLS) and
 * shaka-player (DASH), and natively (WebM). The test page and the player libraries come from a
 * throw-away server on another loopback port, so every playback request is cross-origin and
 * CORS is exercised as a real player meets it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { startTestApp, waitFor, type TestApp } from '../support/harness.js';
import { SessionClient } from '../support/upload-client.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const ROOT = path.resolve(import.meta.dirname, '../..');
const LIBS: Record<string, string> = {
  '/hls.min.js': path.join(ROOT, 'node_modules/hls.js/dist/hls.min.js'),
  '/shaka-player.compiled.js': path.join(ROOT, 'node_modules/shaka-player/dist/shaka-player.compiled.js'),
};
/** Seconds of currentTime each player must reach. */
const PLAY_SECONDS = 3;
const SOURCE_SECONDS = 12;

/**
 * The page's side: plain browser JavaScript, driven by the test through `window.qasar`.
 * Every call returns JSON-safe state; the assertions live in the test.
 */
const PAGE_SCRIPT = String.raw`
'use strict';
const state = {};
function describeError(e) {
  if (!e) return String(e);
  if (typeof e !== 'object') return String(e);
  return e.message || e.name || JSON.stringify(e);
}
function freshVideo(id) {
  document.querySelectorAll('video').forEach((v) => { v.pause(); v.removeAttribute('src'); v.load(); v.remove(); });
  const v = document.createElement('video');
  v.id = id; v.muted = true; v.autoplay = true; v.playsInline = true; v.width = 640; v.height = 360;
  v.addEventListener('error', () => { state.videoErrors.push(v.error ? v.error.code + ' ' + v.error.message : 'unknown'); });
  document.body.appendChild(v);
  state.video = v;
  state.videoErrors = [];
  state.playErrors = [];
  return v;
}
function startPlaying(v) {
  v.play().catch((e) => state.playErrors.push(describeError(e)));
}
function videoStatus() {
  const v = state.video;
  if (!v) return null;
  const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : undefined;
  return {
    currentTime: v.currentTime, duration: v.duration, readyState: v.readyState, paused: v.paused, ended: v.ended,
    videoWidth: v.videoWidth, videoHeight: v.videoHeight, droppedFrames: q ? q.droppedVideoFrames : null,
    totalFrames: q ? q.totalVideoFrames : null, errors: state.videoErrors, playErrors: state.playErrors,
  };
}
window.qasar = {
  status() {
    return JSON.parse(JSON.stringify({ video: videoStatus(), hls: state.hlsState || null, shaka: state.shakaState || null }));
  },
  async hlsStart(url) {
    await this.stopAll();
    const v = freshVideo('hls');
    const s = { version: Hls.version, supported: Hls.isSupported(), manifestParsed: false, levels: [], errors: [], switched: [], currentLevel: null, requested: null };
    state.hlsState = s;
    if (!s.supported) return this.status();
    // Always hls.js over MSE: never video.src = m3u8, even though Chromium says "maybe".
    const hls = new Hls({ debug: false });
    state.hls = hls;
    hls.on(Hls.Events.ERROR, (_e, d) => {
      s.errors.push({ type: d.type, details: d.details, fatal: !!d.fatal, code: d.response ? d.response.code : null,
        url: d.url || (d.context && d.context.url) || (d.frag && d.frag.url) || null, reason: d.reason || (d.error && d.error.message) || null });
    });
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, d) => {
      s.manifestParsed = true;
      s.levels = d.levels.map((l) => ({ width: l.width, height: l.height, bitrate: l.bitrate, codecs: [l.videoCodec, l.audioCodec].filter(Boolean).join(',') }));
      startPlaying(v);
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_e, d) => { s.switched.push(d.level); s.currentLevel = d.level; });
    hls.loadSource(url);
    hls.attachMedia(v);
    return this.status();
  },
  hlsSwitch(level) {
    state.hlsState.requested = { level, afterSwitches: state.hlsState.switched.length, atTime: state.video.currentTime };
    state.hls.currentLevel = level;
    return this.status();
  },
  async shakaStart(url) {
    await this.stopAll();
    const v = freshVideo('shaka');
    shaka.polyfill.installAll();
    const s = { version: shaka.Player.version, supported: shaka.Player.isBrowserSupported(), loaded: false, tracks: [], errors: [] };
    state.shakaState = s;
    if (!s.supported) return this.status();
    const player = new shaka.Player();
    state.shaka = player;
    const err = (e) => ({ code: e && e.code, category: e && e.category, severity: e && e.severity,
      data: ((e && e.data) || []).map((x) => (x !== null && typeof x === 'object' ? describeError(x) : x)), message: describeError(e) });
    player.addEventListener('error', (ev) => s.errors.push(err(ev.detail)));
    try {
      await player.attach(v);
      await player.load(url);
      s.loaded = true;
      s.tracks = player.getVariantTracks().map((t) => ({ width: t.width, height: t.height, bandwidth: t.bandwidth, codecs: t.codecs }));
      startPlaying(v);
    } catch (e) {
      s.errors.push(err(e));
    }
    return this.status();
  },
  async nativeStart(url) {
    await this.stopAll();
    const v = freshVideo('native');
    v.src = url;
    startPlaying(v);
    return this.status();
  },
  async stopAll() {
    if (state.hls) { state.hls.destroy(); state.hls = undefined; }
    if (state.shaka) { const p = state.shaka; state.shaka = undefined; await p.destroy(); }
  },
};
`;

const PAGE_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Qasar playback test</title><link rel="icon" href="data:,">
<script src="/hls.min.js"></script>
<script src="/shaka-player.compiled.js"></script>
</head><body style="margin:0;background:#000">
<script>${PAGE_SCRIPT}</script>
</body></html>`;

interface VideoStatus {
  currentTime: number;
  duration: number;
  readyState: number;
  paused: boolean;
  ended: boolean;
  videoWidth: number;
  videoHeight: number;
  droppedFrames: number | null;
  totalFrames: number | null;
  errors: string[];
  playErrors: string[];
}
interface HlsError {
  type: string;
  details: string;
  fatal: boolean;
  code: number | null;
  url: string | null;
  reason: string | null;
}
interface HlsState {
  version: string;
  supported: boolean;
  manifestParsed: boolean;
  levels: Array<{ width: number; height: number; bitrate: number; codecs: string }>;
  errors: HlsError[];
  switched: number[];
  currentLevel: number | null;
  requested: { level: number; afterSwitches: number; atTime: number } | null;
}
interface ShakaState {
  version: string;
  supported: boolean;
  loaded: boolean;
  tracks: Array<{ width: number; height: number; bandwidth: number; codecs: string }>;
  errors: Array<{ code: number; category: number; severity: number; data: unknown[]; message: string }>;
}
interface PageStatus {
  video: VideoStatus | null;
  hls: HlsState | null;
  shaka: ShakaState | null;
}

interface Package {
  media_id: string;
  status: string;
  hls: string | null;
  dash: string | null;
  webm: string | null;
  pending: string[];
}

/** A throw-away static server for the test page and the player libraries (another origin than the app). */
async function startPageServer(): Promise<{ origin: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/' || url.pathname === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE_HTML);
      return;
    }
    const lib = LIBS[url.pathname];
    if (!lib) {
      res.writeHead(404).end();
      return;
    }
    fs.readFile(lib).then(
      (body) => res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(body),
      () => res.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('browser playback in Chromium (hls.js, shaka-player, native WebM)', () => {
  let t: TestApp;
  let appOrigin: string;
  let page: Page;
  let context: BrowserContext | undefined;
  let pageServer: { origin: string; close(): Promise<void> } | undefined;
  let mediaId: string;
  let pkg: Package;
  const pageErrors: string[] = [];
  const timings: Record<string, number> = {};

  async function call<T = PageStatus>(fn: string, ...args: unknown[]): Promise<T> {
    return (await page.evaluate(`window.qasar.${fn}(...${JSON.stringify(args)})`)) as T;
  }
  const status = () => call<PageStatus>('status');

  /** Polls the page until `done` says yes; fails early on what `failed` reports, and on timeout with the last state. */
  async function untilPage(
    what: string,
    done: (s: PageStatus) => boolean,
    failed: (s: PageStatus) => string | undefined,
    timeoutMs: number,
  ): Promise<PageStatus> {
    const start = Date.now();
    for (;;) {
      const s = await status();
      const why = failed(s);
      if (why) assert.fail(`${what}: ${why}\n${JSON.stringify(s, null, 1)}`);
      if (done(s)) return s;
      if (Date.now() - start > timeoutMs) assert.fail(`timed out waiting for ${what}\n${JSON.stringify(s, null, 1)}\npage errors: ${pageErrors.join('; ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  before(async () => {
    let mark = Date.now();
    const lap = (name: string) => {
      timings[name] = Date.now() - mark;
      mark = Date.now();
    };
    t = await startTestApp({ ENABLE_WEBM: 'true' }, { worker: true });
    const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
    appOrigin = new URL(address).origin;

    const source = path.join(t.env.tmp, 'testsrc.mp4');
    await run('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=1280x720:rate=30:duration=${SOURCE_SECONDS}`,
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:sample_rate=48000:duration=${SOURCE_SECONDS}`,
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-g',
      '60',
      '-c:a',
      'aac',
      '-b:a',
      '96k',
      '-shortest',
      '-movflags',
      '+faststart',
      source,
    ]);
    lap('generate_ms');

    const client = new SessionClient(t.app, t.tenant.userKey);
    const { completed } = await client.uploadWhole(await fs.readFile(source), { filename: 'testsrc.mp4', chunkSize: 1024 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    mediaId = completed.json().id;
    lap('upload_ms');
    const media = async () => (await t.app.inject({ url: `/api/v1/media/${mediaId}`, headers: t.auth(t.tenant.userKey) })).json();
    const done = await waitFor(
      'video ready',
      async () => {
        const m = await media();
        // Ready, and the WebM that follows it published (pending no longer lists it).
        return (m.status === 'error' || (m.status === 'ready' && !(m.file_metadata.pending ?? []).length)) && m;
      },
      180_000,
    );
    assert.equal(done.status, 'ready', JSON.stringify(done.error));
    lap('process_ms');

    // The package over real HTTP: its URLs are built from the Host the client used.
    const res = await fetch(`${appOrigin}/api/v1/media/${mediaId}/package`, { headers: t.auth(t.tenant.userKey) });
    assert.equal(res.status, 200, await res.clone().text());
    pkg = (await res.json()) as Package;
    assert.ok(pkg.hls?.startsWith(`${appOrigin}/play/`), `hls URL: ${pkg.hls}`);
    assert.ok(pkg.dash?.startsWith(`${appOrigin}/play/`), `dash URL: ${pkg.dash}`);

    pageServer = await startPageServer();
    const userDataDir = await fs.mkdtemp(path.join(t.env.tmp, 'chromium-'));
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 640, height: 360 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--autoplay-policy=no-user-gesture-required',
      ],
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err) => pageErrors.push(err.message));
    await page.goto(`${pageServer.origin}/`);
    await page.waitForFunction('typeof window.Hls === "function" && typeof window.shaka === "object" && typeof window.qasar === "object"');
    lap('browser_ms');
  });

  after(async () => {
    await context?.close().catch(() => undefined);
    await pageServer?.close();
    await t?.close();
  });

  it('hls.js plays the HLS master cross-origin, lists the ladder and switches level on request', async (tc) => {
    tc.diagnostic(`setup: ${JSON.stringify(timings)}`);
    const started = Date.now();
    const fatal = (s: PageStatus) => {
      const f = s.hls?.errors.find((e) => e.fatal);
      if (f) return `hls.js fatal error ${f.type}/${f.details} (HTTP ${f.code}) on ${f.url}`;
      if (s.video?.errors.length) return `video element error: ${s.video.errors.join('; ')}`;
      return undefined;
    };
    const first = await call('hlsStart', pkg.hls);
    assert.equal(first.hls?.supported, true, 'hls.js must be supported (MSE) in this Chromium');

    // A screenshot while hls.js plays: the decoded picture is there to look at.
    await untilPage('hls.js playing 1 s', (s) => (s.video?.currentTime ?? 0) >= 1, fatal, 20_000);
    const shot = path.join(t.env.tmp, 'hls-playback.png');
    await page.screenshot({ path: shot });
    const png = await fs.readFile(shot);
    assert.ok(png.length > 1000, `screenshot of ${png.length} bytes`);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'screenshot is a PNG');

    const played = await untilPage(`hls.js playing ${PLAY_SECONDS} s`, (s) => (s.video?.currentTime ?? 0) >= PLAY_SECONDS, fatal, 20_000);
    const hls = played.hls!;
    assert.ok(hls.manifestParsed);
    assert.ok(hls.levels.length >= 2, `levels: ${JSON.stringify(hls.levels)}`);
    assert.deepEqual(
      hls.levels.map((l) => l.height).sort((a, b) => a - b),
      [480, 720],
    );
    assert.ok(played.video!.videoHeight > 0, 'frames decoded');
    tc.diagnostic(
      `hls.js ${hls.version} levels ${JSON.stringify(hls.levels)}; reached ${played.video!.currentTime.toFixed(2)} s after ${Date.now() - started} ms`,
    );

    // Ask for the other level, then see hls.js switch to it and the picture take its size.
    const current = hls.currentLevel ?? 0;
    const target = hls.levels.findIndex((_l, i) => i !== current);
    await call('hlsSwitch', target);
    const switched = await untilPage(
      `hls.js LEVEL_SWITCHED to level ${target}`,
      (s) => s.hls!.switched.slice(s.hls!.requested!.afterSwitches).includes(target) && s.video!.videoHeight === hls.levels[target]!.height,
      fatal,
      15_000,
    );
    const resumedAt = switched.video!.currentTime;
    await untilPage('playback going on after the switch', (s) => s.video!.currentTime >= resumedAt + 0.5, fatal, 10_000);
    const end = await status();
    assert.equal(end.hls!.currentLevel, target);
    assert.deepEqual(
      end.hls!.errors.filter((e) => e.fatal),
      [],
    );
    assert.deepEqual(pageErrors, []);
    tc.diagnostic(
      `switched ${current} -> ${target} (${hls.levels[target]!.width}x${hls.levels[target]!.height}); non-fatal hls.js errors: ${JSON.stringify(end.hls!.errors)}; ` +
        `dropped ${end.video!.droppedFrames}/${end.video!.totalFrames}; ${Date.now() - started} ms`,
    );
    await call('stopAll');
  });

  it('shaka-player plays the DASH MPD cross-origin', async (tc) => {
    const started = Date.now();
    const first = await call('shakaStart', pkg.dash);
    assert.equal(first.shaka?.supported, true, 'shaka-player must support this Chromium');
    const failed = (s: PageStatus) => {
      if (s.shaka?.errors.length) return `shaka-player errors: ${JSON.stringify(s.shaka.errors)}`;
      if (s.video?.errors.length) return `video element error: ${s.video.errors.join('; ')}`;
      return undefined;
    };
    const played = await untilPage(`shaka-player playing ${PLAY_SECONDS} s`, (s) => (s.video?.currentTime ?? 0) >= PLAY_SECONDS, failed, 20_000);
    const shaka = played.shaka!;
    assert.equal(shaka.loaded, true);
    assert.ok(shaka.tracks.length >= 2, `variant tracks: ${JSON.stringify(shaka.tracks)}`);
    assert.ok(played.video!.videoHeight > 0, 'frames decoded');
    assert.deepEqual(shaka.errors, []);
    assert.deepEqual(pageErrors, []);
    tc.diagnostic(
      `shaka-player ${shaka.version} tracks ${JSON.stringify(shaka.tracks)}; reached ${played.video!.currentTime.toFixed(2)} s after ${Date.now() - started} ms`,
    );
    await call('stopAll');
  });

  it('plays the WebM natively in a <video> element', async (tc) => {
    if (pkg.webm === null) {
      assert.fail('the package has no WebM although ENABLE_WEBM is on');
      return;
    }
    assert.ok(pkg.webm.startsWith(`${appOrigin}/play/`), `webm URL: ${pkg.webm}`);
    const started = Date.now();
    await call('nativeStart', pkg.webm);
    const played = await untilPage(
      `native WebM playing ${PLAY_SECONDS} s`,
      (s) => (s.video?.currentTime ?? 0) >= PLAY_SECONDS,
      (s) =>
        s.video?.errors.length
          ? `video element error: ${s.video.errors.join('; ')}`
          : s.video?.playErrors.length
            ? `play(): ${s.video.playErrors.join('; ')}`
            : undefined,
      20_000,
    );
    assert.ok(played.video!.videoHeight > 0, 'frames decoded');
    tc.diagnostic(
      `WebM ${played.video!.videoWidth}x${played.video!.videoHeight} reached ${played.video!.currentTime.toFixed(2)} s after ${Date.now() - started} ms`,
    );
    await call('stopAll');
  });

  it('refuses forged and expired playback URLs with 403, readable cross-origin, and hls.js fails on them', async () => {
    const master = new URL(pkg.hls!);
    const token = master.pathname.split('/')[2]!;
    const [id, exp, sig] = token.split('.');
    assert.equal(id, mediaId);
    const forgedSig = (sig!.startsWith('A') ? 'B' : 'A') + sig!.slice(1);
    const forged = pkg.hls!.replace(token, `${id}.${exp}.${forgedSig}`);
    const row = await t.ctx.database.db.selectFrom('mediaassets').select('playback_key').where('id', '=', mediaId).executeTakeFirstOrThrow();
    const tokens = (t.ctx.delivery as unknown as { tokens: { sign(a: string, b: string, c: number): string } }).tokens;
    const expired = pkg.hls!.replace(token, tokens.sign(mediaId, row.playback_key!, Date.now() - 1000));

    const origin = pageServer!.origin;
    for (const [what, url] of [
      ['forged', forged],
      ['expired', expired],
    ] as const) {
      const res = await fetch(url, { headers: { origin } });
      assert.equal(res.status, 403, `${what}: ${res.status}`);
      assert.match(String(res.headers.get('content-type')), /^application\/problem\+json/);
      // A browser player can read the refusal (and so report it) only with the CORS header on it.
      assert.equal(res.headers.get('access-control-allow-origin'), '*', `${what}: no CORS header on the 403`);
      await res.arrayBuffer();
    }
    // The genuine URL still answers, so the 403s above are the token's doing.
    assert.equal((await fetch(pkg.hls!, { headers: { origin } })).status, 200);

    for (const [what, url] of [
      ['forged', forged],
      ['expired', expired],
    ] as const) {
      await call('hlsStart', url);
      const s = await untilPage(
        `hls.js fatal error on the ${what} master`,
        (st) => (st.hls?.errors ?? []).some((e) => e.fatal),
        () => undefined,
        15_000,
      );
      const f = s.hls!.errors.find((e) => e.fatal)!;
      assert.equal(f.type, 'networkError', `${what}: ${JSON.stringify(f)}`);
      assert.equal(f.details, 'manifestLoadError', `${what}: ${JSON.stringify(f)}`);
      assert.equal(f.code, 403, `${what}: hls.js saw ${JSON.stringify(f)}`);
      assert.equal(s.hls!.manifestParsed, false);
      assert.equal(s.video!.currentTime, 0);
      await call('stopAll');
    }
  });

  it('hls.js lists a caption track offered in the HLS master and loads its cues', async (tc) => {
    const srt = '1\n00:00:00,500 --> 00:00:02,500\nHello from the <i>caption</i> track\n\n2\n00:00:03,000 --> 00:00:05,000\nSecond cue\n';
    const put = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/media/${mediaId}/captions/en?label=English`,
      headers: { ...t.auth(t.tenant.userKey), 'content-type': 'application/x-subrip' },
      payload: srt,
    });
    assert.equal(put.statusCode, 201, put.body);
    const res = await fetch(`${appOrigin}/api/v1/media/${mediaId}/package`, { headers: t.auth(t.tenant.userKey) });
    const withCaptions = (await res.json()) as Package & { captions: Array<{ language: string; url: string }> };
    assert.deepEqual(
      withCaptions.captions.map((c) => c.language),
      ['en'],
    );
    await call('stopAll');
    // A query string keeps the browser from reusing the master it cached before the track existed.
    const url = `${withCaptions.hls}?captions=1`;
    // Its own hls.js instance, to read the subtitle tracks it lists (plain browser JavaScript).
    await page.evaluate(String.raw`(() => {
      document.querySelectorAll('video').forEach((v) => v.remove());
      const video = document.createElement('video');
      video.muted = true;
      document.body.appendChild(video);
      const hls = new Hls();
      const s = { hls, video, tracks: null, errors: [] };
      window.captionsTest = s;
      hls.on(Hls.Events.SUBTITLE_TRACKS_UPDATED, (_e, d) => {
        s.tracks = d.subtitleTracks.map((x) => ({ lang: x.lang, name: x.name, groupId: x.groupId }));
        // Turn the track on, as a viewer picking it would; hls.js then loads its cues.
        hls.subtitleDisplay = true;
        hls.subtitleTrack = 0;
      });
      hls.on(Hls.Events.ERROR, (_e, d) => s.errors.push({ type: d.type, details: d.details, fatal: !!d.fatal }));
      // The level's SUBTITLES group is known once it has loaded: pick the track then if not yet on.
      hls.on(Hls.Events.LEVEL_LOADED, () => { if (hls.subtitleTrack < 0) hls.subtitleTrack = 0; });
      hls.on(Hls.Events.MANIFEST_PARSED, () => video.play().catch(() => undefined));
      hls.loadSource(${JSON.stringify(url)});
      hls.attachMedia(video);
    })()`);
    interface CaptionsState {
      tracks: Array<{ lang: string; name: string; groupId: string }> | null;
      subtitleTrack: number;
      cues: Array<[number, number, string]>;
      errors: Array<{ type: string; details: string; fatal: boolean }>;
    }
    const state = async () =>
      (await page.evaluate(String.raw`(() => {
        const s = window.captionsTest;
        const track = Array.from(s.video.textTracks).find((x) => x.language === 'en');
        return {
          tracks: s.tracks,
          subtitleTrack: s.hls.subtitleTrack,
          cues: track && track.cues ? Array.from(track.cues).map((c) => [c.startTime, c.endTime, c.text]) : [],
          errors: s.errors,
        };
      })()`)) as CaptionsState;
    let last = await state();
    const started = Date.now();
    while (!(last.tracks && last.cues.length >= 2) && Date.now() - started < 20_000 && !last.errors.some((e) => e.fatal)) {
      await new Promise((r) => setTimeout(r, 100));
      last = await state();
    }
    assert.deepEqual(
      last.errors.filter((e) => e.fatal),
      [],
      JSON.stringify(last),
    );
    assert.deepEqual(last.tracks, [{ lang: 'en', name: 'English', groupId: 'subs' }]);
    assert.equal(last.subtitleTrack, 0, JSON.stringify(last));
    const cues = last.cues.map(([start, end, text]) => [Number(start).toFixed(1), Number(end).toFixed(1), text]);
    assert.deepEqual(cues, [
      ['0.5', '2.5', 'Hello from the <i>caption</i> track'],
      ['3.0', '5.0', 'Second cue'],
    ]);
    tc.diagnostic(`hls.js subtitle tracks ${JSON.stringify(last.tracks)}; cues ${JSON.stringify(last.cues)}`);
    await page.evaluate('window.captionsTest.hls.destroy(); window.captionsTest.video.remove();');
  });

  it('plays an audio upload: the Opus WebM natively and the AAC HLS rendition with hls.js', async (tc) => {
    const source = path.join(t.env.tmp, 'tone.flac');
    await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'sine=frequency=330:sample_rate=44100:duration=12', source]);
    const client = new SessionClient(t.app, t.tenant.userKey);
    const { completed } = await client.uploadWhole(await fs.readFile(source), { filename: 'tone.flac', chunkSize: 1024 * 1024 });
    assert.equal(completed.statusCode, 201, completed.body);
    const audioId = completed.json().id as string;
    // This app streams audio of 60 s and more; the HLS rendition is checked on a longer file below.
    const m = await waitFor(
      'audio ready',
      async () => {
        const x = (await t.app.inject({ url: `/api/v1/media/${audioId}`, headers: t.auth(t.tenant.userKey) })).json();
        return ['ready', 'error'].includes(x.status) && x;
      },
      60_000,
    );
    assert.equal(m.status, 'ready', JSON.stringify(m.error));
    const res = await fetch(`${appOrigin}/api/v1/media/${audioId}/package`, { headers: t.auth(t.tenant.userKey) });
    const audioPkg = (await res.json()) as Package;
    const failed = (s: PageStatus) =>
      s.video?.errors.length
        ? `media element error: ${s.video.errors.join('; ')}`
        : s.video?.playErrors.length
          ? `play(): ${s.video.playErrors.join('; ')}`
          : undefined;
    await call('nativeStart', audioPkg.webm);
    const played = await untilPage(`Opus WebM playing ${PLAY_SECONDS} s`, (s) => (s.video?.currentTime ?? 0) >= PLAY_SECONDS, failed, 20_000);
    assert.ok(Math.abs(played.video!.duration - 12) < 0.2, `duration ${played.video!.duration}`);
    assert.equal(played.video!.videoHeight, 0, 'sound only');
    await call('stopAll');

    const long = path.join(t.env.tmp, 'long.m4a');
    await run('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=550:sample_rate=48000:duration=65',
      '-c:a',
      'aac',
      long,
    ]);
    const up = await client.uploadWhole(await fs.readFile(long), { filename: 'long.m4a', chunkSize: 1024 * 1024 });
    const longId = up.completed.json().id as string;
    const lm = await waitFor(
      'long audio ready',
      async () => {
        const x = (await t.app.inject({ url: `/api/v1/media/${longId}`, headers: t.auth(t.tenant.userKey) })).json();
        return ['ready', 'error'].includes(x.status) && x;
      },
      60_000,
    );
    assert.equal(lm.status, 'ready', JSON.stringify(lm.error));
    const longPkg = (await (await fetch(`${appOrigin}/api/v1/media/${longId}/package`, { headers: t.auth(t.tenant.userKey) })).json()) as Package;
    assert.ok(longPkg.hls, 'audio of 60 s and more has an HLS rendition');
    await call('hlsStart', longPkg.hls);
    const fatal = (s: PageStatus) => {
      const f = s.hls?.errors.find((e) => e.fatal);
      return f ? `hls.js fatal error ${f.type}/${f.details} (HTTP ${f.code}) on ${f.url}` : failed(s);
    };
    const streamed = await untilPage(`hls.js playing the audio ${PLAY_SECONDS} s`, (s) => (s.video?.currentTime ?? 0) >= PLAY_SECONDS, fatal, 20_000);
    assert.deepEqual(
      streamed.hls!.levels.map((l) => l.codecs),
      ['mp4a.40.2'],
    );
    assert.ok(Math.abs(streamed.video!.duration - 65) < 0.5, `duration ${streamed.video!.duration}`);
    tc.diagnostic(
      `audio: WebM ${played.video!.currentTime.toFixed(1)} s; HLS ${streamed.video!.currentTime.toFixed(1)} s of ${streamed.video!.duration.toFixed(1)}`,
    );
    await call('stopAll');
  });
});

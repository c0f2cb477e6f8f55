import { existsSync } from 'node:fs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEDIA_CSP } from '../../src/media/headers.js';
import type { Engine } from '../_util/server.js';
import type { TestClient } from '../client/_client.js';
import { raw, startMediaServer, testImage, upload, userClient, type MediaServer } from './_media.js';

const AUTHED = '/_matrix/client/v1/media';

describe.each<Engine>(['sqlite', 'postgres'])('media repository on %s', (engine) => {
  let s: MediaServer;
  let alice: TestClient;
  let bob: TestClient;

  beforeAll(async () => {
    s = await startMediaServer(engine);
    alice = await userClient(s.url, 'alice');
    bob = await userClient(s.url, 'bob');
  });
  afterAll(async () => {
    await s?.close();
  });

  const mediaConfig = () => s.server.ctx.media.config as { -readonly [K in keyof typeof s.server.ctx.media.config]: (typeof s.server.ctx.media.config)[K] };

  it('uploads and downloads through the authenticated endpoint, with safe headers', async () => {
    const data = Buffer.from('hello media\n');
    const [server, id] = await upload(s.url, alice.token!, data, 'text/plain', 'hello.txt');
    expect(server).toBe('media.test');
    expect(id).toMatch(/^[A-Za-z0-9_-]+$/);
    const res = await raw(`${s.url}${AUTHED}/download/${server}/${id}`, { token: bob.token });
    expect(res.status).toBe(200);
    expect(res.body.equals(data)).toBe(true);
    expect(res.headers.get('content-type')).toBe('text/plain');
    expect(res.headers.get('content-disposition')).toBe('inline; filename="hello.txt"');
    expect(res.headers.get('content-security-policy')).toBe(MEDIA_CSP);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(res.headers.get('content-length')).toBe(String(data.length));
    // The file name in the path replaces the stored one.
    const renamed = await raw(`${s.url}${AUTHED}/download/${server}/${id}/other%20name.txt`, { token: bob.token });
    expect(renamed.headers.get('content-disposition')).toBe('inline; filename="other name.txt"');
    // Metadata row: uploader, size, sha256; the file is stored under its hash.
    const row = await s.server.ctx.media.store.get(server, id);
    expect(row).toMatchObject({ uploader: '@alice:media.test', size: data.length, contentType: 'text/plain', filename: 'hello.txt' });
    expect(existsSync(s.server.ctx.media.files.pathOf(row!.sha256!))).toBe(true);
  });

  it('refuses the authenticated endpoints without an access token', async () => {
    const [server, id] = await upload(s.url, alice.token!, 'x', 'text/plain');
    for (const path of [
      `${AUTHED}/config`,
      `${AUTHED}/download/${server}/${id}`,
      `${AUTHED}/download/${server}/${id}/x.txt`,
      `${AUTHED}/thumbnail/${server}/${id}?width=32&height=32`,
      `${AUTHED}/preview_url?url=https%3A%2F%2Fexample.org`,
      '/_matrix/media/v3/config',
    ]) {
      const res = await raw(`${s.url}${path}`);
      expect(res.status, path).toBe(401);
      expect(res.json().errcode, path).toBe('M_MISSING_TOKEN');
    }
    const up = await raw(`${s.url}/_matrix/media/v3/upload`, { method: 'POST', body: 'abc', headers: { 'content-type': 'text/plain' } });
    expect(up.status).toBe(401);
    expect(up.json().errcode).toBe('M_MISSING_TOKEN');
    const bad = await raw(`${s.url}${AUTHED}/download/${server}/${id}`, { token: 'not-a-token' });
    expect(bad.status).toBe(401);
    expect(bad.json().errcode).toBe('M_UNKNOWN_TOKEN');
  });

  it('reports the upload limit in /config', async () => {
    const res = await raw(`${s.url}${AUTHED}/config`, { token: alice.token });
    expect(res.status).toBe(200);
    expect(res.json()['m.upload.size']).toBe(50 * 1024 * 1024);
  });

  it('answers M_TOO_LARGE (413) for an upload over max_upload_size, declared or streamed', async () => {
    const cfg = mediaConfig();
    const before = cfg.max_upload_size;
    cfg.max_upload_size = 1024 * 1024;
    try {
      const declared = await raw(`${s.url}/_matrix/media/v3/upload`, { method: 'POST', token: alice.token, body: Buffer.alloc(2 * 1024 * 1024, 1) });
      expect(declared.status).toBe(413);
      expect(declared.json().errcode).toBe('M_TOO_LARGE');
      // No Content-Length: the limit is enforced while streaming.
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(c) {
          if (sent >= 3 * 1024 * 1024) return c.close();
          sent += 64 * 1024;
          c.enqueue(new Uint8Array(64 * 1024));
        },
      });
      const streamed = await raw(`${s.url}/_matrix/media/v3/upload`, { method: 'POST', token: alice.token, body: stream });
      expect(streamed.status).toBe(413);
      expect(streamed.json().errcode).toBe('M_TOO_LARGE');
      // Exactly at the limit is fine.
      const [, id] = await upload(s.url, alice.token!, Buffer.alloc(1024 * 1024, 2));
      expect((await s.server.ctx.media.store.get('media.test', id))?.size).toBe(1024 * 1024);
    } finally {
      cfg.max_upload_size = before;
    }
  });

  it('enforces the per-user storage quota with M_FORBIDDEN', async () => {
    const carol = await userClient(s.url, 'carol');
    const cfg = mediaConfig();
    cfg.max_user_storage = 1000;
    try {
      await upload(s.url, carol.token!, Buffer.alloc(600));
      const over = await raw(`${s.url}/_matrix/media/v3/upload`, { method: 'POST', token: carol.token, body: Buffer.alloc(600) });
      expect(over.status).toBe(403);
      expect(over.json().errcode).toBe('M_FORBIDDEN');
      // Others are not affected by carol's use.
      await upload(s.url, bob.token!, Buffer.alloc(600));
    } finally {
      cfg.max_user_storage = undefined;
    }
  });

  it('serves hostile SVG and HTML as attachments that cannot run', async () => {
    const svg = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>';
    const [server, id] = await upload(s.url, alice.token!, svg, 'image/svg+xml', 'evil.svg');
    const res = await raw(`${s.url}${AUTHED}/download/${server}/${id}`, { token: bob.token });
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe(svg);
    expect(res.headers.get('content-type')).toBe('image/svg+xml');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="evil.svg"');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain('sandbox');
    expect(csp).toContain("script-src 'none'");
    expect(csp).toContain("default-src 'none'");
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');

    const [, htmlId] = await upload(s.url, alice.token!, '<html><script>alert(1)</script></html>', 'text/html');
    const html = await raw(`${s.url}${AUTHED}/download/${server}/${htmlId}`, { token: bob.token });
    expect(html.headers.get('content-disposition')).toBe('attachment');
    expect(html.headers.get('content-security-policy')).toBe(MEDIA_CSP);
    // An unknown type is served as application/octet-stream, as an attachment.
    const [, none] = await upload(s.url, alice.token!, 'data');
    const plain = await raw(`${s.url}${AUTHED}/download/${server}/${none}`, { token: bob.token });
    expect(plain.headers.get('content-type')).toBe('application/octet-stream');
    expect(plain.headers.get('content-disposition')).toBe('attachment');
  });

  it('encodes non-ASCII file names per RFC 6266', async () => {
    const [server, id] = await upload(s.url, alice.token!, 'x', 'text/plain', 'résumé "final".txt');
    const res = await raw(`${s.url}${AUTHED}/download/${server}/${id}`, { token: bob.token });
    expect(res.headers.get('content-disposition')).toBe(
      `inline; filename="r_sum_ \\"final\\".txt"; filename*=utf-8''r%C3%A9sum%C3%A9%20%22final%22.txt`,
    );
  });

  it('serves byte ranges', async () => {
    const data = Buffer.from('0123456789abcdef');
    const [server, id] = await upload(s.url, alice.token!, data, 'video/mp4');
    const res = await raw(`${s.url}${AUTHED}/download/${server}/${id}`, { token: bob.token, headers: { range: 'bytes=4-7' } });
    expect(res.status).toBe(206);
    expect(res.body.toString()).toBe('4567');
    expect(res.headers.get('content-range')).toBe(`bytes 4-7/${data.length}`);
    const bad = await raw(`${s.url}${AUTHED}/download/${server}/${id}`, { token: bob.token, headers: { range: 'bytes=100-' } });
    expect(bad.status).toBe(416);
  });

  it('freezes the unauthenticated endpoints for media uploaded while the freeze is on', async () => {
    const cfg = mediaConfig();
    cfg.freeze_unauthenticated = false;
    let oldId: string;
    try {
      [, oldId] = await upload(s.url, alice.token!, 'before the freeze', 'text/plain');
    } finally {
      cfg.freeze_unauthenticated = true;
    }
    const [, newId] = await upload(s.url, alice.token!, 'after the freeze', 'text/plain');
    const old = await raw(`${s.url}/_matrix/media/v3/download/media.test/${oldId}`);
    expect(old.status).toBe(200);
    expect(old.body.toString()).toBe('before the freeze');
    expect(old.headers.get('content-security-policy')).toBe(MEDIA_CSP);
    const r0 = await raw(`${s.url}/_matrix/media/r0/download/media.test/${oldId}/named.txt`);
    expect(r0.status).toBe(200);
    expect(r0.headers.get('content-disposition')).toBe('inline; filename="named.txt"');
    const frozen = await raw(`${s.url}/_matrix/media/v3/download/media.test/${newId}`);
    expect(frozen.status).toBe(404);
    expect(frozen.json().errcode).toBe('M_NOT_FOUND');
    const frozenThumb = await raw(`${s.url}/_matrix/media/v3/thumbnail/media.test/${newId}?width=32&height=32`);
    expect(frozenThumb.status).toBe(404);
    // Both are served by the authenticated endpoint.
    expect((await raw(`${s.url}${AUTHED}/download/media.test/${newId}`, { token: bob.token })).status).toBe(200);
    expect((await raw(`${s.url}${AUTHED}/download/media.test/${oldId}`, { token: bob.token })).status).toBe(200);
  });

  it('creates media IDs for later upload: waits, conflicts, other users, timeouts', async () => {
    const created = await alice.post('/_matrix/media/v1/create', {});
    expect(created.status).toBe(200);
    expect(created.body.unused_expires_at).toBeGreaterThan(Date.now());
    const id = (created.body.content_uri as string).split('/').pop()!;
    const notYet = await raw(`${s.url}${AUTHED}/download/media.test/${id}?timeout_ms=0`, { token: bob.token });
    expect(notYet.status).toBe(504);
    expect(notYet.json().errcode).toBe('M_NOT_YET_UPLOADED');
    // A download waiting for the content gets it once it is uploaded.
    const waiting = raw(`${s.url}${AUTHED}/download/media.test/${id}?timeout_ms=20000`, { token: bob.token });
    await new Promise((r) => setTimeout(r, 200));
    const byBob = await raw(`${s.url}/_matrix/media/v3/upload/media.test/${id}`, { method: 'PUT', token: bob.token, body: 'bob' });
    expect(byBob.status).toBe(403);
    expect(byBob.json().errcode).toBe('M_FORBIDDEN');
    const put = await raw(`${s.url}/_matrix/media/v3/upload/media.test/${id}?filename=later.txt`, {
      method: 'PUT',
      token: alice.token,
      body: 'uploaded later',
      headers: { 'content-type': 'text/plain' },
    });
    expect(put.status).toBe(200);
    expect(put.json()).toEqual({});
    const got = await waiting;
    expect(got.status).toBe(200);
    expect(got.body.toString()).toBe('uploaded later');
    expect(got.headers.get('content-disposition')).toBe('inline; filename="later.txt"');
    const again = await raw(`${s.url}/_matrix/media/v3/upload/media.test/${id}`, { method: 'PUT', token: alice.token, body: 'again' });
    expect(again.status).toBe(409);
    expect(again.json().errcode).toBe('M_CANNOT_OVERWRITE_MEDIA');
    const unknown = await raw(`${s.url}/_matrix/media/v3/upload/media.test/nosuchmedia`, { method: 'PUT', token: alice.token, body: 'x' });
    expect(unknown.status).toBe(404);
  });

  it('returns 404 for unknown or malformed media IDs', async () => {
    for (const path of ['/download/media.test/doesnotexist', '/download/media.test/bad.id', '/download/media.test/..%2F..%2Fetc']) {
      const res = await raw(`${s.url}${AUTHED}${path}`, { token: bob.token });
      expect(res.status, path).toBe(404);
      expect(res.json().errcode).toBe('M_NOT_FOUND');
    }
  });

  describe('thumbnails', () => {
    const dims = async (b: Buffer) => {
      const m = await sharp(b, { animated: true }).metadata();
      return { width: m.width!, height: m.pageHeight ?? m.height!, pages: m.pages ?? 1, format: m.format };
    };
    const thumb = (id: string, q: string, token = bob.token) => raw(`${s.url}${AUTHED}/thumbnail/media.test/${id}?${q}`, { token });

    for (const format of ['png', 'jpeg', 'gif', 'webp'] as const) {
      it(`makes the recommended sizes from ${format}`, async () => {
        const img = await testImage(format, 1000, 800);
        const [, id] = await upload(s.url, alice.token!, img, `image/${format}`);
        for (const [w, h] of [
          [32, 32],
          [96, 96],
        ]) {
          const res = await thumb(id, `width=${w}&height=${h}&method=crop`);
          expect(res.status).toBe(200);
          expect(res.headers.get('content-disposition')).toMatch(/^inline; filename="thumbnail\./);
          expect(await dims(res.body)).toMatchObject({ width: w, height: h });
        }
        for (const [w, h] of [
          [320, 240],
          [640, 480],
          [800, 600],
        ]) {
          const res = await thumb(id, `width=${w}&height=${h}&method=scale`);
          expect(res.status).toBe(200);
          // Aspect kept (1000:800), fitting the box with one side equal to it.
          const d = await dims(res.body);
          expect(d.height).toBe(h);
          expect(d.width).toBe(Math.round((1000 * h) / 800));
        }
        const expected = format === 'jpeg' ? 'jpeg' : 'png';
        const ct = (await thumb(id, 'width=96&height=96&method=crop')).headers.get('content-type');
        expect(ct).toBe(`image/${expected}`);
      });
    }

    it('never returns less than asked (a covering size) and never upscales', async () => {
      const img = await testImage('png', 1000, 800);
      const [, id] = await upload(s.url, alice.token!, img, 'image/png');
      const covered = await dims((await thumb(id, 'width=50&height=50&method=crop')).body);
      expect(covered).toMatchObject({ width: 96, height: 96 });
      const large = await dims((await thumb(id, 'width=900&height=900&method=scale')).body);
      expect(large).toMatchObject({ width: 900, height: 720 });
      // A small image is returned as it is.
      const small = await testImage('png', 20, 10);
      const [, smallId] = await upload(s.url, alice.token!, small, 'image/png');
      const res = await thumb(smallId, 'width=96&height=96&method=crop');
      expect(res.status).toBe(200);
      expect(res.body.equals(small)).toBe(true);
    });

    it('generates each thumbnail once and serves it from storage afterwards', async () => {
      const img = await testImage('jpeg', 640, 640);
      const [, id] = await upload(s.url, alice.token!, img, 'image/jpeg');
      const first = await thumb(id, 'width=32&height=32&method=crop');
      const rows1 = await s.server.ctx.media.store.listThumbnails('media.test', id);
      expect(rows1).toHaveLength(1);
      const second = await thumb(id, 'width=30&height=30&method=crop');
      expect(second.body.equals(first.body)).toBe(true);
      const rows2 = await s.server.ctx.media.store.listThumbnails('media.test', id);
      expect(rows2).toEqual(rows1);
    });

    for (const format of ['gif', 'webp'] as const) {
      it(`animates ${format} thumbnails only when asked`, async () => {
        const img = await testImage(format, 400, 300, 3);
        const [, id] = await upload(s.url, alice.token!, img, `image/${format}`);
        const animated = await thumb(id, 'width=96&height=96&method=crop&animated=true');
        expect(animated.status).toBe(200);
        expect(animated.headers.get('content-type')).toBe('image/webp');
        expect(await dims(animated.body)).toMatchObject({ width: 96, height: 96, pages: 3, format: 'webp' });
        const still = await thumb(id, 'width=96&height=96&method=crop&animated=false');
        expect(still.headers.get('content-type')).toBe('image/png');
        expect(await dims(still.body)).toMatchObject({ width: 96, height: 96, pages: 1 });
        const unspecified = await thumb(id, 'width=320&height=240');
        expect((await dims(unspecified.body)).pages).toBe(1);
      });
    }

    it('refuses content it cannot thumbnail, and bad sizes', async () => {
      const [, id] = await upload(s.url, alice.token!, '<svg xmlns="http://www.w3.org/2000/svg"/>', 'image/svg+xml');
      const res = await thumb(id, 'width=32&height=32');
      expect(res.status).toBe(400);
      expect(res.json().errcode).toBe('M_UNKNOWN');
      const img = await testImage('png', 100, 100);
      const [, pngId] = await upload(s.url, alice.token!, img, 'image/png');
      expect((await thumb(pngId, 'width=-1&height=32')).status).toBe(400);
      expect((await thumb(pngId, 'width=abc&height=32')).status).toBe(400);
      const corrupt = await upload(s.url, alice.token!, 'not really a png', 'image/png');
      expect((await thumb(corrupt[1], 'width=32&height=32')).status).toBe(400);
    });

    it('refuses images over max_thumbnail_source_size with M_TOO_LARGE', async () => {
      const cfg = mediaConfig();
      const before = cfg.max_thumbnail_source_size;
      const img = await testImage('png', 500, 500);
      const [, id] = await upload(s.url, alice.token!, img, 'image/png');
      cfg.max_thumbnail_source_size = 100;
      try {
        const res = await thumb(id, 'width=32&height=32&method=crop');
        expect(res.status).toBe(413);
        expect(res.json().errcode).toBe('M_TOO_LARGE');
      } finally {
        cfg.max_thumbnail_source_size = before;
      }
    });
  });

  it('lets administrators delete and quarantine media', async () => {
    const admin = await userClient(s.url, 'admin');
    const me = await admin.get('/_matrix/client/v3/account/whoami');
    await s.server.ctx.accounts.setAdmin(me.body.user_id, true);
    const data = Buffer.from('to be deleted');
    const [, id] = await upload(s.url, alice.token!, data, 'text/plain');
    // Identical content shares one file: deleting one copy keeps the other's file.
    const [, twin] = await upload(s.url, alice.token!, data, 'text/plain');
    const sha = (await s.server.ctx.media.store.get('media.test', id))!.sha256!;

    expect((await raw(`${s.url}/_synapse/admin/v1/media/media.test/${id}`, { method: 'DELETE', token: alice.token })).status).toBe(403);
    const q = await raw(`${s.url}/_synapse/admin/v1/media/quarantine/media.test/${twin}`, { method: 'POST', token: admin.token });
    expect(q.status).toBe(200);
    expect((await raw(`${s.url}${AUTHED}/download/media.test/${twin}`, { token: bob.token })).status).toBe(404);
    await raw(`${s.url}/_synapse/admin/v1/media/unquarantine/media.test/${twin}`, { method: 'POST', token: admin.token });
    expect((await raw(`${s.url}${AUTHED}/download/media.test/${twin}`, { token: bob.token })).status).toBe(200);

    const del = await raw(`${s.url}/_synapse/admin/v1/media/media.test/${id}`, { method: 'DELETE', token: admin.token });
    expect(del.status).toBe(200);
    expect(del.json()).toEqual({ deleted_media: [id], total: 1 });
    expect((await raw(`${s.url}${AUTHED}/download/media.test/${id}`, { token: bob.token })).status).toBe(404);
    expect(existsSync(s.server.ctx.media.files.pathOf(sha))).toBe(true);
    await raw(`${s.url}/_synapse/admin/v1/media/media.test/${twin}`, { method: 'DELETE', token: admin.token });
    expect(existsSync(s.server.ctx.media.files.pathOf(sha))).toBe(false);
  });
});

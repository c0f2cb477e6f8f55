import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEDIA_CSP } from '../../src/media/headers.js';
import { multipartBoundary, readMultipartMedia } from '../../src/media/multipart.js';
import { tempDir, type Engine } from '../_util/server.js';
import { createTestCa } from '../_util/test-ca.js';
import { TestClient } from '../client/_client.js';
import { publish, startFedServer, type FedServer } from '../federation/_harness.js';
import { raw, testImage, upload } from './_media.js';

async function localUser(s: FedServer, localpart: string, admin = false): Promise<TestClient> {
  const base = `http://127.0.0.1:${s.server.address('client')!.port}`;
  await s.server.ctx.accounts.createAccount({ localpart, password: 'correct horse battery', admin });
  const c = new TestClient(base);
  c.token = (await c.login(localpart)).access_token;
  return c;
}

describe.each<Engine>(['sqlite', 'postgres'])('media over federation on %s', (engine) => {
  const ca = createTestCa();
  const caFile = join(tempDir('myelin-media-ca-'), 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  let a: FedServer;
  let b: FedServer;
  let alice: TestClient;
  let bob: TestClient;
  /** Federation media requests A has answered. */
  const hitsOnA: string[] = [];

  beforeAll(async () => {
    a = await startFedServer({
      name: 'a.test',
      engine,
      ca,
      caFile,
      extend: (app, listener) => {
        if (listener !== 'federation') return;
        app.addHook('onRequest', async (req) => {
          if (req.url.startsWith('/_matrix/federation/v1/media/')) hitsOnA.push(req.url);
        });
      },
    });
    b = await startFedServer({ name: 'b.test', engine, ca, caFile });
    publish(a.dns, b);
    publish(b.dns, a);
    alice = await localUser(a, 'alice');
    bob = await localUser(b, 'bob', true);
  });
  afterAll(async () => {
    await b?.close();
    await a?.close();
  });

  const bBase = () => `http://127.0.0.1:${b.server.address('client')!.port}`;
  const aBase = () => `http://127.0.0.1:${a.server.address('client')!.port}`;

  it('fetches a remote file over federation once and serves it from the cache afterwards', async () => {
    const data = Buffer.alloc(300_000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 251;
    const [server, id] = await upload(aBase(), alice.token!, data, 'application/pdf', 'report.pdf');
    expect(server).toBe('a.test');
    hitsOnA.length = 0;

    const first = await raw(`${bBase()}/_matrix/client/v1/media/download/a.test/${id}`, { token: bob.token });
    expect(first.status).toBe(200);
    expect(first.body.equals(data)).toBe(true);
    expect(first.headers.get('content-type')).toBe('application/pdf');
    expect(first.headers.get('content-disposition')).toBe('attachment; filename="report.pdf"');
    expect(first.headers.get('content-security-policy')).toBe(MEDIA_CSP);
    expect(hitsOnA.filter((u) => u.startsWith(`/_matrix/federation/v1/media/download/${id}`))).toHaveLength(1);

    const row = await b.server.ctx.media.store.get('a.test', id);
    expect(row).toMatchObject({ serverName: 'a.test', size: data.length, uploader: null, authenticatedOnly: true });

    const second = await raw(`${bBase()}/_matrix/client/v1/media/download/a.test/${id}`, { token: bob.token });
    expect(second.status).toBe(200);
    expect(second.body.equals(data)).toBe(true);
    expect(hitsOnA).toHaveLength(1);
    // Cached while the freeze is on: not served unauthenticated.
    expect((await raw(`${bBase()}/_matrix/media/v3/download/a.test/${id}`)).status).toBe(404);
  });

  it('shares one remote fetch between concurrent requests', async () => {
    const [, id] = await upload(aBase(), alice.token!, Buffer.alloc(100_000, 7), 'application/octet-stream');
    hitsOnA.length = 0;
    const all = await Promise.all([1, 2, 3, 4].map(() => raw(`${bBase()}/_matrix/client/v1/media/download/a.test/${id}`, { token: bob.token })));
    for (const r of all) expect(r.status).toBe(200);
    expect(hitsOnA).toHaveLength(1);
  });

  it('thumbnails remote images from the cached original', async () => {
    const img = await testImage('png', 800, 600);
    const [, id] = await upload(aBase(), alice.token!, img, 'image/png');
    const res = await raw(`${bBase()}/_matrix/client/v1/media/thumbnail/a.test/${id}?width=96&height=96&method=crop`, { token: bob.token });
    expect(res.status).toBe(200);
    const m = await sharp(res.body).metadata();
    expect([m.width, m.height]).toEqual([96, 96]);
  });

  it('answers 404 for remote media that does not exist, and with allow_remote=false', async () => {
    const missing = await raw(`${bBase()}/_matrix/client/v1/media/download/a.test/doesnotexist`, { token: bob.token });
    expect(missing.status).toBe(404);
    expect(missing.json().errcode).toBe('M_NOT_FOUND');
    const [, id] = await upload(aBase(), alice.token!, 'x', 'text/plain');
    const noRemote = await raw(`${bBase()}/_matrix/media/v3/download/a.test/${id}?allow_remote=false`);
    expect(noRemote.status).toBe(404);
  });

  it('serves multipart/mixed on the federation endpoint, and only to signed requests', async () => {
    const [, id] = await upload(aBase(), alice.token!, 'multipart body', 'text/plain', 'm.txt');
    // B's federation client, signed with B's key.
    const res = await b.server.ctx.federation.client.getStream('a.test', `/_matrix/federation/v1/media/download/${id}`);
    const boundary = multipartBoundary(String(res.headers['content-type']));
    expect(boundary).toBeDefined();
    const parsed = await readMultipartMedia(res.body, boundary!);
    expect(parsed.metadata).toEqual({});
    expect(parsed.headers['content-type']).toBe('text/plain');
    expect(parsed.headers['content-disposition']).toBe('inline; filename="m.txt"');
    const chunks: Buffer[] = [];
    for await (const c of parsed.body) chunks.push(c);
    expect(Buffer.concat(chunks).toString()).toBe('multipart body');

    const unsigned = await new Promise<number>((resolve, reject) => {
      const r = httpsRequest(
        { host: '127.0.0.1', port: a.port, path: `/_matrix/federation/v1/media/download/${id}`, ca: ca.certPem, servername: 'a.test' },
        (resp) => {
          resp.resume();
          resolve(resp.statusCode!);
        },
      );
      r.on('error', reject);
      r.end();
    });
    expect(unsigned).toBe(401);
  });

  it('purges remote media not accessed recently; the next request fetches again', async () => {
    const [, id] = await upload(aBase(), alice.token!, 'purge me', 'text/plain');
    expect((await raw(`${bBase()}/_matrix/client/v1/media/download/a.test/${id}`, { token: bob.token })).status).toBe(200);
    const sha = (await b.server.ctx.media.store.get('a.test', id))!.sha256!;
    const purge = await raw(`${bBase()}/_synapse/admin/v1/purge_media_cache?before_ts=${Date.now() + 1000}`, { method: 'POST', token: bob.token });
    expect(purge.status).toBe(200);
    expect(purge.json().deleted).toBeGreaterThanOrEqual(1);
    expect(await b.server.ctx.media.store.get('a.test', id)).toBeUndefined();
    expect(await b.server.ctx.media.files.exists(sha)).toBe(false);
    // Local media is untouched by the purge.
    const [, local] = await upload(bBase(), bob.token!, 'local stays', 'text/plain');
    await b.server.ctx.media.purgeRemote(Date.now() + 1000);
    expect(await b.server.ctx.media.store.get('b.test', local)).toBeDefined();
    hitsOnA.length = 0;
    const again = await raw(`${bBase()}/_matrix/client/v1/media/download/a.test/${id}`, { token: bob.token });
    expect(again.body.toString()).toBe('purge me');
    expect(hitsOnA).toHaveLength(1);
  });
});

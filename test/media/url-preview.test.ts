import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../_util/server.js';
import type { TestClient } from '../client/_client.js';
import { raw, startMediaServer, testImage, userClient, type MediaServer } from './_media.js';

/**
 * URL previews with an injected resolver: names resolve to loopback, private and link-local
 * addresses that must be refused before any connection; a local page is reachable only where
 * 127.0.0.1 is explicitly allowed. Nothing here connects anywhere but 127.0.0.1.
 */
describe.each<Engine>(['sqlite', 'postgres'])('URL previews on %s', (engine) => {
  let page: Server;
  let port: number;
  let hits: string[];
  let guarded: MediaServer;
  let allowed: MediaServer;
  let disabled: MediaServer;
  let g: TestClient;
  let al: TestClient;
  let d: TestClient;
  const dns = {
    a: { 'page.test': ['127.0.0.1'], 'internal.test': ['10.1.2.3'], 'meta.test': ['169.254.169.254'], 'mixed.test': ['10.9.9.9', '192.168.1.1'] },
    aaaa: { 'six.test': ['::1'], 'ula.test': ['fd00::1'], 'mapped.test': ['::ffff:127.0.0.1'] },
  };

  beforeAll(async () => {
    hits = [];
    const png = await testImage('png', 120, 60);
    page = createServer((req, res) => {
      hits.push(req.url!);
      if (req.url === '/og') {
        res.setHeader('content-type', 'text/html; charset=utf-8');
        res.end(
          `<!doctype html><html><head><title>Fallback</title>
           <meta property="og:title" content="A &amp; B">
           <meta content="The description" property="og:description">
           <meta property="og:image" content="/img.png"></head><body>hi</body></html>`,
        );
      } else if (req.url === '/img.png') {
        res.setHeader('content-type', 'image/png');
        res.end(png);
      } else if (req.url === '/to-internal') {
        res.statusCode = 302;
        res.setHeader('location', 'http://internal.test/secret');
        res.end();
      } else if (req.url === '/to-loopback-literal') {
        res.statusCode = 301;
        res.setHeader('location', 'http://[::1]:1/');
        res.end();
      } else if (req.url === '/plain') {
        res.setHeader('content-type', 'text/html');
        res.end('<html><head><title> Just   a title </title><meta name="description" content="desc"></head></html>');
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((r) => page.listen(0, '127.0.0.1', r));
    port = (page.address() as AddressInfo).port;
    guarded = await startMediaServer(engine, { media: { url_preview: { enabled: true } } }, dns);
    allowed = await startMediaServer(engine, { media: { url_preview: { enabled: true, ip_whitelist: ['127.0.0.1/32'] } } }, dns);
    disabled = await startMediaServer(engine, {}, dns);
    g = await userClient(guarded.url, 'u');
    al = await userClient(allowed.url, 'u');
    d = await userClient(disabled.url, 'u');
  });
  afterAll(async () => {
    await guarded?.close();
    await allowed?.close();
    await disabled?.close();
    await new Promise((r) => page?.close(r));
  });

  const preview = (s: MediaServer, c: TestClient, url: string) =>
    raw(`${s.url}/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(url)}`, { token: c.token });

  it('is off by default', async () => {
    const res = await preview(disabled, d, `http://page.test:${port}/og`);
    expect(res.status).toBe(404);
    expect(hits).toHaveLength(0);
  });

  it('refuses loopback, private and link-local addresses, IPv4 and IPv6, without connecting', async () => {
    for (const url of [
      `http://127.0.0.1:${port}/og`,
      `http://page.test:${port}/og`,
      `http://[::1]:${port}/og`,
      'http://10.0.0.1/',
      'http://10.255.255.254:8080/x',
      'http://192.168.0.1/',
      'http://172.16.5.4/',
      'http://169.254.169.254/latest/meta-data/',
      'http://[::ffff:10.0.0.1]/',
      'http://[fe80::1]/',
      'http://internal.test/',
      'http://meta.test/',
      'http://mixed.test/',
      'http://six.test/',
      'http://ula.test/',
      'http://mapped.test/',
    ]) {
      const res = await preview(guarded, g, url);
      expect(res.status, url).toBe(403);
      expect(res.json().errcode, url).toBe('M_FORBIDDEN');
    }
    expect(hits).toHaveLength(0);
  });

  it('refuses other schemes', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://page.test/', 'gopher://page.test/']) {
      const res = await preview(guarded, g, url);
      expect(res.status, url).toBe(400);
    }
  });

  it('previews an allowed page: OpenGraph data and its image stored as media', async () => {
    const res = await preview(allowed, al, `http://page.test:${port}/og`);
    expect(res.status).toBe(200);
    const og = res.json();
    expect(og['og:title']).toBe('A & B');
    expect(og['og:description']).toBe('The description');
    expect(og['og:image']).toMatch(/^mxc:\/\/media\.test\/[A-Za-z0-9_-]+$/);
    expect(og['og:image:type']).toBe('image/png');
    expect(og['og:image:width']).toBe(120);
    expect(og['og:image:height']).toBe(60);
    expect(og['matrix:image:size']).toBeGreaterThan(0);
    const id = (og['og:image'] as string).split('/').pop();
    const img = await raw(`${allowed.url}/_matrix/client/v1/media/download/media.test/${id}`, { token: al.token });
    expect(img.status).toBe(200);
    expect(img.body.length).toBe(og['matrix:image:size']);
    const plain = await preview(allowed, al, `http://page.test:${port}/plain`);
    expect(plain.json()).toEqual({ 'og:title': 'Just a title', 'og:description': 'desc' });
  });

  it('checks every redirect hop', async () => {
    hits.length = 0;
    const internal = await preview(allowed, al, `http://page.test:${port}/to-internal`);
    expect(internal.status).toBe(403);
    const literal = await preview(allowed, al, `http://page.test:${port}/to-loopback-literal`);
    expect(literal.status).toBe(403);
    // Only the allowed page itself was contacted.
    expect(hits).toEqual(['/to-internal', '/to-loopback-literal']);
  });
});

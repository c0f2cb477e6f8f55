import { Type } from '@sinclair/typebox';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUPPORTED_SPEC_VERSIONS } from '../../src/api/client/versions.js';
import { precompileValidators, registeredRoutes } from '../../src/api/http.js';
import { startServer, type TestServer } from '../_util/server.js';

let t: TestServer;

beforeAll(async () => {
  t = await startServer({
    serverName: 'box.example.org',
    overrides: { max_request_body: 1024, well_known: { client_extra: { 'org.matrix.msc4143.rtc_foci': [{ type: 'livekit', livekit_service_url: 'https://jwt.example.org' }] } } },
    extend(app, listener) {
      if (listener !== 'client') return;
      // An endpoint with a body schema, the way every JSON endpoint of the API declares one.
      app.post(
        '/_test/echo/:id',
        {
          schema: {
            body: Type.Object({ name: Type.String(), count: Type.Integer() }),
            querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1 })) }),
          },
        },
        async (req) => ({ id: (req.params as { id: string }).id, body: req.body, limit: req.query.limit ?? null }),
      );
      app.get('/_test/crash', async () => {
        throw new Error('secret internal detail');
      });
    },
  });
});
afterAll(() => t?.close());

async function call(method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const res = await fetch(t.clientUrl + path, { method, body, headers });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

describe('HTTP basics', () => {
  it('GET /_matrix/client/versions lists the spec versions served', async () => {
    const r = await call('GET', '/_matrix/client/versions');
    expect(r.status).toBe(200);
    expect(r.json.versions).toEqual([...SUPPORTED_SPEC_VERSIONS]);
    expect(r.json.versions).toContain('v1.1');
    expect(typeof r.json.unstable_features).toBe('object');
  });

  it('serves the well-known documents', async () => {
    const c = await call('GET', '/.well-known/matrix/client');
    expect(c.status).toBe(200);
    expect(c.json).toEqual({
      'm.homeserver': { base_url: 'https://box.example.org' },
      'org.matrix.msc4143.rtc_foci': [{ type: 'livekit', livekit_service_url: 'https://jwt.example.org' }],
    });
    const s = await call('GET', '/.well-known/matrix/server');
    expect(s.json).toEqual({ 'm.server': 'box.example.org:8448' });
    const onFederation = await fetch(`${t.federationUrl}/.well-known/matrix/server`).then((r) => r.json());
    expect(onFederation).toEqual({ 'm.server': 'box.example.org:8448' });
    // No support information configured here.
    const support = await call('GET', '/.well-known/matrix/support');
    expect(support.status).toBe(404);
    expect(support.json.errcode).toBe('M_NOT_FOUND');
  });

  it('answers /health on both listeners', async () => {
    expect((await call('GET', '/health')).text).toBe('OK');
    expect(await fetch(`${t.federationUrl}/health`).then((r) => r.text())).toBe('OK');
  });

  it('unknown endpoint: 404 M_UNRECOGNIZED', async () => {
    const r = await call('GET', '/_matrix/client/v3/no_such_thing');
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ errcode: 'M_UNRECOGNIZED', error: expect.any(String) });
    const client = await fetch(`${t.federationUrl}/_matrix/client/versions`);
    expect(client.status).toBe(404);
  });

  it('known endpoint, wrong method: 405 M_UNRECOGNIZED', async () => {
    const r = await call('DELETE', '/_matrix/client/versions');
    expect(r.status).toBe(405);
    expect(r.json.errcode).toBe('M_UNRECOGNIZED');
    expect(r.headers.get('allow')).toContain('GET');
    const p = await call('PUT', '/_test/echo/abc', '{}');
    expect(p.status).toBe(405);
  });

  it('CORS headers on every response and OPTIONS on any path', async () => {
    for (const path of ['/_matrix/client/versions', '/_matrix/client/v3/no_such_thing']) {
      const r = await call('GET', path);
      expect(r.headers.get('access-control-allow-origin')).toBe('*');
      expect(r.headers.get('access-control-allow-methods')).toContain('OPTIONS');
      expect(r.headers.get('access-control-allow-headers')).toContain('Authorization');
    }
    const o = await call('OPTIONS', '/_matrix/client/v3/rooms/!r:x/send/m.room.message/1', undefined, {
      origin: 'https://app.element.io',
      'access-control-request-method': 'PUT',
    });
    expect(o.status).toBe(204);
    expect(o.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('accepts a JSON body with or without a content type', async () => {
    const body = JSON.stringify({ name: 'x', count: 2 });
    const a = await call('POST', '/_test/echo/abc?limit=5', body, { 'content-type': 'application/json' });
    expect(a.status).toBe(200);
    expect(a.json).toEqual({ id: 'abc', body: { name: 'x', count: 2 }, limit: 5 });
    const b = await call('POST', '/_test/echo/abc', body);
    expect(b.json.body).toEqual({ name: 'x', count: 2 });
  });

  it('unparsable body: 400 M_NOT_JSON', async () => {
    const r = await call('POST', '/_test/echo/abc', '{"name": ', { 'content-type': 'application/json' });
    expect(r.status).toBe(400);
    expect(r.json.errcode).toBe('M_NOT_JSON');
  });

  it('wrong shape: 400 M_BAD_JSON, with no type coercion of the body', async () => {
    const missing = await call('POST', '/_test/echo/abc', JSON.stringify({ name: 'x' }));
    expect(missing.status).toBe(400);
    expect(missing.json.errcode).toBe('M_BAD_JSON');
    const stringy = await call('POST', '/_test/echo/abc', JSON.stringify({ name: 'x', count: '2' }));
    expect(stringy.json.errcode).toBe('M_BAD_JSON');
    const notObject = await call('POST', '/_test/echo/abc', '[1,2]');
    expect(notObject.json.errcode).toBe('M_BAD_JSON');
  });

  it('bad query parameter: 400 M_INVALID_PARAM', async () => {
    const r = await call('POST', '/_test/echo/abc?limit=zero', JSON.stringify({ name: 'x', count: 1 }));
    expect(r.status).toBe(400);
    expect(r.json.errcode).toBe('M_INVALID_PARAM');
  });

  it('every route schema compiles (validators are otherwise compiled on first use)', async () => {
    for (const listener of ['client', 'federation'] as const) {
      const app = await t.server.app(listener);
      expect(registeredRoutes(app).length).toBeGreaterThan(listener === 'client' ? 100 : 20);
      // A schema Ajv refuses would throw here instead of failing its endpoint's first request.
      expect(precompileValidators(app)).toBeGreaterThan(listener === 'client' ? 100 : 10);
    }
    // Compiled validators still coerce query strings and reject bad bodies.
    const ok = await call('POST', '/_test/echo/abc?limit=5', JSON.stringify({ name: 'x', count: 1 }));
    expect(ok.json).toEqual({ id: 'abc', body: { name: 'x', count: 1 }, limit: 5 });
    const bad = await call('POST', '/_test/echo/abc', JSON.stringify({ name: 'x', count: '1' }));
    expect(bad.json.errcode).toBe('M_BAD_JSON');
  });

  it('too big: 413 M_TOO_LARGE', async () => {
    const r = await call('POST', '/_test/echo/abc', JSON.stringify({ name: 'x'.repeat(4096), count: 1 }));
    expect(r.status).toBe(413);
    expect(r.json.errcode).toBe('M_TOO_LARGE');
  });

  it('unexpected failures: 500 M_UNKNOWN without internals, logged with a request id', async () => {
    const r = await call('GET', '/_test/crash');
    expect(r.status).toBe(500);
    expect(r.json).toEqual({ errcode: 'M_UNKNOWN', error: 'Internal server error' });
    expect(r.text).not.toContain('secret internal detail');
    const line = t.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'request failed with an unexpected error');
    expect(line?.req_id).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(line?.err?.message).toBe('secret internal detail');
  });

  it('logs requests with their id and without credentials', async () => {
    await call('GET', '/_matrix/client/versions?access_token=sekrit');
    const lines = t.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => typeof l.req_id === 'string')).toBe(true);
    expect(t.logs.join('\n')).not.toContain('sekrit');
  });
});

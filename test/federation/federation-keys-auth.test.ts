import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { federationAuth } from '../../src/api/federation/index.js';
import { FederationHttpError, FederationTlsError, originOf } from '../../src/federation/index.js';
import { signRequest } from '../../src/federation/x-matrix.js';
import { encodeBase64 } from '../../src/protocol/base64.js';
import { generateSigningKey, signJson, verifyJsonSignature } from '../../src/protocol/signing.js';
import { tempDir, type Engine } from '../_util/server.js';
import { createTestCa } from '../_util/test-ca.js';
import { publish, startFedServer, type FedServer } from './_harness.js';

/** A raw HTTPS request to a server's federation port (for hand-made Authorization headers). */
function rawRequest(
  port: number,
  ca: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; json: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const r = httpsRequest(
      { host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body ? { 'content-type': 'application/json' } : {}) }, ca, servername: 'b.test' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(chunks).toString() || '{}') }));
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

describe.each<Engine>(['sqlite', 'postgres'])('federation keys and request authentication on %s', (engine) => {
  const ca = createTestCa();
  const dir = tempDir('myelin-fed-ca-');
  const caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  const oldKey = generateSigningKey('old1');
  const oldExpired = Date.now() - 24 * 3600_000;
  let a: FedServer;
  let b: FedServer;
  let n: FedServer;

  beforeAll(async () => {
    // A: short key validity (1 h) and one old key. N: the notary. B: trusts N, cannot resolve A itself.
    a = await startFedServer({
      name: 'a.test',
      engine,
      ca,
      caFile,
      federation: {
        key_validity_period_ms: 3600_000,
        old_verify_keys: { [oldKey.keyId]: { key: encodeBase64(oldKey.publicKey), expired_ts: oldExpired } },
      },
    });
    n = await startFedServer({ name: 'n.test', engine, ca, caFile });
    let bRef: FedServer | undefined;
    b = await startFedServer({
      name: 'b.test',
      engine,
      ca,
      caFile,
      federation: {
        trusted_key_servers: [{ server_name: 'n.test', verify_keys: {} }],
        allowed_servers: ['a.test', 'n.test'],
      },
      extend: (app, listener) => {
        if (listener !== 'federation') return;
        // B's context exists once create() returns; the listener is built later, on start().
        const auth = { preHandler: (req: any, reply: any) => federationAuth({ federation: bRef!.server.ctx.federation }).preHandler(req, reply) };
        app.get('/_matrix/federation/v1/test-echo', auth, async (req) => ({ origin: originOf(req), url: req.url }));
        app.put('/_matrix/federation/v1/test-echo/:id', auth, async (req) => ({ origin: originOf(req), body: req.body }));
      },
    });
    bRef = b;
    // The notary's key is known to B only after N has started: patch B's trust list in place.
    b.server.ctx.config.federation.trusted_key_servers[0]!.verify_keys[n.key.keyId] = encodeBase64(n.key.publicKey);
    for (const s of [a, b, n]) publish(a.dns, s);
    for (const s of [a, b, n]) publish(n.dns, s);
    publish(b.dns, b);
    publish(b.dns, n);
  });

  afterAll(async () => {
    await Promise.all([a, b, n].filter(Boolean).map((s) => s.close()));
  });

  it('publishes its keys, self-signed, with old keys and the configured validity', async () => {
    const res = await n.server.ctx.federation.client.get<Record<string, any>>('a.test', '/_matrix/key/v2/server', { signed: false });
    expect(res.server_name).toBe('a.test');
    expect(res.verify_keys).toEqual({ [a.key.keyId]: { key: encodeBase64(a.key.publicKey) } });
    expect(res.old_verify_keys).toEqual({ [oldKey.keyId]: { key: encodeBase64(oldKey.publicKey), expired_ts: oldExpired } });
    expect(res.valid_until_ts).toBeGreaterThan(Date.now() + 3500_000);
    expect(res.valid_until_ts).toBeLessThanOrEqual(Date.now() + 3600_000);
    expect(verifyJsonSignature(res, 'a.test', a.key.keyId, a.key.publicKey)).toBe(true);
  });

  it('answers /version over TLS', async () => {
    const res = await a.server.ctx.federation.client.get<Record<string, any>>('b.test', '/_matrix/federation/v1/version');
    expect(res.server.name).toBe('Myelin');
    expect(typeof res.server.version).toBe('string');
  });

  it('fetches keys directly, persists them, and serves them as a notary re-signed', async () => {
    const got = await n.server.ctx.federation.keyring.getVerifyKey('a.test', a.key.keyId, Date.now());
    expect(got && encodeBase64(got)).toBe(encodeBase64(a.key.publicKey));
    const rows = await n.server.ctx.database.db.selectFrom('server_signing_keys').selectAll().where('server_name', '=', 'a.test').execute();
    expect(rows.map((r) => r.key_id).sort()).toEqual([a.key.keyId, oldKey.keyId].sort());
    // The notary endpoint (GET form) returns A's response signed by A and by N.
    const q = await b.server.ctx.federation.client.get<{ server_keys: Record<string, any>[] }>('n.test', '/_matrix/key/v2/query/a.test');
    expect(q.server_keys).toHaveLength(1);
    expect(verifyJsonSignature(q.server_keys[0]!, 'a.test', a.key.keyId, a.key.publicKey)).toBe(true);
    expect(verifyJsonSignature(q.server_keys[0]!, 'n.test', n.key.keyId, n.key.publicKey)).toBe(true);
    // Unknown and unreachable servers are left out.
    const none = await b.server.ctx.federation.client.post<{ server_keys: unknown[] }>('n.test', '/_matrix/key/v2/query', {
      server_keys: { 'nowhere.test': {} },
    });
    expect(none.server_keys).toEqual([]);
  });

  it('fetches keys through a trusted notary when the server cannot be reached directly', async () => {
    const keyring = b.server.ctx.federation.keyring;
    const got = await keyring.getVerifyKey('a.test', a.key.keyId, Date.now());
    expect(got && encodeBase64(got)).toBe(encodeBase64(a.key.publicKey));
    const rows = await b.server.ctx.database.db.selectFrom('server_signing_keys').selectAll().where('server_name', '=', 'a.test').execute();
    expect(rows.find((r) => r.key_id === a.key.keyId)?.fetched_from).toBe('n.test');
  });

  it('accepts a signed request from A to B and tells the handler its origin', async () => {
    const client = a.server.ctx.federation.client;
    const res = await client.get<Record<string, string>>('b.test', '/_matrix/federation/v1/test-echo', { query: { x: 'a b', y: ['1', '2'] } });
    expect(res.origin).toBe('a.test');
    expect(res.url).toBe('/_matrix/federation/v1/test-echo?x=a%20b&y=1&y=2');
    const put = await client.put<Record<string, unknown>>('b.test', '/_matrix/federation/v1/test-echo/1', { hello: ['wörld', 1] });
    expect(put).toEqual({ origin: 'a.test', body: { hello: ['wörld', 1] } });
  });

  it('refuses unsigned, tampered, wrongly addressed and unknown-key requests with 401 M_UNAUTHORIZED', async () => {
    const path = '/_matrix/federation/v1/test-echo/2';
    const body = { n: 1 };
    const sign = (over: Partial<Parameters<typeof signRequest>[0]>) =>
      signRequest({ method: 'PUT', uri: path, origin: 'a.test', destination: 'b.test', content: body, key: a.key, ...over });
    const cases: Array<[string, Record<string, string>, string]> = [
      ['unsigned', {}, JSON.stringify(body)],
      ['other scheme', { authorization: 'Bearer abc' }, JSON.stringify(body)],
      ['malformed', { authorization: 'X-Matrix origin="a.test",key=' }, JSON.stringify(body)],
      ['tampered body', { authorization: sign({}) }, JSON.stringify({ n: 2 })],
      ['other path', { authorization: sign({ uri: '/_matrix/federation/v1/test-echo/3' }) }, JSON.stringify(body)],
      ['other method', { authorization: sign({ method: 'POST' }) }, JSON.stringify(body)],
      ['wrong destination', { authorization: sign({ destination: 'c.test' }) }, JSON.stringify(body)],
      ['signed by another key', { authorization: sign({ key: { ...generateSigningKey(), keyId: a.key.keyId } }) }, JSON.stringify(body)],
      ['unknown key', { authorization: sign({ key: generateSigningKey('nokey') }) }, JSON.stringify(body)],
      ['old key', { authorization: sign({ key: oldKey }) }, JSON.stringify(body)],
    ];
    for (const [what, headers, payload] of cases) {
      const res = await rawRequest(b.port, ca.certPem, 'PUT', path, headers, payload);
      expect([what, res.status, res.json.errcode]).toEqual([what, 401, 'M_UNAUTHORIZED']);
    }
    // The same request, correctly signed, passes.
    const ok = await rawRequest(b.port, ca.certPem, 'PUT', path, { authorization: sign({}) }, JSON.stringify(body));
    expect(ok.status).toBe(200);
    // Headers from servers older than v1.3 carry no destination: still accepted.
    const legacy = sign({}).replace(/destination="b\.test",/, '');
    expect((await rawRequest(b.port, ca.certPem, 'PUT', path, { authorization: legacy }, JSON.stringify(body))).status).toBe(200);
  });

  it('refuses servers outside federation.allowed_servers with 403 M_FORBIDDEN', async () => {
    const evil = generateSigningKey();
    const auth = signRequest({ method: 'GET', uri: '/_matrix/federation/v1/test-echo', origin: 'evil.test', destination: 'b.test', key: evil });
    const res = await rawRequest(b.port, ca.certPem, 'GET', '/_matrix/federation/v1/test-echo', { authorization: auth });
    expect(res.status).toBe(403);
    expect(res.json.errcode).toBe('M_FORBIDDEN');
  });

  it('refuses keys for events after their validity (room v5+) and honours old keys until expired_ts', async () => {
    const keyring = n.server.ctx.federation.keyring;
    const now = Date.now();
    expect(await keyring.getVerifyKey('a.test', a.key.keyId, now)).toBeDefined();
    // A publishes its key as valid for one hour: an event two hours ahead cannot use it.
    expect(await keyring.getVerifyKey('a.test', a.key.keyId, now + 2 * 3600_000)).toBeUndefined();
    // Rooms v1–v4 ignore validity.
    expect(await keyring.getVerifyKey('a.test', a.key.keyId, undefined)).toBeDefined();
    expect(await keyring.getVerifyKey('a.test', oldKey.keyId, oldExpired - 60_000)).toBeDefined();
    expect(await keyring.getVerifyKey('a.test', oldKey.keyId, now)).toBeUndefined();
    expect(await keyring.getVerifyKey('a.test', oldKey.keyId, undefined)).toBeDefined();
    expect(await keyring.getVerifyKey('a.test', oldKey.keyId, undefined, { forRequest: true })).toBeUndefined();

    const event = signJson({ type: 'm.room.message', origin_server_ts: now, content: { body: 'hi' } }, 'a.test', a.key);
    expect(await keyring.verifySignedJson(event, 'a.test', { atTs: now })).toEqual({ ok: true, keyId: a.key.keyId });
    expect((await keyring.verifySignedJson(event, 'a.test', { atTs: now + 2 * 3600_000 })).ok).toBe(false);
    const forged = { ...event, content: { body: 'changed' } };
    expect(await keyring.verifySignedJson(forged, 'a.test', { atTs: now })).toMatchObject({ ok: false, reason: 'bad_signature' });
    expect(await keyring.verifySignedJson({ type: 'x' }, 'a.test', {})).toMatchObject({ ok: false, reason: 'unsigned' });
  });

  it('fails with a TLS error when a server presents a certificate from an untrusted CA', async () => {
    const other = createTestCa('Someone Else');
    const rogue = await startFedServer({ name: 'rogue.test', engine: 'sqlite', ca: other, caFile });
    try {
      publish(a.dns, rogue);
      const err = await a.server.ctx.federation.client.get('rogue.test', '/_matrix/federation/v1/version').catch((e) => e);
      expect(err).toBeInstanceOf(FederationTlsError);
    } finally {
      await rogue.close();
    }
  });

  it('fails with a TLS error when the certificate is for another name', async () => {
    const wrong = await startFedServer({ name: 'wrong.test', engine: 'sqlite', ca, caFile, certNames: ['elsewhere.test'] });
    try {
      publish(a.dns, wrong);
      const err = await a.server.ctx.federation.client.get('wrong.test', '/_matrix/federation/v1/version').catch((e) => e);
      expect(err).toBeInstanceOf(FederationTlsError);
      expect(String(err.message)).toMatch(/wrong\.test|altname|match/i);
    } finally {
      await wrong.close();
    }
  });

  it('reports Matrix errors of the destination as FederationHttpError', async () => {
    const err = await a.server.ctx.federation.client.get('b.test', '/_matrix/federation/v1/no-such-endpoint').catch((e) => e);
    expect(err).toBeInstanceOf(FederationHttpError);
    expect(err.status).toBe(404);
    expect(err.errcode).toBe('M_UNRECOGNIZED');
  });
});

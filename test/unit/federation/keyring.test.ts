import { rmSync } from 'node:fs';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { Keyring, type KeyFetcher } from '../../../src/federation/keyring.js';
import { buildOwnKeyResponse, MAX_KEY_VALIDITY_MS, parseKeyResponse } from '../../../src/federation/server-keys.js';
import { encodeBase64 } from '../../../src/protocol/base64.js';
import { generateSigningKey, signJson, type SigningKey } from '../../../src/protocol/signing.js';
import { openDatabase, type Database } from '../../../src/storage/db.js';
import { ServerKeyStore } from '../../../src/storage/stores/server-keys.js';
import { tempDir } from '../../_util/server.js';

const log = pino({ level: 'silent' });
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function db(): Promise<Database> {
  const dir = tempDir();
  const d = await openDatabase(validateConfig({ server_name: 'me.test', database: { engine: 'sqlite' } }, dir).database, log);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  cleanups.push(() => d.close());
  return d;
}

const NOW = 1_700_000_000_000;
const remoteKey = generateSigningKey('r1');
const notaryKey = generateSigningKey('n1');

function response(validUntil: number, key: SigningKey = remoteKey, name = 'remote.test') {
  return signJson({ server_name: name, verify_keys: { [key.keyId]: { key: encodeBase64(key.publicKey) } }, old_verify_keys: {}, valid_until_ts: validUntil }, name, key);
}

function keyring(database: Database, fetcher: Partial<KeyFetcher>, opts: { now?: () => number; notary?: boolean } = {}) {
  const calls: string[] = [];
  const k = new Keyring({
    serverName: 'me.test',
    signingKey: generateSigningKey('me'),
    oldVerifyKeys: {},
    ownKeyValidityMs: 3600_000,
    store: new ServerKeyStore(database),
    trustedKeyServers: opts.notary ? [{ server_name: 'notary.test', verify_keys: { [notaryKey.keyId]: encodeBase64(notaryKey.publicKey) } }] : [],
    now: opts.now ?? (() => NOW),
    fetcher: {
      fetchServerKeys: async (s) => (calls.push(`direct ${s}`), fetcher.fetchServerKeys ? fetcher.fetchServerKeys(s) : Promise.reject(new Error('down'))),
      queryNotary: async (n, b) => (calls.push(`notary ${n}`), fetcher.queryNotary ? fetcher.queryNotary(n, b) : Promise.reject(new Error('down'))),
    },
  });
  return { k, calls };
}

describe('key responses', () => {
  it('caps validity at 7 days after fetching and requires the self-signature', () => {
    const parsed = parseKeyResponse(response(NOW + 30 * 24 * 3600_000), 'remote.test', NOW);
    expect(parsed.keys[0]!.validUntilTs).toBe(NOW + MAX_KEY_VALIDITY_MS);
    expect(parseKeyResponse(response(NOW + 1000), 'remote.test', NOW).keys[0]!.validUntilTs).toBe(NOW + 1000);
    expect(() => parseKeyResponse(response(NOW + 1000), 'other.test', NOW)).toThrow(/not other.test/);
    const tampered = { ...response(NOW + 1000), valid_until_ts: NOW + 2000 };
    expect(() => parseKeyResponse(tampered, 'remote.test', NOW)).toThrow(/does not verify/);
    const signedByOther = response(NOW + 1000, generateSigningKey('zz'));
    signedByOther.verify_keys = { [remoteKey.keyId]: { key: encodeBase64(remoteKey.publicKey) } };
    expect(() => parseKeyResponse(signedByOther, 'remote.test', NOW)).toThrow(/not signed by any/);
  });

  it('builds our own response with old keys and a verifiable signature', () => {
    const me = generateSigningKey('cur');
    const old = generateSigningKey('old');
    const r = buildOwnKeyResponse({ serverName: 'me.test', signingKey: me, oldVerifyKeys: { [old.keyId]: { key: encodeBase64(old.publicKey), expired_ts: 5 } }, validityMs: 1000, now: NOW });
    const parsed = parseKeyResponse(r, 'me.test', NOW);
    expect(parsed.validUntilTs).toBe(NOW + 1000);
    expect(parsed.keys.map((k) => [k.keyId, k.validUntilTs])).toEqual([
      [me.keyId, NOW + 1000],
      [old.keyId, 5],
    ]);
  });
});

describe('keyring', () => {
  it('fetches once for concurrent lookups and persists keys for the next keyring', async () => {
    const database = await db();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { k, calls } = keyring(database, { fetchServerKeys: async () => (await gate, response(NOW + 3600_000)) });
    const lookups = Array.from({ length: 20 }, () => k.getVerifyKey('remote.test', remoteKey.keyId, NOW));
    release();
    const keys = await Promise.all(lookups);
    expect(keys.every((x) => x && encodeBase64(x) === encodeBase64(remoteKey.publicKey))).toBe(true);
    expect(calls).toEqual(['direct remote.test']);
    const { k: k2, calls: calls2 } = keyring(database, {});
    expect(await k2.getVerifyKey('remote.test', remoteKey.keyId, NOW + 1000)).toBeDefined();
    expect(calls2).toEqual([]);
  });

  it('refetches a key that is not valid long enough, at most once per interval', async () => {
    const database = await db();
    let now = NOW;
    let validUntil = NOW + 1000;
    const { k, calls } = keyring(database, { fetchServerKeys: async () => response(validUntil) }, { now: () => now });
    expect(await k.getVerifyKey('remote.test', remoteKey.keyId, NOW)).toBeDefined();
    expect(await k.getVerifyKey('remote.test', remoteKey.keyId, NOW + 5000)).toBeUndefined();
    expect(calls).toHaveLength(1); // rate limited: fetched moments ago
    now += 31_000;
    validUntil = now + 3600_000;
    expect(await k.getVerifyKey('remote.test', remoteKey.keyId, NOW + 5000)).toBeDefined();
    expect(calls).toHaveLength(2);
  });

  it('falls back to a notary, checks the notary signature, and ignores wrongly signed answers', async () => {
    const database = await db();
    const notarised = signJson(response(NOW + 3600_000), 'notary.test', notaryKey);
    const { k, calls } = keyring(database, { queryNotary: async () => ({ server_keys: [notarised] }) }, { notary: true });
    expect(await k.getVerifyKey('remote.test', remoteKey.keyId, NOW)).toBeDefined();
    expect(calls).toEqual(['direct remote.test', 'notary notary.test']);
    // The stored response keeps only the origin's signature, to be re-signed when we act as a notary.
    const stored = JSON.parse((await new ServerKeyStore(database).getResponse('remote.test'))!.json);
    expect(Object.keys(stored.signatures)).toEqual(['remote.test']);

    const database2 = await db();
    const forged = signJson(response(NOW + 3600_000), 'notary.test', generateSigningKey('n1'));
    const { k: k2 } = keyring(database2, { queryNotary: async () => ({ server_keys: [forged] }) }, { notary: true });
    expect(await k2.getVerifyKey('remote.test', remoteKey.keyId, NOW)).toBeUndefined();
  });

  it('answers for our own server without fetching', async () => {
    const database = await db();
    const { k, calls } = keyring(database, {});
    const own = k.ownKeyResponse();
    const parsed = parseKeyResponse(own, 'me.test', NOW);
    expect(await k.getVerifyKey('me.test', parsed.keys[0]!.keyId, NOW + 10 * 24 * 3600_000)).toBeDefined();
    expect(await k.getVerifyKey('me.test', 'ed25519:nope', NOW)).toBeUndefined();
    expect(calls).toEqual([]);
  });
});

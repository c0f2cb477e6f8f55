import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeBase64, encodeBase64 } from '../../../src/protocol/base64.js';
import {
  decodeSigningKeyFile,
  decodeSigningKeyFileAll,
  encodeSigningKeyFile,
  generateSigningKey,
  parseKeyId,
  signBytes,
  signJson,
  signingKeyFromSeed,
  verifyBytes,
  verifyJsonSignature,
} from '../../../src/protocol/signing.js';

// appendices.md "Cryptographic Test Vectors"
const SEED = decodeBase64('YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');
const KEY = signingKeyFromSeed('ed25519:1', SEED);
const SERVER = 'domain';

describe('appendix JSON signing vectors', () => {
  it('the seed is 32 bytes', () => expect(SEED.length).toBe(32));

  it('signs {}', () => {
    expect(signJson({}, SERVER, KEY)).toEqual({
      signatures: {
        domain: {
          'ed25519:1': 'K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/7Xg4ahLwYGYZzuHGZKM5ZAQ',
        },
      },
    });
  });

  it('signs {"one":1,"two":"Two"}', () => {
    expect(signJson({ one: 1, two: 'Two' }, SERVER, KEY)).toEqual({
      one: 1,
      signatures: {
        domain: {
          'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw',
        },
      },
      two: 'Two',
    });
  });

  it('verifies the vectors with the derived public key', () => {
    const signed = {
      one: 1,
      two: 'Two',
      signatures: {
        domain: { 'ed25519:1': 'KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZhG6kYdD13EIMJpvhJI+6Bw' },
      },
    };
    expect(verifyJsonSignature(signed, SERVER, 'ed25519:1', KEY.publicKey)).toBe(true);
    expect(verifyJsonSignature(signed, SERVER, 'ed25519:1', encodeBase64(KEY.publicKey))).toBe(true);
  });
});

describe('signJson', () => {
  it('does not cover unsigned and keeps it', () => {
    const a = signJson({ x: 1, unsigned: { age: 5 } }, SERVER, KEY);
    const b = signJson({ x: 1 }, SERVER, KEY);
    expect(a.signatures).toEqual(b.signatures);
    expect(a.unsigned).toEqual({ age: 5 });
  });
  it('does not cover existing signatures and merges into them', () => {
    const other = signingKeyFromSeed('ed25519:2', new Uint8Array(32).fill(7));
    const first = signJson({ x: 1, signatures: { 'other.example': { 'ed25519:z': 'abc' } } }, 'other2', other);
    const second = signJson(first, SERVER, KEY);
    expect(Object.keys(second.signatures).sort()).toEqual(['domain', 'other.example', 'other2']);
    expect(second.signatures['other.example']).toEqual({ 'ed25519:z': 'abc' });
    expect(verifyJsonSignature(second, 'other2', 'ed25519:2', other.publicKey)).toBe(true);
    expect(verifyJsonSignature(second, SERVER, 'ed25519:1', KEY.publicKey)).toBe(true);
  });
  it('adds a second key for the same server', () => {
    const k2 = signingKeyFromSeed('ed25519:b', new Uint8Array(32).fill(1));
    const signed = signJson(signJson({ x: 1 }, SERVER, KEY), SERVER, k2);
    expect(Object.keys(signed.signatures[SERVER]!).sort()).toEqual(['ed25519:1', 'ed25519:b']);
  });
  it('returns a new object and leaves the input alone', () => {
    const input = { x: 1, signatures: { a: { 'ed25519:q': 's' } } };
    const out = signJson(input, SERVER, KEY);
    expect(out).not.toBe(input);
    expect(input).toEqual({ x: 1, signatures: { a: { 'ed25519:q': 's' } } });
  });
});

describe('verifyJsonSignature failures', () => {
  const signed = signJson({ a: 1, b: 'two' }, SERVER, KEY);
  const other = generateSigningKey('x');
  it.each([
    ['tampered value', { ...signed, a: 2 }, SERVER, 'ed25519:1', KEY.publicKey],
    ['extra key', { ...signed, c: 3 }, SERVER, 'ed25519:1', KEY.publicKey],
    ['missing key', { b: 'two', signatures: signed.signatures }, SERVER, 'ed25519:1', KEY.publicKey],
    ['wrong server', signed, 'elsewhere', 'ed25519:1', KEY.publicKey],
    ['wrong key id', signed, SERVER, 'ed25519:2', KEY.publicKey],
    ['wrong public key', signed, SERVER, 'ed25519:1', other.publicKey],
    ['malformed public key', signed, SERVER, 'ed25519:1', 'not base64!'],
    ['short public key', signed, SERVER, 'ed25519:1', new Uint8Array(31)],
    ['no signatures', { a: 1, b: 'two' }, SERVER, 'ed25519:1', KEY.publicKey],
    ['garbage signature', { a: 1, b: 'two', signatures: { domain: { 'ed25519:1': '!!!' } } }, SERVER, 'ed25519:1', KEY.publicKey],
    ['signature not a string', { a: 1, b: 'two', signatures: { domain: { 'ed25519:1': 5 } } }, SERVER, 'ed25519:1', KEY.publicKey],
    ['unencodable object', { ...signed, u: undefined }, SERVER, 'ed25519:1', KEY.publicKey],
  ])('%s', (_name, obj, server, keyId, pk) => {
    expect(verifyJsonSignature(obj, server, keyId, pk)).toBe(false);
  });
  it('unsigned changes do not break the signature', () => {
    expect(verifyJsonSignature({ ...signed, unsigned: { age: 1 } }, SERVER, 'ed25519:1', KEY.publicKey)).toBe(true);
  });
});

describe('raw bytes', () => {
  it('sign/verify round trip', () => {
    const sig = signBytes(KEY, 'hello');
    expect(sig.length).toBe(64);
    expect(verifyBytes(KEY.publicKey, 'hello', sig)).toBe(true);
    expect(verifyBytes(KEY.publicKey, 'hellO', sig)).toBe(false);
    expect(verifyBytes(encodeBase64(KEY.publicKey), new TextEncoder().encode('hello'), encodeBase64(sig))).toBe(true);
  });
  it('ed25519 is deterministic', () => {
    expect(encodeBase64(signBytes(KEY, 'x'))).toBe(encodeBase64(signBytes(KEY, 'x')));
  });
});

describe('keys', () => {
  it('generateSigningKey uses the given version', () => {
    const k = generateSigningKey('a_bc');
    expect(k.keyId).toBe('ed25519:a_bc');
    expect(k.seed.length).toBe(32);
    expect(k.publicKey.length).toBe(32);
  });
  it('generateSigningKey picks a random alphanumeric version', () => {
    const a = generateSigningKey();
    const b = generateSigningKey();
    expect(a.keyId).toMatch(/^ed25519:[A-Za-z0-9]+$/);
    expect(a.seed).not.toEqual(b.seed);
  });
  it.each([['ed25519:a b'], ['ed25519:'], ['ed25519'], ['ed25519:a:b']])('rejects key id %j', (id) => {
    expect(() => signingKeyFromSeed(id, SEED)).toThrow();
  });
  it('rejects non-ed25519 algorithms', () => expect(() => signingKeyFromSeed('curve25519:1', SEED)).toThrow());
  it('rejects a short seed', () => expect(() => signingKeyFromSeed('ed25519:1', new Uint8Array(31))).toThrow());
  it('parseKeyId splits', () => expect(parseKeyId('ed25519:abc_1')).toEqual({ algorithm: 'ed25519', version: 'abc_1' }));
  it('public key derivation is stable', () => {
    expect(signingKeyFromSeed('ed25519:9', SEED).publicKey).toEqual(KEY.publicKey);
  });
});

describe('signing key file', () => {
  it('encodes in the one-line Synapse format', () => {
    expect(encodeSigningKeyFile(KEY)).toBe(`ed25519 1 ${encodeBase64(SEED)}\n`);
  });
  it('round-trips', () => {
    const k = generateSigningKey('a_XyZ');
    const back = decodeSigningKeyFile(encodeSigningKeyFile(k));
    expect(back.keyId).toBe('ed25519:a_XyZ');
    expect([...back.seed]).toEqual([...k.seed]);
    expect([...back.publicKey]).toEqual([...k.publicKey]);
  });
  it('reads the appendix seed as written', () => {
    const k = decodeSigningKeyFile('ed25519 1 YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1');
    expect([...k.publicKey]).toEqual([...KEY.publicKey]);
  });
  it('accepts padded seeds, CRLF and blank lines; reads several keys', () => {
    const text = `\r\ned25519 a ${Buffer.from(SEED).toString('base64')}\r\n\ned25519 b ${encodeBase64(new Uint8Array(32))}\n`;
    const keys = decodeSigningKeyFileAll(text);
    expect(keys.map((k) => k.keyId)).toEqual(['ed25519:a', 'ed25519:b']);
    expect(decodeSigningKeyFile(text).keyId).toBe('ed25519:a');
  });
  it.each([
    [''],
    ['\n\n'],
    ['ed25519 1'],
    ['rsa 1 ' + encodeBase64(SEED)],
    ['ed25519 1 ' + encodeBase64(new Uint8Array(16))],
    ['ed25519 1 !!!!'],
    ['ed25519 a-b ' + encodeBase64(SEED)],
    ['ed25519 1 ' + encodeBase64(SEED) + ' extra'],
  ])('rejects %j', (text) => {
    expect(() => decodeSigningKeyFile(text)).toThrow();
  });
});

describe('properties', () => {
  const value = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.integer(),
      fc.string(),
      fc.array(tie('v'), { maxLength: 4 }),
      fc.dictionary(fc.string({ maxLength: 5 }), tie('v'), { maxKeys: 4 }),
    ),
  })).v;
  const obj = fc.dictionary(fc.string({ maxLength: 6 }).filter((k) => k !== 'signatures' && k !== 'unsigned'), value, { minKeys: 1, maxKeys: 6 });

  it('every signed object verifies, whatever its key order', () => {
    fc.assert(fc.property(obj, (o) => {
      const signed = signJson(o, SERVER, KEY);
      expect(verifyJsonSignature(signed, SERVER, 'ed25519:1', KEY.publicKey)).toBe(true);
      const reordered = Object.fromEntries(Object.entries(signed).reverse());
      expect(verifyJsonSignature(reordered, SERVER, 'ed25519:1', KEY.publicKey)).toBe(true);
    }), { numRuns: 100 });
  });
  it('changing any top-level value breaks the signature', () => {
    fc.assert(fc.property(obj, fc.nat(), (o, pick) => {
      const signed = signJson(o, SERVER, KEY) as Record<string, unknown>;
      const keys = Object.keys(o);
      const k = keys[pick % keys.length]!;
      const tampered = { ...signed, [k]: { tampered: signed[k] ?? null } };
      expect(verifyJsonSignature(tampered, SERVER, 'ed25519:1', KEY.publicKey)).toBe(false);
    }), { numRuns: 100 });
  });
});

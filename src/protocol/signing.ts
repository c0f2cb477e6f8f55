/**
 * ed25519 signing keys and JSON signing (appendices "Signing JSON", "Checking for a Signature").
 */
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { decodeBase64, encodeBase64 } from './base64.js';
import { canonicalJson } from './canonical-json.js';

export interface SigningKey {
  /** `ed25519:<version>` */
  keyId: string;
  /** The 32-byte ed25519 seed (the private key). */
  seed: Uint8Array;
  /** The 32-byte ed25519 public key. */
  publicKey: Uint8Array;
}

export class SigningKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SigningKeyError';
  }
}

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** Key versions (the part after `ed25519:`) are `[a-zA-Z0-9_]+`. */
const KEY_VERSION = /^[A-Za-z0-9_]+$/;
const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

export function isValidKeyVersion(version: string): boolean {
  return KEY_VERSION.test(version);
}

/** Splits `ed25519:abc` into algorithm and version; throws unless the algorithm is ed25519. */
export function parseKeyId(keyId: string): { algorithm: string; version: string } {
  const colon = keyId.indexOf(':');
  if (colon <= 0) throw new SigningKeyError(`malformed key id ${JSON.stringify(keyId)}`);
  const algorithm = keyId.slice(0, colon);
  const version = keyId.slice(colon + 1);
  if (!isValidKeyVersion(version)) throw new SigningKeyError(`malformed key version in ${JSON.stringify(keyId)}`);
  return { algorithm, version };
}

function seedKeyObject(seed: Uint8Array): KeyObject {
  if (seed.length !== 32) throw new SigningKeyError(`ed25519 seed must be 32 bytes, got ${seed.length}`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32) throw new SigningKeyError(`ed25519 public key must be 32 bytes, got ${publicKey.length}`);
  return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]), format: 'der', type: 'spki' });
}

// KeyObjects are comparatively costly to build; cache them per seed array and per public key.
const privateCache = new WeakMap<Uint8Array, KeyObject>();
const publicCache = new Map<string, KeyObject>();
const PUBLIC_CACHE_MAX = 1024;

function cachedPrivate(seed: Uint8Array): KeyObject {
  let k = privateCache.get(seed);
  if (!k) {
    k = seedKeyObject(seed);
    privateCache.set(seed, k);
  }
  return k;
}

function cachedPublic(publicKey: Uint8Array): KeyObject {
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('base64');
  let k = publicCache.get(id);
  if (!k) {
    k = publicKeyObject(publicKey);
    if (publicCache.size >= PUBLIC_CACHE_MAX) {
      const oldest = publicCache.keys().next().value;
      if (oldest !== undefined) publicCache.delete(oldest);
    }
    publicCache.set(id, k);
  }
  return k;
}

/** Derives the 32-byte public key of an ed25519 seed. */
export function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  const der = createPublicKey(seedKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return new Uint8Array(der.subarray(der.length - 32));
}

export function signingKeyFromSeed(keyId: string, seed: Uint8Array): SigningKey {
  const { algorithm } = parseKeyId(keyId);
  if (algorithm !== 'ed25519') throw new SigningKeyError(`unsupported signing algorithm ${algorithm}`);
  const s = new Uint8Array(seed);
  return { keyId, seed: s, publicKey: publicKeyFromSeed(s) };
}

/** Draws a fresh key from the system CSPRNG. The version is random alphanumerics unless given. */
export function generateSigningKey(version?: string): SigningKey {
  let v = version;
  if (v === undefined) {
    const r = randomBytes(6);
    v = Array.from(r, (b) => ALNUM[b % ALNUM.length]).join('');
  }
  if (!isValidKeyVersion(v)) throw new SigningKeyError(`invalid key version ${JSON.stringify(v)}`);
  return signingKeyFromSeed(`ed25519:${v}`, randomBytes(32));
}

/** The key as a crypto KeyObject (cached; it can be sent to a worker thread). */
export function privateKeyObject(key: SigningKey): KeyObject {
  return cachedPrivate(key.seed);
}

export function signBytes(key: SigningKey, data: Uint8Array | string): Uint8Array {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return new Uint8Array(sign(null, bytes, cachedPrivate(key.seed)));
}

/** Verifies an ed25519 signature; returns false (never throws) for malformed keys or signatures. */
export function verifyBytes(publicKey: Uint8Array | string, data: Uint8Array | string, signature: Uint8Array | string): boolean {
  try {
    const pk = typeof publicKey === 'string' ? decodeBase64(publicKey) : publicKey;
    const sig = typeof signature === 'string' ? decodeBase64(signature) : signature;
    if (pk.length !== 32 || sig.length !== 64) return false;
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    return verify(null, bytes, cachedPublic(pk), sig);
  } catch {
    return false;
  }
}

export type SignatureMap = Record<string, Record<string, string>>;

/** The object without `signatures` and `unsigned`: what a JSON signature covers. */
export function signableJson(obj: object): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...(obj as Record<string, unknown>) };
  delete rest['signatures'];
  delete rest['unsigned'];
  return rest;
}

/** Signs canonical JSON of `obj` minus `signatures`/`unsigned`; returns the unpadded base64 signature. */
export function jsonSignature(obj: object, key: SigningKey): string {
  return encodeBase64(signBytes(key, canonicalJson(signableJson(obj))));
}

/**
 * Returns a copy of `obj` with `key`'s signature added under `signatures[serverName][keyId]`,
 * keeping any existing signatures and the `unsigned` object. The input is not modified.
 */
export function signJson<T extends object>(obj: T, serverName: string, key: SigningKey): T & { signatures: SignatureMap } {
  const signature = jsonSignature(obj, key);
  const existing = (obj as { signatures?: unknown }).signatures;
  const signatures: SignatureMap = {};
  if (existing && typeof existing === 'object' && !Array.isArray(existing)) {
    for (const [server, sigs] of Object.entries(existing as SignatureMap)) {
      signatures[server] = { ...sigs };
    }
  }
  signatures[serverName] = { ...(signatures[serverName] ?? {}), [key.keyId]: signature };
  return { ...obj, signatures } as T & { signatures: SignatureMap };
}

/**
 * Checks `obj.signatures[serverName][keyId]` against `publicKey` (bytes or unpadded base64).
 * Returns false when the signature is missing, malformed or wrong, or the object cannot be
 * canonically encoded.
 */
export function verifyJsonSignature(
  obj: object,
  serverName: string,
  keyId: string,
  publicKey: Uint8Array | string,
): boolean {
  const signatures = (obj as { signatures?: unknown }).signatures;
  if (!signatures || typeof signatures !== 'object') return false;
  const byServer = (signatures as Record<string, unknown>)[serverName];
  if (!byServer || typeof byServer !== 'object') return false;
  const sig = (byServer as Record<string, unknown>)[keyId];
  if (typeof sig !== 'string') return false;
  if (!keyId.startsWith('ed25519:')) return false;
  let text: string;
  try {
    text = canonicalJson(signableJson(obj));
  } catch {
    return false;
  }
  return verifyBytes(publicKey, text, sig);
}

/** One line of a Synapse-compatible signing key file: `ed25519 <version> <unpadded base64 seed>`. */
export function encodeSigningKeyFile(key: SigningKey): string {
  const { algorithm, version } = parseKeyId(key.keyId);
  return `${algorithm} ${version} ${encodeBase64(key.seed)}\n`;
}

/** All keys of a signing key file (one per non-blank line). */
export function decodeSigningKeyFileAll(text: string): SigningKey[] {
  const keys: SigningKey[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const parts = line.split(/\s+/);
    if (parts.length !== 3) throw new SigningKeyError(`signing key file line ${i + 1}: expected "<algorithm> <version> <seed>"`);
    const [algorithm, version, seed] = parts as [string, string, string];
    if (algorithm !== 'ed25519') throw new SigningKeyError(`signing key file line ${i + 1}: unsupported algorithm ${algorithm}`);
    if (!isValidKeyVersion(version)) throw new SigningKeyError(`signing key file line ${i + 1}: invalid key version`);
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64(seed);
    } catch {
      throw new SigningKeyError(`signing key file line ${i + 1}: seed is not base64`);
    }
    if (bytes.length !== 32) throw new SigningKeyError(`signing key file line ${i + 1}: seed must be 32 bytes`);
    keys.push(signingKeyFromSeed(`${algorithm}:${version}`, bytes));
  }
  return keys;
}

/** The first key of a signing key file; throws if there is none. */
export function decodeSigningKeyFile(text: string): SigningKey {
  const keys = decodeSigningKeyFileAll(text);
  if (keys.length === 0) throw new SigningKeyError('signing key file holds no key');
  return keys[0]!;
}

/**
 * Server key responses (`/_matrix/key/v2/server`): building ours, and checking other servers'.
 */
import { decodeBase64, encodeBase64 } from '../protocol/base64.js';
import type { JsonObject } from '../protocol/json.js';
import { isValidKeyVersion, signJson, verifyJsonSignature, type SigningKey } from '../protocol/signing.js';

/** Keys are never trusted beyond this far past the moment they were fetched (room v5+). */
export const MAX_KEY_VALIDITY_MS = 7 * 24 * 3600_000;

export interface OldVerifyKey {
  key: string;
  expired_ts: number;
}

/** Our signed key response, valid for `validityMs` from `now`. */
export function buildOwnKeyResponse(opts: {
  serverName: string;
  signingKey: SigningKey;
  oldVerifyKeys: Record<string, OldVerifyKey>;
  validityMs: number;
  now: number;
}): JsonObject {
  const old: JsonObject = {};
  for (const [id, k] of Object.entries(opts.oldVerifyKeys)) {
    if (id !== opts.signingKey.keyId) old[id] = { key: k.key, expired_ts: k.expired_ts };
  }
  const body = {
    server_name: opts.serverName,
    verify_keys: { [opts.signingKey.keyId]: { key: encodeBase64(opts.signingKey.publicKey) } },
    old_verify_keys: old,
    valid_until_ts: opts.now + opts.validityMs,
  };
  return signJson(body, opts.serverName, opts.signingKey) as unknown as JsonObject;
}

export interface ParsedServerKey {
  keyId: string;
  /** Unpadded base64. */
  key: string;
  publicKey: Uint8Array;
  /** Signatures made up to this time may be verified with the key. */
  validUntilTs: number;
  expiredTs?: number;
}

export interface ParsedKeyResponse {
  serverName: string;
  /** valid_until_ts as published. */
  validUntilTs: number;
  keys: ParsedServerKey[];
}

export class KeyResponseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyResponseError';
  }
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function keyIdOk(id: string): boolean {
  return id.startsWith('ed25519:') && isValidKeyVersion(id.slice('ed25519:'.length));
}

function decodeKey(id: string, key: unknown): Uint8Array {
  if (typeof key !== 'string') throw new KeyResponseError(`key ${id} has no key string`);
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(key);
  } catch {
    throw new KeyResponseError(`key ${id} is not base64`);
  }
  if (bytes.length !== 32) throw new KeyResponseError(`key ${id} is not a 32-byte ed25519 key`);
  return bytes;
}

/**
 * Checks a `/_matrix/key/v2/server` response of `serverName`: shape, server name, and its
 * self-signature (every signature of the server by one of its `verify_keys` must verify, and
 * there must be at least one). Current keys are valid until the lesser of `valid_until_ts` and
 * `now` + 7 days; old keys until their `expired_ts`.
 */
export function parseKeyResponse(json: unknown, serverName: string, now: number): ParsedKeyResponse {
  if (!isObj(json)) throw new KeyResponseError('key response is not an object');
  if (json['server_name'] !== serverName) {
    throw new KeyResponseError(`key response is for ${JSON.stringify(json['server_name'])}, not ${serverName}`);
  }
  const validUntil = json['valid_until_ts'];
  if (typeof validUntil !== 'number' || !Number.isSafeInteger(validUntil)) throw new KeyResponseError('valid_until_ts is missing');
  const verifyKeys = json['verify_keys'];
  if (!isObj(verifyKeys)) throw new KeyResponseError('verify_keys is missing');
  const keys: ParsedServerKey[] = [];
  const effective = Math.min(validUntil, now + MAX_KEY_VALIDITY_MS);
  for (const [id, v] of Object.entries(verifyKeys)) {
    if (!keyIdOk(id)) continue; // unknown algorithms are ignored
    if (!isObj(v)) throw new KeyResponseError(`verify key ${id} is not an object`);
    const publicKey = decodeKey(id, v['key']);
    keys.push({ keyId: id, key: v['key'] as string, publicKey, validUntilTs: effective });
  }
  const sigs = isObj(json['signatures']) ? json['signatures'][serverName] : undefined;
  if (!isObj(sigs)) throw new KeyResponseError(`key response is not signed by ${serverName}`);
  let verified = 0;
  for (const id of Object.keys(sigs)) {
    const k = keys.find((x) => x.keyId === id);
    if (!k) continue;
    if (!verifyJsonSignature(json, serverName, id, k.publicKey)) {
      throw new KeyResponseError(`signature ${id} of ${serverName} on its key response does not verify`);
    }
    verified++;
  }
  if (verified === 0) throw new KeyResponseError(`key response is not signed by any of ${serverName}'s verify_keys`);
  const old = json['old_verify_keys'];
  if (old !== undefined && isObj(old)) {
    for (const [id, v] of Object.entries(old)) {
      if (!keyIdOk(id) || !isObj(v) || keys.some((k) => k.keyId === id)) continue;
      const expired = v['expired_ts'];
      if (typeof expired !== 'number' || !Number.isSafeInteger(expired)) continue;
      keys.push({ keyId: id, key: v['key'] as string, publicKey: decodeKey(id, v['key']), validUntilTs: expired, expiredTs: expired });
    }
  }
  return { serverName, validUntilTs: validUntil, keys };
}

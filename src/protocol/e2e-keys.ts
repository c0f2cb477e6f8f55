/**
 * End-to-end encryption key objects (client-server API, "End-to-End Encryption" module):
 * device keys, one-time and fallback key objects, cross-signing keys, and the rule for
 * replacing a session in a server-side key backup. Pure checks: each returns a reason string
 * when the object is invalid, undefined when it is valid.
 */
import { decodeBase64 } from './base64.js';
import { canonicalJson } from './canonical-json.js';
import { isJsonObject, type JsonObject } from './json.js';
import { verifyJsonSignature } from './signing.js';

export type CrossSigningUsage = 'master' | 'self_signing' | 'user_signing';

/** Why a key object was refused: a malformed object, or a signature that does not verify. */
export interface KeyProblem {
  kind: 'malformed' | 'signature';
  reason: string;
}

const malformed = (reason: string): KeyProblem => ({ kind: 'malformed', reason });
const badSignature = (reason: string): KeyProblem => ({ kind: 'signature', reason });

/** True for unpadded base64 of exactly 32 bytes (ed25519 and curve25519 public keys). */
export function isKey32(s: unknown): s is string {
  if (typeof s !== 'string' || s.length !== 43) return false;
  try {
    return decodeBase64(s).length === 32;
  } catch {
    return false;
  }
}

/** Splits `<algorithm>:<key id>`; undefined unless both parts are non-empty. */
export function splitKeyId(id: string): { algorithm: string; keyId: string } | undefined {
  const i = id.indexOf(':');
  if (i <= 0 || i === id.length - 1) return undefined;
  return { algorithm: id.slice(0, i), keyId: id.slice(i + 1) };
}

function checkSignaturesShape(sigs: unknown): string | undefined {
  if (!isJsonObject(sigs)) return 'signatures must be an object';
  for (const [user, byKey] of Object.entries(sigs)) {
    if (!isJsonObject(byKey)) return `signatures of ${user} must be an object`;
    for (const v of Object.values(byKey)) if (typeof v !== 'string') return 'signatures must be strings';
  }
  return undefined;
}

/**
 * Device keys uploaded by `userId`'s device `deviceId`: they must name that user and device,
 * carry the device's ed25519 key, and be signed by it.
 */
export function checkDeviceKeys(dk: unknown, userId: string, deviceId: string): KeyProblem | undefined {
  if (!isJsonObject(dk)) return malformed('device_keys must be an object');
  if (dk.user_id !== userId) return malformed('device_keys.user_id does not match the logged-in user');
  if (dk.device_id !== deviceId) return malformed('device_keys.device_id does not match the logged-in device');
  if (!Array.isArray(dk.algorithms) || !dk.algorithms.every((a) => typeof a === 'string')) return malformed('device_keys.algorithms must be an array of strings');
  if (!isJsonObject(dk.keys)) return malformed('device_keys.keys must be an object');
  for (const [name, value] of Object.entries(dk.keys)) {
    const parts = splitKeyId(name);
    if (!parts || parts.keyId !== deviceId) return malformed(`device key name ${name} must be <algorithm>:${deviceId}`);
    if (typeof value !== 'string') return malformed(`device key ${name} must be a string`);
  }
  const ed = dk.keys[`ed25519:${deviceId}`];
  if (!isKey32(ed)) return malformed(`device_keys.keys must hold a valid ed25519:${deviceId} key`);
  const curve = dk.keys[`curve25519:${deviceId}`];
  if (curve !== undefined && !isKey32(curve)) return malformed(`curve25519:${deviceId} is not a valid key`);
  const shape = checkSignaturesShape(dk.signatures);
  if (shape) return malformed(`device_keys.${shape}`);
  if (!verifyJsonSignature(dk, userId, `ed25519:${deviceId}`, ed)) return badSignature("device_keys are not signed by the device's ed25519 key");
  return undefined;
}

/**
 * A one-time or fallback key `<algorithm>:<key id>` of a device. Signed algorithms
 * (`signed_curve25519`) take a KeyObject signed by the device's ed25519 key; the unsigned
 * `curve25519` takes the bare key string.
 */
export function checkOneTimeKey(name: string, value: unknown, userId: string, deviceId: string, deviceEd25519: string | undefined): KeyProblem | undefined {
  const parts = splitKeyId(name);
  if (!parts) return malformed(`key name ${name} must be <algorithm>:<key id>`);
  if (typeof value === 'string') {
    if (parts.algorithm.startsWith('signed_')) return malformed(`${name} must be a signed key object`);
    return isKey32(value) ? undefined : malformed(`${name} is not a valid key`);
  }
  if (!isJsonObject(value)) return malformed(`${name} must be a key object or a string`);
  if (!isKey32(value.key)) return malformed(`${name}.key is not a valid key`);
  if (value.fallback !== undefined && typeof value.fallback !== 'boolean') return malformed(`${name}.fallback must be a boolean`);
  const shape = checkSignaturesShape(value.signatures);
  if (shape) return malformed(`${name}.${shape}`);
  if (deviceEd25519 === undefined) return malformed(`${name} cannot be checked: upload the device keys first`);
  if (!verifyJsonSignature(value, userId, `ed25519:${deviceId}`, deviceEd25519)) return badSignature(`${name} is not signed by the device's ed25519 key`);
  return undefined;
}

/**
 * A cross-signing key of `userId` with the given usage: exactly one `ed25519:<public key>`
 * entry whose value is that public key. Returns the public key, or the problem.
 */
export function parseCrossSigningKey(k: unknown, userId: string, usage: CrossSigningUsage): { publicKey: string } | KeyProblem {
  if (!isJsonObject(k)) return malformed(`the ${usage} key must be an object`);
  if (k.user_id !== userId) return malformed(`the ${usage} key must belong to ${userId}`);
  if (!Array.isArray(k.usage) || !k.usage.every((u) => typeof u === 'string') || !k.usage.includes(usage)) {
    return malformed(`the ${usage} key must list "${usage}" in usage`);
  }
  if (!isJsonObject(k.keys)) return malformed(`the ${usage} key needs keys`);
  const entries = Object.entries(k.keys);
  if (entries.length !== 1) return malformed(`the ${usage} key must hold exactly one key`);
  const [name, value] = entries[0]!;
  if (name !== `ed25519:${String(value)}` || !isKey32(value)) return malformed(`the ${usage} key must be ed25519:<public key> with that public key as value`);
  if (k.signatures !== undefined) {
    const shape = checkSignaturesShape(k.signatures);
    if (shape) return malformed(`the ${usage} key's ${shape}`);
  }
  return { publicKey: value };
}

export function isKeyProblem(x: unknown): x is KeyProblem {
  return typeof x === 'object' && x !== null && 'kind' in x && 'reason' in x;
}

/** True if `obj` carries a valid signature of `signerUserId` by the ed25519 key `publicKey`. */
export function signedBy(obj: JsonObject, signerUserId: string, publicKey: string): boolean {
  return verifyJsonSignature(obj, signerUserId, `ed25519:${publicKey}`, publicKey);
}

/** Two key objects are the same key when they agree on everything but signatures and unsigned. */
export function sameSignedContent(a: JsonObject, b: JsonObject): boolean {
  const strip = (o: JsonObject) => {
    const { signatures: _s, unsigned: _u, ...rest } = o;
    return rest;
  };
  try {
    return canonicalJson(strip(a)) === canonicalJson(strip(b));
  } catch {
    return false;
  }
}

/** Metadata of a backed-up megolm session (KeyBackupData without session_data). */
export interface BackupKeyMeta {
  is_verified: boolean;
  first_message_index: number;
  forwarded_count: number;
}

/**
 * Server-side key backup: whether an uploaded key replaces the stored one for the same
 * session. A verified key beats an unverified one; then the lower first_message_index wins;
 * then the lower forwarded_count. Ties keep the stored key.
 */
export function backupKeyReplaces(incoming: BackupKeyMeta, existing: BackupKeyMeta): boolean {
  if (incoming.is_verified !== existing.is_verified) return incoming.is_verified;
  if (incoming.first_message_index !== existing.first_message_index) return incoming.first_message_index < existing.first_message_index;
  return incoming.forwarded_count < existing.forwarded_count;
}

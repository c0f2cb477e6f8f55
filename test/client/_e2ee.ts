/** Test helpers for end-to-end encryption: real ed25519 keys and signatures built like a client's. */
import { randomBytes } from 'node:crypto';
import { encodeBase64 } from '../../src/protocol/base64.js';
import { jsonSignature, publicKeyFromSeed, type SigningKey } from '../../src/protocol/signing.js';

export interface Ed25519 {
  key: SigningKey;
  /** Unpadded base64 public key. */
  pub: string;
}

/** A fresh ed25519 key whose key ID is `ed25519:<id>` (a device ID, or the public key itself when omitted). */
export function ed25519(id?: string): Ed25519 {
  const seed = new Uint8Array(randomBytes(32));
  const publicKey = publicKeyFromSeed(seed);
  const pub = encodeBase64(publicKey);
  return { key: { keyId: `ed25519:${id ?? pub}`, seed, publicKey }, pub };
}

export function curveKey(): string {
  return encodeBase64(new Uint8Array(randomBytes(32)));
}

/** Adds `by`'s signature under `signatures[userId]`. */
export function sign<T extends object>(obj: T, userId: string, by: Ed25519): T & { signatures: Record<string, Record<string, string>> } {
  const sig = jsonSignature(obj, by.key);
  const existing = ((obj as { signatures?: Record<string, Record<string, string>> }).signatures ?? {}) as Record<string, Record<string, string>>;
  return { ...obj, signatures: { ...existing, [userId]: { ...(existing[userId] ?? {}), [by.key.keyId]: sig } } };
}

export interface TestDevice {
  userId: string;
  deviceId: string;
  ed: Ed25519;
  curve: string;
  deviceKeys: Record<string, unknown>;
}

export function makeDevice(userId: string, deviceId: string): TestDevice {
  const ed = ed25519(deviceId);
  const curve = curveKey();
  const unsigned = {
    user_id: userId,
    device_id: deviceId,
    algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
    keys: { [`ed25519:${deviceId}`]: ed.pub, [`curve25519:${deviceId}`]: curve },
  };
  return { userId, deviceId, ed, curve, deviceKeys: sign(unsigned, userId, ed) };
}

/** `n` signed_curve25519 one-time keys signed by the device, named from `start`. */
export function oneTimeKeys(d: TestDevice, n: number, start = 0, fallback = false): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = start; i < start + n; i++) {
    const obj = fallback ? { key: curveKey(), fallback: true } : { key: curveKey() };
    out[`signed_curve25519:AAAA${i}`] = sign(obj, d.userId, d.ed);
  }
  return out;
}

export interface CrossSigning {
  master: Ed25519;
  selfSigning: Ed25519;
  userSigning: Ed25519;
  body: { master_key: Record<string, unknown>; self_signing_key: Record<string, unknown>; user_signing_key: Record<string, unknown> };
}

export function makeCrossSigning(userId: string): CrossSigning {
  const master = ed25519();
  const selfSigning = ed25519();
  const userSigning = ed25519();
  const key = (k: Ed25519, usage: string) => ({ user_id: userId, usage: [usage], keys: { [k.key.keyId]: k.pub } });
  return {
    master,
    selfSigning,
    userSigning,
    body: {
      master_key: key(master, 'master'),
      self_signing_key: sign(key(selfSigning, 'self_signing'), userId, master),
      user_signing_key: sign(key(userSigning, 'user_signing'), userId, master),
    },
  };
}

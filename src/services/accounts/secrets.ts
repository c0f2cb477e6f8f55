import * as crypto from 'node:crypto';
import { createHash, randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';

/**
 * Passwords are hashed with scrypt (memory-hard). Default cost: N = 2^15, r = 8, p = 1, which
 * uses 128·N·r = 32 MiB and ~50–150 ms of one core per hash on a small ARM board. At most
 * four hashes run at once (the libuv thread pool), so the worst case is ~128 MiB, affordable
 * on a 1 GB box. Hashes are self-describing — `$scrypt$ln=15,r=8,p=1$<salt>$<hash>` with
 * unpadded base64url salt (16 bytes) and hash (32 bytes) — so the cost can change later
 * (config `password_hashing.scrypt_log_n`) without invalidating stored passwords.
 */
export interface ScryptParams {
  logN: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { logN: 15, r: 8, p: 1 };
const KEY_LEN = 32;
const SALT_LEN = 16;

function scrypt(password: string, salt: Buffer, params: ScryptParams, keyLen: number): Promise<Buffer> {
  const N = 2 ** params.logN;
  const opts: ScryptOptions = { N, r: params.r, p: params.p, maxmem: 128 * N * params.r * params.p + 16 * 1024 * 1024 };
  return new Promise((resolve, reject) =>
    scryptCb(password.normalize('NFKC'), salt, keyLen, opts, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_LEN);
  const key = await scrypt(password, salt, params, KEY_LEN);
  return `$scrypt$ln=${params.logN},r=${params.r},p=${params.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

const FORMAT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

/** Parameters of a stored hash, or undefined when the format is not recognised. */
export function parsePasswordHash(stored: string): (ScryptParams & { salt: Buffer; key: Buffer }) | undefined {
  const m = FORMAT.exec(stored);
  if (!m) return undefined;
  const logN = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (logN < 1 || logN > 22 || r < 1 || p < 1) return undefined;
  return { logN, r, p, salt: Buffer.from(m[4]!, 'base64url'), key: Buffer.from(m[5]!, 'base64url') };
}

/** Constant-time check of a password against a stored hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parsePasswordHash(stored);
  if (!parsed || parsed.key.length === 0) return false;
  const key = await scrypt(password, parsed.salt, parsed, parsed.key.length);
  return timingSafeEqual(key, parsed.key);
}

/** Whether a stored hash was made with weaker parameters than the current ones (re-hash on login). */
export function needsRehash(stored: string, params: ScryptParams): boolean {
  const parsed = parsePasswordHash(stored);
  return !parsed || parsed.logN < params.logN || parsed.r !== params.r || parsed.p !== params.p;
}

/** Token kinds and their recognisable prefixes. */
export const TOKEN_PREFIX = { access: 'mat_', refresh: 'matr_', login: 'matl_' } as const;

/** A new random token: prefix + 32 random bytes, unpadded base64url. */
export function newToken(kind: keyof typeof TOKEN_PREFIX): string {
  return TOKEN_PREFIX[kind] + randomBytes(32).toString('base64url');
}

/** crypto.hash (Node.js 20.12 and later): a one-shot digest without a Hash object, about 3× cheaper for short inputs. */
const oneShotHash: typeof crypto.hash | undefined = typeof crypto.hash === 'function' ? crypto.hash : undefined;

/** How tokens are stored: the hex SHA-256 of the token (the token itself is never stored). */
export function hashToken(token: string): string {
  return oneShotHash ? oneShotHash('sha256', token, 'hex') : createHash('sha256').update(token, 'utf8').digest('hex');
}

const DEVICE_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** A new device ID: 10 upper-case letters. */
export function newDeviceId(): string {
  const bytes = randomBytes(10);
  let s = '';
  for (const b of bytes) s += DEVICE_ALPHABET[b % 26];
  return s;
}

/** An opaque random string (UIA sessions, nonces, registration tokens). */
export function randomString(bytes = 18): string {
  return randomBytes(bytes).toString('base64url');
}

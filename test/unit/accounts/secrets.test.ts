import { describe, expect, it } from 'vitest';
import { RateLimiter } from '../../../src/services/accounts/rate-limit.js';
import { hashPassword, hashToken, needsRehash, newDeviceId, newToken, parsePasswordHash, verifyPassword } from '../../../src/services/accounts/secrets.js';

describe('password hashing', () => {
  it('writes a self-describing scrypt hash and verifies only the right password', async () => {
    const h = await hashPassword('hunter2 ünïcode', { logN: 12, r: 8, p: 1 });
    expect(h).toMatch(/^\$scrypt\$ln=12,r=8,p=1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);
    expect(await verifyPassword('hunter2 ünïcode', h)).toBe(true);
    expect(await verifyPassword('hunter2 unicode', h)).toBe(false);
    expect(await verifyPassword('', h)).toBe(false);
    // Salted: the same password hashes differently.
    expect(await hashPassword('hunter2 ünïcode', { logN: 12, r: 8, p: 1 })).not.toBe(h);
  });

  it('keeps verifying hashes made with other parameters, and says when to re-hash', async () => {
    const weak = await hashPassword('pw', { logN: 10, r: 8, p: 1 });
    expect(parsePasswordHash(weak)).toMatchObject({ logN: 10, r: 8, p: 1 });
    expect(await verifyPassword('pw', weak)).toBe(true);
    expect(needsRehash(weak, { logN: 12, r: 8, p: 1 })).toBe(true);
    expect(needsRehash(weak, { logN: 10, r: 8, p: 1 })).toBe(false);
  });

  it('rejects malformed stored hashes instead of throwing', async () => {
    for (const bad of ['', 'plain', '$scrypt$ln=99,r=8,p=1$AAAA$AAAA', '$bcrypt$whatever', '$scrypt$ln=12,r=8,p=1$$']) {
      expect(await verifyPassword('pw', bad)).toBe(false);
    }
  });
});

describe('tokens', () => {
  it('are prefixed, random, 32 bytes of base64url, stored as SHA-256 hex', () => {
    const a = newToken('access');
    const b = newToken('access');
    expect(a).toMatch(/^mat_[A-Za-z0-9_-]{43}$/);
    expect(newToken('refresh')).toMatch(/^matr_/);
    expect(newToken('login')).toMatch(/^matl_/);
    expect(a).not.toBe(b);
    expect(hashToken('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(newDeviceId()).toMatch(/^[A-Z]{10}$/);
  });
});

describe('rate limiter', () => {
  it('allows a burst, then refuses with retry_after_ms until tokens refill', () => {
    let now = 0;
    const rl = new RateLimiter({ per_second: 2, burst: 3 }, 100, () => now);
    for (let i = 0; i < 3; i++) rl.take('ip');
    const err = (() => {
      try {
        rl.take('ip');
      } catch (e) {
        return e as { status: number; toJSON(): any };
      }
    })();
    expect(err?.status).toBe(429);
    expect(err?.toJSON()).toMatchObject({ errcode: 'M_LIMIT_EXCEEDED', retry_after_ms: 500 });
    rl.take('other');
    now += 500;
    rl.take('ip');
    expect(() => rl.take('ip')).toThrow();
  });

  it('keeps its map bounded', () => {
    const rl = new RateLimiter({ per_second: 1, burst: 1 }, 10, () => 0);
    for (let i = 0; i < 100; i++) rl.take(`k${i}`);
    expect(rl.size).toBe(10);
    // The evicted key starts again with a full bucket.
    rl.take('k0');
  });
});

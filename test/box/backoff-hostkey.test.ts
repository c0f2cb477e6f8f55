/** Back-off with jitter, durations, and OpenSSH host-key fingerprints (checked against ssh-keygen). */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { backoffDelay, parseDuration } from '../../src/box/backoff.js';
import { pinnedFingerprint, sshFingerprint } from '../../src/box/host-key.js';
import { tempDir } from '../_util/server.js';
import { requireProgram } from '../_util/require-program.js';

describe('backoffDelay', () => {
  it('stays within [ceiling/2, ceiling] where the ceiling doubles up to the maximum', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100 }), fc.double({ min: 0, max: 0.999999, noNaN: true }), (attempt, r) => {
        const d = backoffDelay(attempt, { initialMs: 100, maxMs: 30_000, random: () => r });
        const ceiling = Math.min(30_000, 100 * 2 ** attempt);
        expect(d).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
        expect(d).toBeLessThanOrEqual(ceiling);
      }),
    );
  });

  it('grows exponentially, then stops growing', () => {
    const mid = (a: number) => backoffDelay(a, { initialMs: 1000, maxMs: 60_000, random: () => 0.5 });
    expect([0, 1, 2, 3, 4, 5, 6, 7, 50].map(mid)).toEqual([750, 1500, 3000, 6000, 12000, 24000, 45000, 45000, 45000]);
  });

  it('spreads boxes that lost the link together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(5, { initialMs: 1000, maxMs: 60_000 })));
    expect(delays.size).toBeGreaterThan(40);
  });
});

describe('parseDuration', () => {
  it('reads milliseconds and units', () => {
    expect(parseDuration(1500)).toBe(1500);
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(() => parseDuration('soon')).toThrow(/Invalid duration/);
  });
});

requireProgram('/usr/bin/ssh-keygen', 'openssh-client');

describe('host-key fingerprints', () => {
  it('match ssh-keygen -lf for ed25519, ecdsa and rsa keys, in every accepted spelling', () => {
    const dir = tempDir();
    try {
      for (const type of ['ed25519', 'ecdsa', 'rsa']) {
        const path = join(dir, type);
        execFileSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', 'relay', '-f', path]);
        const expected = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`]).toString().split(' ')[1]!;
        const line = readFileSync(`${path}.pub`, 'utf8').trim();
        const blob = Buffer.from(line.split(' ')[1]!, 'base64');
        expect(sshFingerprint(blob)).toBe(expected);
        expect(pinnedFingerprint(expected)).toBe(expected);
        expect(pinnedFingerprint(line)).toBe(expected);
        expect(pinnedFingerprint(`relay.example.org ${line}`)).toBe(expected);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects what is not a key', () => {
    expect(() => pinnedFingerprint('MD5:aa:bb')).toThrow(/neither a SHA256/);
  });
});

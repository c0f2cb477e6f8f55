import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  backupKeyReplaces,
  checkDeviceKeys,
  checkOneTimeKey,
  isKey32,
  isKeyProblem,
  parseCrossSigningKey,
  sameSignedContent,
  splitKeyId,
  type BackupKeyMeta,
} from '../../../src/protocol/e2e-keys.js';
import { curveKey, ed25519, makeCrossSigning, makeDevice, oneTimeKeys, sign } from '../../client/_e2ee.js';

const U = '@alice:example.org';

describe('device keys', () => {
  const d = makeDevice(U, 'DEV1');

  it('accepts keys signed by the device', () => {
    expect(checkDeviceKeys(d.deviceKeys, U, 'DEV1')).toBeUndefined();
  });

  it('refuses another user or device, missing or malformed keys, and bad signatures', () => {
    expect(checkDeviceKeys(d.deviceKeys, '@bob:example.org', 'DEV1')?.kind).toBe('malformed');
    expect(checkDeviceKeys(d.deviceKeys, U, 'DEV2')?.kind).toBe('malformed');
    const { keys: _k, ...noKeys } = d.deviceKeys as Record<string, unknown>;
    expect(checkDeviceKeys(noKeys, U, 'DEV1')?.kind).toBe('malformed');
    const wrongName = { ...d.deviceKeys, keys: { ...(d.deviceKeys.keys as object), 'curve25519:OTHER': curveKey() } };
    expect(checkDeviceKeys(wrongName, U, 'DEV1')?.kind).toBe('malformed');
    const tampered = { ...d.deviceKeys, algorithms: ['m.megolm.v1.aes-sha2'] };
    expect(checkDeviceKeys(tampered, U, 'DEV1')?.kind).toBe('signature');
    const otherSigner = sign({ ...(({ signatures: _s, ...rest }) => rest)(d.deviceKeys as Record<string, unknown>) }, U, ed25519('DEV1'));
    expect(checkDeviceKeys(otherSigner, U, 'DEV1')?.kind).toBe('signature');
    expect(checkDeviceKeys(null, U, 'DEV1')?.kind).toBe('malformed');
  });
});

describe('one-time and fallback keys', () => {
  const d = makeDevice(U, 'DEV1');
  it('checks signed keys against the device key and bare curve25519 keys by shape', () => {
    const [[name, value]] = Object.entries(oneTimeKeys(d, 1));
    expect(checkOneTimeKey(name!, value, U, 'DEV1', d.ed.pub)).toBeUndefined();
    expect(checkOneTimeKey(name!, value, U, 'DEV1', ed25519().pub)?.kind).toBe('signature');
    expect(checkOneTimeKey(name!, value, U, 'DEV1', undefined)?.kind).toBe('malformed');
    expect(checkOneTimeKey('curve25519:A', curveKey(), U, 'DEV1', undefined)).toBeUndefined();
    expect(checkOneTimeKey('signed_curve25519:A', curveKey(), U, 'DEV1', d.ed.pub)?.kind).toBe('malformed');
    expect(checkOneTimeKey('nocolon', curveKey(), U, 'DEV1', d.ed.pub)?.kind).toBe('malformed');
    expect(checkOneTimeKey('signed_curve25519:A', { key: 'short', signatures: {} }, U, 'DEV1', d.ed.pub)?.kind).toBe('malformed');
    const [[fname, fvalue]] = Object.entries(oneTimeKeys(d, 1, 0, true));
    expect(checkOneTimeKey(fname!, fvalue, U, 'DEV1', d.ed.pub)).toBeUndefined();
    // Flipping the fallback flag breaks the signature.
    expect(checkOneTimeKey(fname!, { ...(fvalue as object), fallback: false }, U, 'DEV1', d.ed.pub)?.kind).toBe('signature');
  });

  it('splits key IDs at the first colon', () => {
    expect(splitKeyId('signed_curve25519:AAAA:b')).toEqual({ algorithm: 'signed_curve25519', keyId: 'AAAA:b' });
    expect(splitKeyId(':x')).toBeUndefined();
    expect(splitKeyId('x:')).toBeUndefined();
    expect(isKey32(curveKey())).toBe(true);
    expect(isKey32(curveKey() + 'A')).toBe(false);
  });
});

describe('cross-signing keys', () => {
  const cs = makeCrossSigning(U);
  it('parses well-formed keys and returns the public key', () => {
    expect(parseCrossSigningKey(cs.body.master_key, U, 'master')).toEqual({ publicKey: cs.master.pub });
    expect(parseCrossSigningKey(cs.body.self_signing_key, U, 'self_signing')).toEqual({ publicKey: cs.selfSigning.pub });
  });
  it('refuses wrong owner, usage, or key naming', () => {
    expect(isKeyProblem(parseCrossSigningKey(cs.body.master_key, '@bob:example.org', 'master'))).toBe(true);
    expect(isKeyProblem(parseCrossSigningKey(cs.body.master_key, U, 'self_signing'))).toBe(true);
    expect(isKeyProblem(parseCrossSigningKey({ ...cs.body.master_key, keys: { [`ed25519:${cs.master.pub}`]: cs.selfSigning.pub } }, U, 'master'))).toBe(true);
    expect(isKeyProblem(parseCrossSigningKey({ ...cs.body.master_key, keys: {} }, U, 'master'))).toBe(true);
    const two = { ...cs.body.master_key, keys: { [`ed25519:${cs.master.pub}`]: cs.master.pub, [`ed25519:${cs.selfSigning.pub}`]: cs.selfSigning.pub } };
    expect(isKeyProblem(parseCrossSigningKey(two, U, 'master'))).toBe(true);
  });
  it('compares signed objects without their signatures', () => {
    const signed = sign(cs.body.master_key, U, ed25519('DEV'));
    expect(sameSignedContent(signed as never, cs.body.master_key as never)).toBe(true);
    expect(sameSignedContent(signed as never, { ...cs.body.master_key, usage: ['master', 'x'] } as never)).toBe(false);
  });
});

describe('key backup replacement rule', () => {
  const meta = fc.record({ is_verified: fc.boolean(), first_message_index: fc.nat(1000), forwarded_count: fc.nat(20) });
  const rank = (m: BackupKeyMeta) => [m.is_verified ? 0 : 1, m.first_message_index, m.forwarded_count];
  const less = (a: number[], b: number[]) => {
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
    return false;
  };

  it('follows the spec examples', () => {
    expect(backupKeyReplaces({ is_verified: true, first_message_index: 9, forwarded_count: 9 }, { is_verified: false, first_message_index: 0, forwarded_count: 0 })).toBe(true);
    expect(backupKeyReplaces({ is_verified: false, first_message_index: 0, forwarded_count: 0 }, { is_verified: true, first_message_index: 9, forwarded_count: 9 })).toBe(false);
    expect(backupKeyReplaces({ is_verified: false, first_message_index: 1, forwarded_count: 9 }, { is_verified: false, first_message_index: 2, forwarded_count: 0 })).toBe(true);
    expect(backupKeyReplaces({ is_verified: false, first_message_index: 2, forwarded_count: 0 }, { is_verified: false, first_message_index: 2, forwarded_count: 1 })).toBe(true);
    expect(backupKeyReplaces({ is_verified: false, first_message_index: 2, forwarded_count: 1 }, { is_verified: false, first_message_index: 2, forwarded_count: 1 })).toBe(false);
  });

  it('replaces exactly when the new key ranks strictly better (verified, index, forwards)', () => {
    fc.assert(
      fc.property(meta, meta, (a, b) => {
        expect(backupKeyReplaces(a, b)).toBe(less(rank(a), rank(b)));
        // Never both ways: the stored key is stable under re-uploads.
        expect(backupKeyReplaces(a, b) && backupKeyReplaces(b, a)).toBe(false);
      }),
    );
  });
});

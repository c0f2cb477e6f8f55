import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeBase64, encodeBase64, encodeBase64Url } from '../../../src/protocol/base64.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

describe('encodeBase64 (appendix examples)', () => {
  it.each([
    ['', ''],
    ['f', 'Zg'],
    ['fo', 'Zm8'],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg'],
    ['fooba', 'Zm9vYmE'],
    ['foobar', 'Zm9vYmFy'],
  ])('UNPADDED_BASE64(%j) = %j', (input, expected) => {
    expect(encodeBase64(utf8(input))).toBe(expected);
    expect(decodeBase64(expected).toString('utf8')).toBe(input);
  });
});

describe('alphabets', () => {
  const bytes = new Uint8Array([0xfb, 0xff, 0xbf]);
  it('standard uses + and /', () => expect(encodeBase64(bytes)).toBe('+/+/'));
  it('URL-safe uses - and _', () => expect(encodeBase64Url(bytes)).toBe('-_-_'));
  it('URL-safe is unpadded', () => expect(encodeBase64Url(new Uint8Array([1]))).toBe('AQ'));
  it('works on a subarray view', () => {
    const big = new Uint8Array([9, 9, 102, 111, 111, 9]);
    expect(encodeBase64(big.subarray(2, 5))).toBe('Zm9v');
  });
});

describe('decodeBase64 accepts', () => {
  it.each([
    ['Zg', [0x66]],
    ['Zg==', [0x66]],
    ['Zm8', [0x66, 0x6f]],
    ['Zm8=', [0x66, 0x6f]],
    ['+/+/', [0xfb, 0xff, 0xbf]],
    ['-_-_', [0xfb, 0xff, 0xbf]],
    ['-_8', [0xfb, 0xff]],
    ['', []],
    // non-zero trailing bits are tolerated (the spec's own test seed has them)
    ['Zh', [0x66]],
  ])('%j', (input, expected) => {
    expect([...decodeBase64(input)]).toEqual(expected);
  });
});

describe('decodeBase64 rejects', () => {
  it.each([
    ['Z'], // impossible length
    ['Zm9vY'], // 4n+1
    ['Zg='], // wrong amount of padding
    ['Zg==='],
    ['Z=g='],
    ['=Zg'],
    ['Zm 9v'],
    ['Zm9v\n'],
    ['Zm9v!'],
    ['Zm9v.'],
    ['ÿÿÿÿ'],
  ])('%j', (input) => {
    expect(() => decodeBase64(input)).toThrow();
  });
});

describe('properties', () => {
  it('standard round-trips', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      const s = encodeBase64(b);
      expect(s).not.toMatch(/[=\-_]/);
      expect([...decodeBase64(s)]).toEqual([...b]);
    }));
  });
  it('URL-safe round-trips', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
      const s = encodeBase64Url(b);
      expect(s).not.toMatch(/[=+/]/);
      expect([...decodeBase64(s)]).toEqual([...b]);
    }));
  });
  it('padded input decodes like unpadded', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      expect([...decodeBase64(Buffer.from(b).toString('base64'))]).toEqual([...b]);
    }));
  });
});

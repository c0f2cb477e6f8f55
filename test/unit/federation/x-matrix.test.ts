import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseXMatrix, requestSigningJson, signRequest, XMatrixParseError } from '../../../src/federation/x-matrix.js';
import { generateSigningKey, verifyJsonSignature } from '../../../src/protocol/signing.js';

describe('X-Matrix header parsing', () => {
  it('parses the spec example form', () => {
    expect(
      parseXMatrix('X-Matrix origin="origin.hs.example.com",destination="destination.hs.example.com",key="ed25519:key1",sig="ABCDEF"'),
    ).toEqual({ origin: 'origin.hs.example.com', destination: 'destination.hs.example.com', key: 'ed25519:key1', sig: 'ABCDEF' });
  });

  it('accepts any case of scheme and names, several spaces after the scheme, spaces and tabs around commas, any order', () => {
    expect(parseXMatrix('x-matrix   SIG="s" ,\tKey="ed25519:k"\t, Origin="o.example"  ,destination="d.example"')).toEqual({
      origin: 'o.example',
      destination: 'd.example',
      key: 'ed25519:k',
      sig: 's',
    });
  });

  it('accepts token values without quotes, including colons (older servers)', () => {
    expect(parseXMatrix('X-Matrix origin=o.example:8448,key=ed25519:abc,sig=c2ln+/')).toEqual({
      origin: 'o.example:8448',
      key: 'ed25519:abc',
      sig: 'c2ln+/',
    });
  });

  it('unescapes backslash pairs inside quoted values', () => {
    expect(parseXMatrix('X-Matrix origin="a\\"b\\\\c",key="ed25519:k",sig="\\s"').origin).toBe('a"b\\c');
    expect(parseXMatrix('X-Matrix origin="a\\"b\\\\c",key="ed25519:k",sig="\\s"').sig).toBe('s');
  });

  it('quotes allow IPv6 server names', () => {
    expect(parseXMatrix('X-Matrix origin="[::1]:8448",key="ed25519:k",sig="s"').origin).toBe('[::1]:8448');
  });

  it('ignores unknown parameters; destination is optional', () => {
    const a = parseXMatrix('X-Matrix origin="o",key="ed25519:k",sig="s",future="x, y",other=tok');
    expect(a).toEqual({ origin: 'o', key: 'ed25519:k', sig: 's' });
  });

  it.each([
    ['Bearer abc', 'not X-Matrix'],
    ['X-Matrixorigin="o",key="k",sig="s"', 'no space after the scheme'],
    ['X-Matrix key="ed25519:k",sig="s"', 'no origin'],
    ['X-Matrix origin="o",sig="s"', 'no key'],
    ['X-Matrix origin="o",key="ed25519:k"', 'no sig'],
    ['X-Matrix origin="o,key="ed25519:k",sig="s"', 'unterminated quote'],
    ['X-Matrix origin="o",origin="p",key="ed25519:k",sig="s"', 'repeated parameter'],
    ['X-Matrix origin,key="ed25519:k",sig="s"', 'parameter without value'],
    ['X-Matrix origin="o" key="ed25519:k",sig="s"', 'missing comma'],
    ['X-Matrix origin=,key="ed25519:k",sig="s"', 'empty token'],
  ])('rejects %s (%s)', (header) => {
    expect(() => parseXMatrix(header)).toThrow(XMatrixParseError);
  });
});

describe('X-Matrix signing', () => {
  const key = generateSigningKey('k1');

  it('builds a header the parser reads back, whose signature covers method, uri, origin, destination and content', () => {
    const content = { pdus: [], edus: [{ edu_type: 'm.typing', content: {} }] };
    const header = signRequest({ method: 'PUT', uri: '/_matrix/federation/v1/send/1?x=%20', origin: 'a.test', destination: 'b.test:8448', content, key });
    expect(header.startsWith('X-Matrix origin="a.test",destination="b.test:8448",key="ed25519:k1",sig="')).toBe(true);
    const auth = parseXMatrix(header);
    const signed = { ...requestSigningJson('PUT', '/_matrix/federation/v1/send/1?x=%20', 'a.test', 'b.test:8448', content), signatures: { 'a.test': { [auth.key]: auth.sig } } };
    expect(verifyJsonSignature(signed, 'a.test', 'ed25519:k1', key.publicKey)).toBe(true);
    for (const tampered of [
      requestSigningJson('POST', '/_matrix/federation/v1/send/1?x=%20', 'a.test', 'b.test:8448', content),
      requestSigningJson('PUT', '/_matrix/federation/v1/send/2?x=%20', 'a.test', 'b.test:8448', content),
      requestSigningJson('PUT', '/_matrix/federation/v1/send/1?x=%20', 'a.test', 'c.test', content),
      requestSigningJson('PUT', '/_matrix/federation/v1/send/1?x=%20', 'a.test', 'b.test:8448', { pdus: [] }),
      requestSigningJson('PUT', '/_matrix/federation/v1/send/1?x=%20', 'a.test', 'b.test:8448'),
    ]) {
      expect(verifyJsonSignature({ ...tampered, signatures: { 'a.test': { [auth.key]: auth.sig } } }, 'a.test', 'ed25519:k1', key.publicKey)).toBe(false);
    }
  });

  it('round-trips arbitrary server names and URIs (property)', () => {
    const host = fc.stringMatching(/^[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}(:[1-9][0-9]{0,4})?$/);
    fc.assert(
      fc.property(host, host, fc.webPath(), (origin, destination, uri) => {
        const h = signRequest({ method: 'GET', uri: uri || '/', origin, destination, key });
        const a = parseXMatrix(h);
        return a.origin === origin && a.destination === destination && a.key === key.keyId && a.sig.length > 80;
      }),
      { numRuns: 200 },
    );
  });
});

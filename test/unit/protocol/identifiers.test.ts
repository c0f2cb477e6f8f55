import { describe, expect, it } from 'vitest';
import {
  IdentifierError,
  formatServerName,
  isValidEventId,
  isValidRoomAlias,
  isValidRoomId,
  isValidRoomVersionId,
  isValidServerName,
  isValidUserId,
  localpartAllowed,
  parseEventId,
  parseRoomAlias,
  parseRoomId,
  parseServerName,
  parseUserId,
  serverNameOf,
} from '../../../src/protocol/identifiers.js';

describe('parseServerName accepts', () => {
  it.each([
    ['matrix.org', { host: 'matrix.org', kind: 'dns' }],
    ['matrix.org:8888', { host: 'matrix.org', port: 8888, kind: 'dns' }],
    ['1.2.3.4', { host: '1.2.3.4', kind: 'ipv4' }],
    ['1.2.3.4:1234', { host: '1.2.3.4', port: 1234, kind: 'ipv4' }],
    ['[1234:5678::abcd]', { host: '1234:5678::abcd', kind: 'ipv6' }],
    ['[1234:5678::abcd]:5678', { host: '1234:5678::abcd', port: 5678, kind: 'ipv6' }],
    ['[::1]', { host: '::1', kind: 'ipv6' }],
    ['[::ffff:1.2.3.4]:8448', { host: '::ffff:1.2.3.4', port: 8448, kind: 'ipv6' }],
    ['[2001:DB8::1]', { host: '2001:DB8::1', kind: 'ipv6' }],
    ['[1:2:3:4:5:6:7:8]', { host: '1:2:3:4:5:6:7:8', kind: 'ipv6' }],
    ['localhost', { host: 'localhost', kind: 'dns' }],
    ['localhost:1', { host: 'localhost', port: 1, kind: 'dns' }],
    ['localhost:65535', { host: 'localhost', port: 65535, kind: 'dns' }],
    ['a-b.example.com', { host: 'a-b.example.com', kind: 'dns' }],
    ['MATRIX.ORG', { host: 'MATRIX.ORG', kind: 'dns' }],
    ['example.com.', { host: 'example.com.', kind: 'dns' }],
    ['0.0.0.0', { host: '0.0.0.0', kind: 'ipv4' }],
    ['255.255.255.255', { host: '255.255.255.255', kind: 'ipv4' }],
    ['123abc', { host: '123abc', kind: 'dns' }],
    ['x'.repeat(255), { host: 'x'.repeat(255), kind: 'dns' }],
    ['example.org:08448', { host: 'example.org', port: 8448, kind: 'dns' }],
  ])('%s', (s, expected) => {
    expect(parseServerName(s)).toEqual(expected);
    expect(isValidServerName(s)).toBe(true);
  });
});

describe('parseServerName rejects', () => {
  it.each([
    [''],
    [':8448'],
    ['example.org:'],
    ['example.org:0'],
    ['example.org:65536'],
    ['example.org:123456'],
    ['example.org:-1'],
    ['example.org:80a'],
    ['example.org:80:90'],
    ['exa mple.org'],
    ['exa_mple.org'],
    ['example..org'],
    ['.example.org'],
    ['ex@mple.org'],
    ['例え.jp'],
    ['x'.repeat(256)],
    ['1.2.3.256'],
    ['1.2.3'],
    ['999.1.1.1'],
    ['1234:5678::abcd'],
    ['[1234:5678::abcd'],
    ['[]'],
    ['[:]'],
    ['[1.2.3.4]'],
    ['[12345::1]'],
    ['[::1]x'],
    ['[::1]:'],
    ['[::1]:70000'],
    ['[fe80::1%eth0]'],
    ['[g::1]'],
    ['[1:2:3:4:5:6:7:8:9]'],
  ])('%j', (s) => {
    expect(() => parseServerName(s)).toThrow(IdentifierError);
    expect(isValidServerName(s)).toBe(false);
  });
  it('errors name the field', () => {
    try {
      parseServerName('bad host', 'origin');
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(IdentifierError);
      expect((err as IdentifierError).field).toBe('origin');
      expect((err as IdentifierError).message).toMatch(/^origin: /);
    }
  });
  it('formatServerName round-trips', () => {
    for (const s of ['matrix.org', 'matrix.org:8448', '[::1]:80', '[::1]', '10.0.0.1:5']) {
      expect(formatServerName(parseServerName(s))).toBe(s);
    }
  });
});

const pad = (n: number) => 'a'.repeat(n);

describe('parseUserId (current grammar)', () => {
  it.each([
    ['@alice:example.org', 'alice', 'example.org'],
    ['@a:b', 'a', 'b'],
    ['@a.b_c=d-e/f+g:example.org', 'a.b_c=d-e/f+g', 'example.org'],
    ['@0123456789:example.org', '0123456789', 'example.org'],
    ['@alice:example.org:8448', 'alice', 'example.org:8448'],
    ['@alice:[::1]:8448', 'alice', '[::1]:8448'],
    ['@alice:1.2.3.4', 'alice', '1.2.3.4'],
    [`@${pad(255 - 1 - 1 - 11)}:example.org`, pad(242), 'example.org'],
  ])('accepts %s', (s, localpart, serverName) => {
    expect(parseUserId(s)).toEqual({ localpart, serverName, grammar: 'current' });
    expect(isValidUserId(s)).toBe(true);
  });
  it.each([
    ['alice:example.org', 'no sigil'],
    ['@alice', 'no server'],
    ['@:example.org', 'empty localpart'],
    ['@Alice:example.org', 'upper case'],
    ['@al ice:example.org', 'space'],
    ['@alice!:example.org', 'punctuation'],
    ['@ali*ce:example.org', 'asterisk'],
    ['@alïce:example.org', 'non-ASCII'],
    ['@alice:exa mple.org', 'bad server'],
    ['@alice:', 'empty server'],
    ['@alice:example.org:0', 'bad port'],
    [`@${pad(243)}:example.org`, '256 bytes'],
  ])('rejects %s (%s)', (s) => {
    expect(() => parseUserId(s)).toThrow(IdentifierError);
    expect(isValidUserId(s)).toBe(false);
  });
});

describe('parseUserId (historical grammar)', () => {
  it.each([
    ['@Alice:example.org', 'Alice', 'historical'],
    ['@alice!:example.org', 'alice!', 'historical'],
    ['@a"#$%&\'()*,;<>?[\\]^`{|}~:example.org', 'a"#$%&\'()*,;<>?[\\]^`{|}~', 'historical'],
    ['@alice:example.org', 'alice', 'current'],
    ['@:example.org', '', 'noncompliant'],
    ['@al ice:example.org', 'al ice', 'noncompliant'],
    ['@alïce:example.org', 'alïce', 'noncompliant'],
    ['@\u0007bell:example.org', '\u0007bell', 'noncompliant'],
  ])('accepts %j', (s, localpart, grammar) => {
    expect(parseUserId(s, { historical: true })).toEqual({ localpart, serverName: 'example.org', grammar });
    expect(isValidUserId(s, { historical: true })).toBe(true);
  });
  it.each([
    ['@a\u0000b:example.org', 'NUL'],
    ['@a\ud800:example.org', 'lone surrogate'],
    ['@alice', 'no server'],
    ['@Alice:bad host', 'bad server'],
    [`@${'é'.repeat(122)}:example.org`, 'over 255 bytes of UTF-8'],
  ])('rejects %j (%s)', (s) => {
    expect(() => parseUserId(s, { historical: true })).toThrow(IdentifierError);
  });
  it('the 255-byte limit counts UTF-8 bytes', () => {
    // 121 two-byte chars = 242 bytes + "@" + ":example.org" (12) = 255 bytes
    expect(isValidUserId(`@${'é'.repeat(121)}:example.org`, { historical: true })).toBe(true);
  });
});

describe('localpartAllowed', () => {
  it.each([
    ['alice', true],
    ['a.b_c=d-e/f+g', true],
    ['', false],
    ['Alice', false],
    ['al ice', false],
    ['alice:x', false],
    ['al#ice', false],
    ['ålice', false],
  ])('%j → %s', (lp, ok) => expect(localpartAllowed(lp)).toBe(ok));
  it('checks the full length when given the server', () => {
    expect(localpartAllowed(pad(242), 'example.org')).toBe(true);
    expect(localpartAllowed(pad(243), 'example.org')).toBe(false);
  });
});

const HASH43 = 'Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg';
const STD43 = 'Rqnc+F+dvnEYJTyHq/iKxU2bZ1CI92+kuZq3a5lr5Zg';

describe('parseRoomId', () => {
  it.each([
    ['!abc:example.org', { opaque: 'abc', serverName: 'example.org', kind: 'server' }],
    ['!AbC123:example.org:8448', { opaque: 'AbC123', serverName: 'example.org:8448', kind: 'server' }],
    ['!a b\u0007é:[::1]', { opaque: 'a b\u0007é', serverName: '[::1]', kind: 'server' }],
    [`!${HASH43}`, { opaque: HASH43, kind: 'hash' }],
  ])('accepts %j', (s, expected) => {
    expect(parseRoomId(s)).toEqual(expected);
    expect(isValidRoomId(s)).toBe(true);
  });
  it.each([
    ['abc:example.org'],
    ['!:example.org'],
    ['!abc'],
    ['!abc:'],
    ['!abc:bad host'],
    [`!${STD43}`],
    [`!${HASH43}x`],
    [`!${HASH43.slice(1)}`],
    ['!a\u0000b:example.org'],
    [`!${pad(243)}:example.org`],
  ])('rejects %j', (s) => {
    expect(() => parseRoomId(s)).toThrow(IdentifierError);
    expect(isValidRoomId(s)).toBe(false);
  });
});

describe('parseEventId', () => {
  it.each([
    ['$abc:example.org', { opaque: 'abc', serverName: 'example.org', kind: 'server' }],
    ['$1234567890abc:matrix.org:8448', { opaque: '1234567890abc', serverName: 'matrix.org:8448', kind: 'server' }],
    [`$${STD43}`, { opaque: STD43, kind: 'base64' }],
    [`$${HASH43}`, { opaque: HASH43, kind: 'urlsafe' }],
  ])('accepts %j', (s, expected) => {
    expect(parseEventId(s)).toEqual(expected);
    expect(isValidEventId(s)).toBe(true);
  });
  it.each([
    ['abc:example.org'],
    ['$'],
    ['$abc'],
    ['$:example.org'],
    ['$abc:bad host'],
    [`$${HASH43}=`],
    ['$Rqnc-F-dvnEYJTyHq/iKxU2bZ1CI92-kuZq3a5lr5Zg'], // mixed alphabets
    [`$${pad(243)}:example.org`],
  ])('rejects %j', (s) => {
    expect(() => parseEventId(s)).toThrow(IdentifierError);
    expect(isValidEventId(s)).toBe(false);
  });
});

describe('parseRoomAlias', () => {
  it.each([
    ['#room:example.org', { alias: 'room', serverName: 'example.org' }],
    ['#Room Name!é:example.org:8448', { alias: 'Room Name!é', serverName: 'example.org:8448' }],
  ])('accepts %j', (s, expected) => {
    expect(parseRoomAlias(s)).toEqual(expected);
    expect(isValidRoomAlias(s)).toBe(true);
  });
  it.each([
    ['room:example.org'],
    ['#room'],
    ['#:example.org'],
    ['#room:'],
    ['#ro\u0000om:example.org'],
    [`#${pad(243)}:example.org`],
  ])('rejects %j', (s) => {
    expect(() => parseRoomAlias(s)).toThrow(IdentifierError);
    expect(isValidRoomAlias(s)).toBe(false);
  });
});

describe('isValidRoomVersionId', () => {
  it.each([
    ['1', true],
    ['12', true],
    ['org.matrix.msc1234', true],
    ['a-b.c', true],
    ['x'.repeat(32), true],
    ['x'.repeat(33), false],
    ['', false],
    ['V1', false],
    ['1 ', false],
    ['1_2', false],
  ])('%j → %s', (s, ok) => expect(isValidRoomVersionId(s)).toBe(ok));
});

describe('serverNameOf', () => {
  it.each([
    ['@a:b.c', 'b.c'],
    ['!r:b.c:80', 'b.c:80'],
    [`!${HASH43}`, undefined],
  ])('%s', (id, expected) => expect(serverNameOf(id)).toBe(expected));
});

describe('255-byte boundary for every sigil', () => {
  it.each([
    ['!', parseRoomId],
    ['$', parseEventId],
    ['#', parseRoomAlias],
    ['@', (s: string) => parseUserId(s)],
  ] as const)('%s: 255 bytes accepted, 256 rejected', (sigil, parse) => {
    expect(() => parse(`${sigil}${pad(242)}:example.org`)).not.toThrow();
    expect(() => parse(`${sigil}${pad(243)}:example.org`)).toThrow(IdentifierError);
  });
});

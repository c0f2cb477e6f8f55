/**
 * Identifier grammars (appendices "Identifier Grammar"; rooms/_index.md "Room versions").
 * Parsers throw `IdentifierError` naming the field and the reason; `is*` helpers return booleans.
 * Server names are case-sensitive and returned exactly as written.
 */
import { isIPv6 } from 'node:net';

export class IdentifierError extends Error {
  readonly field: string;
  readonly reason: string;
  constructor(field: string, reason: string) {
    super(`${field}: ${reason}`);
    this.name = 'IdentifierError';
    this.field = field;
    this.reason = reason;
  }
}

/** Identifiers with a sigil (user IDs, room IDs, aliases, event IDs) are at most 255 UTF-8 bytes. */
export const MAX_IDENTIFIER_BYTES = 255;
/** The spec recommends (but does not require) server names of at most 230 characters. */
export const RECOMMENDED_MAX_SERVER_NAME_LENGTH = 230;

export interface ServerName {
  /** The hostname as written; IPv6 literals without their brackets. */
  host: string;
  port?: number;
  kind: 'dns' | 'ipv4' | 'ipv6';
}

const DNS_NAME = /^[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?$/;
const DOTTED_NUMERIC = /^[0-9]+(?:\.[0-9]+)*\.?$/;
const IPV4 = /^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;
const PORT = /^[0-9]{1,5}$/;

function parsePort(field: string, text: string): number {
  if (!PORT.test(text)) throw new IdentifierError(field, `invalid port ${JSON.stringify(text)}`);
  const port = Number(text);
  if (port < 1 || port > 65535) throw new IdentifierError(field, `port ${port} is out of range 1-65535`);
  return port;
}

/**
 * Parses `hostname[:port]` where hostname is a DNS name (≤ 255 chars of `A-Za-z0-9-.`,
 * non-empty labels, optional trailing dot), a dotted-quad IPv4 literal (octets 0–255), or a
 * bracketed IPv6 literal (RFC 3513).
 */
export function parseServerName(s: string, field = 'server_name'): ServerName {
  if (typeof s !== 'string' || s === '') throw new IdentifierError(field, 'server name is empty');
  let host: string;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new IdentifierError(field, 'unterminated IPv6 literal');
    host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw new IdentifierError(field, 'unexpected characters after IPv6 literal');
      portText = rest.slice(1);
    }
    if (!IPV6_CHARS.test(host) || !isIPv6(host)) throw new IdentifierError(field, `invalid IPv6 literal ${JSON.stringify(host)}`);
    return portText === undefined ? { host, kind: 'ipv6' } : { host, port: parsePort(field, portText), kind: 'ipv6' };
  }
  const colon = s.indexOf(':');
  if (colon >= 0) {
    host = s.slice(0, colon);
    portText = s.slice(colon + 1);
  } else {
    host = s;
  }
  if (host === '') throw new IdentifierError(field, 'hostname is empty');
  if (host.length > 255) throw new IdentifierError(field, 'hostname exceeds 255 characters');
  let kind: ServerName['kind'];
  const v4 = IPV4.exec(host);
  if (v4) {
    if (v4.slice(1, 5).some((o) => Number(o) > 255)) throw new IdentifierError(field, `invalid IPv4 literal ${JSON.stringify(host)}`);
    kind = 'ipv4';
  } else if (DNS_NAME.test(host)) {
    // All-numeric names that are not dotted quads (e.g. "1.2.3") are neither IPv4 literals
    // nor conventional host names.
    if (DOTTED_NUMERIC.test(host) && host.includes('.')) throw new IdentifierError(field, `invalid IPv4 literal ${JSON.stringify(host)}`);
    kind = 'dns';
  } else {
    throw new IdentifierError(field, `invalid hostname ${JSON.stringify(host)}`);
  }
  return portText === undefined ? { host, kind } : { host, port: parsePort(field, portText), kind };
}

export function isValidServerName(s: string): boolean {
  try {
    parseServerName(s);
    return true;
  } catch {
    return false;
  }
}

/** Formats a parsed server name back to `host[:port]` (IPv6 in brackets). */
export function formatServerName(name: ServerName): string {
  const host = name.kind === 'ipv6' ? `[${name.host}]` : name.host;
  return name.port === undefined ? host : `${host}:${name.port}`;
}

const CURRENT_LOCALPART = /^[a-z0-9._=\-/+]+$/;
const PRINTABLE_ASCII_LOCALPART = /^[\x21-\x39\x3b-\x7e]+$/; // U+0021–U+007E except ':'
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** Opaque localparts of room IDs, aliases and historical user IDs: no `:`, NUL or lone surrogates. */
function isOpaqueLocalpart(s: string): boolean {
  return !s.includes(':') && !s.includes('\u0000') && !LONE_SURROGATE.test(s);
}

export interface UserId {
  localpart: string;
  serverName: string;
  /**
   * `current`: the localpart matches today's grammar (`a-z0-9._=-/+`).
   * `historical`: printable ASCII outside that grammar (accepted with `historical: true`).
   * `noncompliant`: empty or outside U+0021–U+007E (accepted with `historical: true`, but
   * should not be forwarded to clients outside the context of an event).
   */
  grammar: 'current' | 'historical' | 'noncompliant';
}

/** Whether `localpart` may be used for a new account: non-empty, `a-z0-9._=-/+` only. */
export function localpartAllowed(localpart: string, serverName?: string): boolean {
  if (!CURRENT_LOCALPART.test(localpart)) return false;
  return serverName === undefined || byteLength(`@${localpart}:${serverName}`) <= MAX_IDENTIFIER_BYTES;
}

/**
 * Parses `@localpart:server_name`. The localpart must match the current grammar unless
 * `historical` is set, in which case any localpart without `:` or NUL is accepted, as the
 * spec requires for events received over federation. The whole ID is at most 255 bytes.
 */
export function parseUserId(s: string, opts: { historical?: boolean } = {}, field = 'user_id'): UserId {
  if (typeof s !== 'string' || !s.startsWith('@')) throw new IdentifierError(field, 'user ID must start with "@"');
  if (byteLength(s) > MAX_IDENTIFIER_BYTES) throw new IdentifierError(field, 'user ID exceeds 255 bytes');
  const colon = s.indexOf(':');
  if (colon < 0) throw new IdentifierError(field, 'user ID has no server name');
  const localpart = s.slice(1, colon);
  const serverName = s.slice(colon + 1);
  let grammar: UserId['grammar'];
  if (CURRENT_LOCALPART.test(localpart)) grammar = 'current';
  else if (PRINTABLE_ASCII_LOCALPART.test(localpart)) grammar = 'historical';
  else grammar = 'noncompliant';
  if (grammar !== 'current') {
    if (!opts.historical) throw new IdentifierError(field, `user ID localpart ${JSON.stringify(localpart)} has characters outside a-z0-9._=-/+`);
    if (!isOpaqueLocalpart(localpart)) throw new IdentifierError(field, 'user ID localpart contains NUL or an invalid code point');
  }
  parseServerName(serverName, field);
  return { localpart, serverName, grammar };
}

export function isValidUserId(s: string, opts: { historical?: boolean } = {}): boolean {
  try {
    parseUserId(s, opts);
    return true;
  } catch {
    return false;
  }
}

const HASH_ID = /^[A-Za-z0-9_-]{43}$/;
const HASH_ID_STD = /^[A-Za-z0-9+/]{43}$/;

export interface RoomId {
  /** The part after `!` (before `:` in the server-name form). */
  opaque: string;
  /** Present for `!opaque:server` room IDs (room versions 1–11). */
  serverName?: string;
  kind: 'server' | 'hash';
}

/** Parses `!opaque:server_name` (v1–v11) or `!<43 URL-safe base64 chars>` (v12+). */
export function parseRoomId(s: string, field = 'room_id'): RoomId {
  if (typeof s !== 'string' || !s.startsWith('!')) throw new IdentifierError(field, 'room ID must start with "!"');
  if (byteLength(s) > MAX_IDENTIFIER_BYTES) throw new IdentifierError(field, 'room ID exceeds 255 bytes');
  const colon = s.indexOf(':');
  if (colon < 0) {
    const opaque = s.slice(1);
    if (!HASH_ID.test(opaque)) throw new IdentifierError(field, 'room ID without a server name must be 43 URL-safe base64 characters');
    return { opaque, kind: 'hash' };
  }
  const opaque = s.slice(1, colon);
  if (opaque === '') throw new IdentifierError(field, 'room ID localpart is empty');
  if (!isOpaqueLocalpart(opaque)) throw new IdentifierError(field, 'room ID localpart contains NUL or an invalid code point');
  const serverName = s.slice(colon + 1);
  parseServerName(serverName, field);
  return { opaque, serverName, kind: 'server' };
}

export function isValidRoomId(s: string): boolean {
  try {
    parseRoomId(s);
    return true;
  } catch {
    return false;
  }
}

export interface EventId {
  opaque: string;
  /** Present for v1/v2 `$opaque:server` event IDs. */
  serverName?: string;
  kind: 'server' | 'base64' | 'urlsafe';
}

/**
 * Parses an event ID in any room version's format: `$opaque:server_name` (v1/v2),
 * `$` + 43 standard base64 chars (v3) or `$` + 43 URL-safe base64 chars (v4+). An ID made
 * only of characters common to both alphabets is reported as `urlsafe`.
 */
export function parseEventId(s: string, field = 'event_id'): EventId {
  if (typeof s !== 'string' || !s.startsWith('$')) throw new IdentifierError(field, 'event ID must start with "$"');
  if (byteLength(s) > MAX_IDENTIFIER_BYTES) throw new IdentifierError(field, 'event ID exceeds 255 bytes');
  const colon = s.indexOf(':');
  if (colon < 0) {
    const opaque = s.slice(1);
    if (HASH_ID.test(opaque)) return { opaque, kind: 'urlsafe' };
    if (HASH_ID_STD.test(opaque)) return { opaque, kind: 'base64' };
    throw new IdentifierError(field, 'event ID without a server name must be 43 base64 characters');
  }
  const opaque = s.slice(1, colon);
  if (opaque === '') throw new IdentifierError(field, 'event ID localpart is empty');
  if (!isOpaqueLocalpart(opaque)) throw new IdentifierError(field, 'event ID localpart contains NUL or an invalid code point');
  const serverName = s.slice(colon + 1);
  parseServerName(serverName, field);
  return { opaque, serverName, kind: 'server' };
}

export function isValidEventId(s: string): boolean {
  try {
    parseEventId(s);
    return true;
  } catch {
    return false;
  }
}

export interface RoomAlias {
  alias: string;
  serverName: string;
}

/** Parses `#alias:server_name`; the alias is non-empty without `:` or NUL; ≤ 255 bytes in all. */
export function parseRoomAlias(s: string, field = 'room_alias'): RoomAlias {
  if (typeof s !== 'string' || !s.startsWith('#')) throw new IdentifierError(field, 'room alias must start with "#"');
  if (byteLength(s) > MAX_IDENTIFIER_BYTES) throw new IdentifierError(field, 'room alias exceeds 255 bytes');
  const colon = s.indexOf(':');
  if (colon < 0) throw new IdentifierError(field, 'room alias has no server name');
  const alias = s.slice(1, colon);
  if (alias === '') throw new IdentifierError(field, 'room alias localpart is empty');
  if (!isOpaqueLocalpart(alias)) throw new IdentifierError(field, 'room alias contains NUL or an invalid code point');
  const serverName = s.slice(colon + 1);
  parseServerName(serverName, field);
  return { alias, serverName };
}

export function isValidRoomAlias(s: string): boolean {
  try {
    parseRoomAlias(s);
    return true;
  } catch {
    return false;
  }
}

/** Room version identifiers: 1–32 characters of `a-z0-9.-`. */
export function isValidRoomVersionId(s: string): boolean {
  return typeof s === 'string' && /^[a-z0-9.-]{1,32}$/.test(s);
}

/** The server name of `@user:server`, `!room:server`, `#alias:server` or `$event:server`, if any. */
export function serverNameOf(id: string): string | undefined {
  const colon = id.indexOf(':');
  return colon >= 0 ? id.slice(colon + 1) : undefined;
}

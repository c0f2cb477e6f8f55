/**
 * The `X-Matrix` Authorization header of federation requests (server-server API,
 * "Request Authentication"): building it, and parsing it by the RFC 9110 §11.4 rules the
 * spec refers to, with the spec's compatibility allowances.
 */
import type { JsonValue } from '../protocol/json.js';
import { jsonSignature, type SigningKey } from '../protocol/signing.js';

export interface XMatrixAuth {
  origin: string;
  /** Absent in requests from servers older than spec v1.3. */
  destination?: string;
  key: string;
  sig: string;
}

export class XMatrixParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XMatrixParseError';
  }
}

/** The JSON object a request signature covers. `content` only when the request has a body. */
export function requestSigningJson(
  method: string,
  uri: string,
  origin: string,
  destination: string,
  content?: JsonValue,
): Record<string, JsonValue> {
  const obj: Record<string, JsonValue> = { method, uri, origin, destination };
  if (content !== undefined) obj['content'] = content;
  return obj;
}

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * Builds `X-Matrix origin="…",destination="…",key="…",sig="…"` for a request: one space after
 * the scheme, lower-case names, no whitespace around commas, values quoted (server names may
 * contain `:`, `[` and `]`), as the spec recommends for compatibility with older servers.
 */
export function signRequest(opts: {
  method: string;
  uri: string;
  origin: string;
  destination: string;
  content?: JsonValue;
  key: SigningKey;
}): string {
  const sig = jsonSignature(requestSigningJson(opts.method, opts.uri, opts.origin, opts.destination, opts.content), opts.key);
  return (
    `X-Matrix origin=${quote(opts.origin)},destination=${quote(opts.destination)},` +
    `key=${quote(opts.key.keyId)},sig=${quote(sig)}`
  );
}

/** RFC 9110 tchar. */
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const WS = /[ \t]/;

/**
 * Parses the parameters of an `X-Matrix` Authorization header value.
 * - the scheme is matched case-insensitively and followed by one or more spaces;
 * - parameters are `name=value`, separated by commas with optional spaces/tabs around them;
 * - names are case-insensitive; values are tokens or quoted strings (backslash escapes are
 *   unescaped); unquoted values may also contain `:` (older servers send `origin=host:port`)
 *   and any other character but comma, quote and whitespace (unquoted base64 signatures);
 * - unknown parameters are ignored; a repeated parameter is an error;
 * - `origin`, `key` and `sig` are required, `destination` is optional.
 */
export function parseXMatrix(header: string): XMatrixAuth {
  const m = /^x-matrix( +)/i.exec(header);
  if (!m) throw new XMatrixParseError('Authorization scheme is not X-Matrix');
  const params = new Map<string, string>();
  let i = m[0].length;
  const n = header.length;
  const skipWs = () => {
    while (i < n && WS.test(header[i]!)) i++;
  };
  while (i < n) {
    skipWs();
    if (i >= n) break;
    if (header[i] === ',') {
      i++;
      continue;
    }
    const nameStart = i;
    while (i < n && TCHAR.test(header[i]!)) i++;
    const name = header.slice(nameStart, i).toLowerCase();
    if (name === '') throw new XMatrixParseError(`unexpected character ${JSON.stringify(header[i])} at offset ${i}`);
    skipWs();
    if (header[i] !== '=') throw new XMatrixParseError(`parameter ${name} has no value`);
    i++;
    skipWs();
    let value = '';
    if (header[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = header[i]!;
        if (c === '\\') {
          if (i + 1 >= n) break;
          value += header[i + 1];
          i += 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        value += c;
        i++;
      }
      if (!closed) throw new XMatrixParseError(`unterminated quoted value for ${name}`);
    } else {
      const start = i;
      // Beyond RFC tokens: `:` (the spec's allowance for older servers) and base64's `/` and `=`
      // — everything up to a comma, whitespace or quote.
      while (i < n && header[i] !== ',' && header[i] !== '"' && !WS.test(header[i]!)) i++;
      value = header.slice(start, i);
      if (value === '') throw new XMatrixParseError(`parameter ${name} has an empty value`);
    }
    if (params.has(name)) throw new XMatrixParseError(`parameter ${name} is repeated`);
    params.set(name, value);
    skipWs();
    if (i < n) {
      if (header[i] !== ',') throw new XMatrixParseError(`expected "," at offset ${i}`);
      i++;
    }
  }
  const origin = params.get('origin');
  const key = params.get('key');
  const sig = params.get('sig');
  if (!origin) throw new XMatrixParseError('X-Matrix header has no origin');
  if (!key) throw new XMatrixParseError('X-Matrix header has no key');
  if (!sig) throw new XMatrixParseError('X-Matrix header has no sig');
  const destination = params.get('destination');
  return destination === undefined ? { origin, key, sig } : { origin, destination, key, sig };
}

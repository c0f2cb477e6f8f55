/**
 * Unpadded Base64 (appendices "Unpadded Base64"): standard and URL-safe alphabets.
 * Decoding accepts either alphabet, with or without `=` padding, and rejects anything else.
 */
import { Buffer } from 'node:buffer';

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Standard alphabet (`+`, `/`), no padding. */
export function encodeBase64(bytes: Uint8Array): string {
  const s = toBuffer(bytes).toString('base64');
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 61 /* = */) end--;
  return end === s.length ? s : s.slice(0, end);
}

/** URL-safe alphabet (`-`, `_`), no padding. */
export function encodeBase64Url(bytes: Uint8Array): string {
  return toBuffer(bytes).toString('base64url');
}

export class Base64Error extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Base64Error';
  }
}

const VALID = /^[A-Za-z0-9+/\-_]*$/;

/**
 * Decodes standard or URL-safe Base64, padded or unpadded (both alphabets are accepted,
 * as Node's decoder does). Throws `Base64Error` on characters outside both alphabets,
 * misplaced or excess padding, or an impossible length (4n+1). Non-zero trailing bits are
 * tolerated, as other Matrix implementations do.
 */
export function decodeBase64(s: string): Buffer {
  if (typeof s !== 'string') throw new Base64Error('base64 input must be a string');
  let body = s;
  const pad = body.indexOf('=');
  if (pad >= 0) {
    const padding = body.slice(pad);
    body = body.slice(0, pad);
    if (!/^={1,2}$/.test(padding) || (body.length + padding.length) % 4 !== 0) {
      throw new Base64Error('invalid base64 padding');
    }
  }
  if (!VALID.test(body)) throw new Base64Error('invalid base64 character');
  if (body.length % 4 === 1) throw new Base64Error('invalid base64 length');
  return Buffer.from(body, 'base64');
}

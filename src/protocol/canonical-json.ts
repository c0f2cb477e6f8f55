/**
 * Canonical JSON (appendices "Canonical JSON"): the shortest UTF-8 JSON encoding with
 * object keys sorted by Unicode codepoint, integers written without exponent or fraction,
 * `-0` written as `0`, and only the mandatory string escapes (`\"`, `\\`, `\b`, `\t`, `\n`,
 * `\f`, `\r` and `\u00XX` in lower-case hex for the other ASCII control characters).
 *
 * Strict mode (room v6+, `RoomVersion.strictCanonicalJson`) also rejects non-integers and
 * integers outside [-(2^53)+1, (2^53)-1]. NaN, ±Infinity, `undefined`, functions, symbols,
 * lone UTF-16 surrogates (not encodable as UTF-8) and non-plain objects are always rejected.
 */

export class CanonicalJsonError extends Error {
  /** Dotted path to the offending value, `$` for the root. */
  readonly path: string;
  constructor(message: string, path: string) {
    super(`${message} at ${path}`);
    this.name = 'CanonicalJsonError';
    this.path = path;
  }
}

export interface CanonicalJsonOptions {
  /** Enforce the integer rules of room v6+ (no floats, |n| ≤ 2^53-1). */
  strict?: boolean;
}

export const MAX_SAFE_CANONICAL_INTEGER = Number.MAX_SAFE_INTEGER; // 2^53 - 1
/** Nesting deeper than this is rejected instead of overflowing the stack. */
export const MAX_CANONICAL_DEPTH = 1000;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const HAS_SURROGATE = /[\uD800-\uDFFF]/;

/**
 * Orders strings by Unicode codepoint. Plain `<` compares UTF-16 code units, which puts
 * astral characters (surrogate pairs, 0xD800–0xDFFF) before U+E000–U+FFFF; this fixes that.
 */
export function compareCodepoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) {
        x = x <= 0xdfff ? x + 0x2000 : x - 0x800;
        y = y <= 0xdfff ? y + 0x2000 : y - 0x800;
      }
      return x - y;
    }
  }
  return a.length - b.length;
}

function sortKeys(keys: string[]): string[] {
  for (const k of keys) {
    if (HAS_SURROGATE.test(k)) return keys.sort(compareCodepoints);
  }
  // Without surrogates, code-unit order equals codepoint order.
  return keys.sort();
}

function encodeString(s: string, path: string): string {
  if (HAS_SURROGATE.test(s) && LONE_SURROGATE.test(s)) {
    throw new CanonicalJsonError('string contains a lone UTF-16 surrogate', path);
  }
  // JSON.stringify emits exactly the escapes canonical JSON requires (and no others):
  // \" \\ \b \f \n \r \t and lower-case \u00XX for the remaining C0 controls.
  return JSON.stringify(s);
}

function encodeNumber(n: number, strict: boolean, path: string): string {
  if (!Number.isFinite(n)) throw new CanonicalJsonError(`number ${String(n)} is not allowed`, path);
  if (Number.isInteger(n)) {
    if (Math.abs(n) <= MAX_SAFE_CANONICAL_INTEGER) return n === 0 ? '0' : String(n);
    if (strict) throw new CanonicalJsonError(`integer ${String(n)} is outside the canonical range`, path);
    // Large integers from old room versions: write every digit, never an exponent.
    return BigInt(n).toString();
  }
  if (strict) throw new CanonicalJsonError(`float ${String(n)} is not allowed`, path);
  return JSON.stringify(n);
}

function encodeBigInt(n: bigint, strict: boolean, path: string): string {
  if (strict && (n > BigInt(MAX_SAFE_CANONICAL_INTEGER) || n < -BigInt(MAX_SAFE_CANONICAL_INTEGER))) {
    throw new CanonicalJsonError(`integer ${n.toString()} is outside the canonical range`, path);
  }
  return n.toString();
}

function encode(value: unknown, strict: boolean, path: string, depth: number): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value, path);
    case 'number':
      return encodeNumber(value, strict, path);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return encodeBigInt(value, strict, path);
    case 'object': {
      if (value === null) return 'null';
      if (depth >= MAX_CANONICAL_DEPTH) throw new CanonicalJsonError('nesting too deep', path);
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          out += encode(value[i], strict, `${path}[${i}]`, depth + 1);
        }
        return out + ']';
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        throw new CanonicalJsonError('only plain objects and arrays can be encoded', path);
      }
      const obj = value as Record<string, unknown>;
      const keys = sortKeys(Object.keys(obj));
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        if (i > 0) out += ',';
        const childPath = `${path}.${k}`;
        out += encodeString(k, childPath);
        out += ':';
        out += encode(obj[k], strict, childPath, depth + 1);
      }
      return out + '}';
    }
    case 'undefined':
      throw new CanonicalJsonError('undefined is not a JSON value', path);
    default:
      throw new CanonicalJsonError(`${typeof value} is not a JSON value`, path);
  }
}

/** Encodes `value` as canonical JSON text. UTF-8 encode the result to get the signed bytes. */
export function canonicalJson(value: unknown, opts?: CanonicalJsonOptions): string {
  return encode(value, opts?.strict ?? false, '$', 0);
}

/** Canonical JSON as UTF-8 bytes. */
export function canonicalJsonBytes(value: unknown, opts?: CanonicalJsonOptions): Buffer {
  return Buffer.from(canonicalJson(value, opts), 'utf8');
}

/**
 * Checks that `value` satisfies canonical JSON's value rules (strict by default) without
 * keeping the encoding. Returns the error instead of throwing.
 */
export function checkCanonicalJson(value: unknown, opts: CanonicalJsonOptions = { strict: true }): CanonicalJsonError | null {
  try {
    encode(value, opts.strict ?? false, '$', 0);
    return null;
  } catch (err) {
    if (err instanceof CanonicalJsonError) return err;
    throw err;
  }
}

/**
 * Parses JSON text and checks the result against canonical JSON's value rules (strict by
 * default). Returns `undefined` when the text is not JSON or breaks the rules. Number
 * literals are judged by their parsed value: `1.0` and `1e3` are integers, `1.5` is not,
 * and integers beyond 2^53 are rejected in strict mode.
 */
export function parseCanonicalSafe(text: string, opts: CanonicalJsonOptions = { strict: true }): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return checkCanonicalJson(value, opts) === null ? value : undefined;
}

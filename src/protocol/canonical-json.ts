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
/** Characters that need an escape, or a surrogate check. */
const NEEDS_CARE = /["\\\u0000-\u001f\uD800-\uDFFF]/;

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

/**
 * Raised deep inside the encoder; containers prepend their key/index while it unwinds, so no
 * path strings are built on the success path. Converted to `CanonicalJsonError` at the top.
 */
class EncodeFailure {
  readonly segments: string[] = [];
  constructor(readonly message: string) {}
}

function encodeString(s: string): string {
  if (!NEEDS_CARE.test(s)) return `"${s}"`;
  if (HAS_SURROGATE.test(s) && LONE_SURROGATE.test(s)) throw new EncodeFailure('string contains a lone UTF-16 surrogate');
  // JSON.stringify emits exactly the escapes canonical JSON requires (and no others):
  // \" \\ \b \f \n \r \t and lower-case \u00XX for the remaining C0 controls.
  return JSON.stringify(s);
}

function encodeNumber(n: number, strict: boolean): string {
  if (!Number.isFinite(n)) throw new EncodeFailure(`number ${String(n)} is not allowed`);
  if (Number.isInteger(n)) {
    if (Math.abs(n) <= MAX_SAFE_CANONICAL_INTEGER) return n === 0 ? '0' : String(n);
    if (strict) throw new EncodeFailure(`integer ${String(n)} is outside the canonical range`);
    // Large integers from old room versions: write every digit, never an exponent.
    return BigInt(n).toString();
  }
  if (strict) throw new EncodeFailure(`float ${String(n)} is not allowed`);
  return JSON.stringify(n);
}

function encodeBigInt(n: bigint, strict: boolean): string {
  if (strict && (n > BigInt(MAX_SAFE_CANONICAL_INTEGER) || n < -BigInt(MAX_SAFE_CANONICAL_INTEGER))) {
    throw new EncodeFailure(`integer ${n.toString()} is outside the canonical range`);
  }
  return n.toString();
}

function encodeArray(value: unknown[], strict: boolean, depth: number): string {
  let i = 0;
  try {
    let out = '[';
    for (; i < value.length; i++) {
      if (i > 0) out += ',';
      out += encode(value[i], strict, depth + 1);
    }
    return out + ']';
  } catch (err) {
    if (err instanceof EncodeFailure) err.segments.push(`[${i}]`);
    throw err;
  }
}

function encodeObject(obj: Record<string, unknown>, strict: boolean, depth: number): string {
  const keys = sortKeys(Object.keys(obj));
  let k = '';
  try {
    let out = '{';
    for (let i = 0; i < keys.length; i++) {
      k = keys[i]!;
      if (i > 0) out += ',';
      out += encodeString(k);
      out += ':';
      out += encode(obj[k], strict, depth + 1);
    }
    return out + '}';
  } catch (err) {
    if (err instanceof EncodeFailure) err.segments.push(`.${k}`);
    throw err;
  }
}

function encode(value: unknown, strict: boolean, depth: number): string {
  switch (typeof value) {
    case 'string':
      return encodeString(value);
    case 'number':
      return encodeNumber(value, strict);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return encodeBigInt(value, strict);
    case 'object': {
      if (value === null) return 'null';
      if (depth >= MAX_CANONICAL_DEPTH) throw new EncodeFailure('nesting too deep');
      if (Array.isArray(value)) return encodeArray(value, strict, depth);
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) {
        throw new EncodeFailure('only plain objects and arrays can be encoded');
      }
      return encodeObject(value as Record<string, unknown>, strict, depth);
    }
    case 'undefined':
      throw new EncodeFailure('undefined is not a JSON value');
    default:
      throw new EncodeFailure(`${typeof value} is not a JSON value`);
  }
}

function run(value: unknown, strict: boolean): string {
  try {
    return encode(value, strict, 0);
  } catch (err) {
    if (err instanceof EncodeFailure) {
      throw new CanonicalJsonError(err.message, '$' + err.segments.reverse().join(''));
    }
    throw err;
  }
}

/** Encodes `value` as canonical JSON text. UTF-8 encode the result to get the signed bytes. */
export function canonicalJson(value: unknown, opts?: CanonicalJsonOptions): string {
  return run(value, opts?.strict ?? false);
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
    run(value, opts.strict ?? false);
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

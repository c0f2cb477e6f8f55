/**
 * An incremental reader of one JSON object whose big members are arrays (a send_join or /state
 * response): fed the body chunk by chunk, it hands over each element of the chosen top-level
 * arrays as soon as the element is complete, and keeps the other top-level members whole. Only
 * one element is held at a time, so a response of tens of thousands of events never exists as
 * one string or one parsed tree.
 *
 * The scanner only finds where values end (nesting, strings and their escapes); each complete
 * value is then decoded by JSON.parse, which also validates it. Bytes of an unfinished value are
 * kept as Buffer slices, so a UTF-8 sequence or an escape split across chunks is decoded whole.
 */

export class JsonStreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JsonStreamError';
  }
}

export interface JsonStreamOptions {
  /** Top-level keys whose array elements are handed to `onElement` one by one. */
  streamed: readonly string[];
  onElement: (key: string, value: unknown) => void;
  /** Largest single value (an element or another top-level member), in bytes. */
  maxValueBytes?: number;
}

const enum C {
  Quote = 0x22,
  Backslash = 0x5c,
  Comma = 0x2c,
  Colon = 0x3a,
  OpenBrace = 0x7b,
  CloseBrace = 0x7d,
  OpenBracket = 0x5b,
  CloseBracket = 0x5d,
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

type Mode =
  | 'start' // before the top-level `{`
  | 'key-or-end' // after `{`: a key or `}`
  | 'key' // after `,` in the object: a key
  | 'colon'
  | 'value' // a member's value starts
  | 'after-value' // `,` or `}`
  | 'elem-or-end' // after `[` of a streamed array: an element or `]`
  | 'elem' // after `,` in a streamed array: an element
  | 'after-elem' // `,` or `]`
  | 'done';

/** What is being scanned: a member value, an array element or a key. */
type Target = 'member' | 'element' | 'key';

export class JsonObjectStream {
  private mode: Mode = 'start';
  private readonly streamed: Set<string>;
  private readonly maxValueBytes: number;
  private readonly members: Record<string, unknown> = {};
  private key = '';
  /** The value being scanned: its kind, nesting depth, string/escape state and bytes so far. */
  private scanning: { target: Target; depth: number; inString: boolean; escape: boolean; scalar: boolean } | undefined;
  private parts: Buffer[] = [];
  private partBytes = 0;
  private total = 0;
  private elements = 0;

  constructor(private readonly opts: JsonStreamOptions) {
    this.streamed = new Set(opts.streamed);
    this.maxValueBytes = opts.maxValueBytes ?? 1024 * 1024;
  }

  /** Bytes fed so far. */
  get bytes(): number {
    return this.total;
  }

  /** Elements handed over so far. */
  get elementCount(): number {
    return this.elements;
  }

  write(chunk: Buffer | Uint8Array | string): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    this.total += buf.length;
    let i = 0;
    const n = buf.length;
    while (i < n) {
      if (this.scanning) {
        i = this.scan(buf, i);
        continue;
      }
      const b = buf[i]!;
      if (isSpace(b)) {
        i++;
        continue;
      }
      switch (this.mode) {
        case 'start':
          if (b !== C.OpenBrace) throw new JsonStreamError('the body is not a JSON object');
          this.mode = 'key-or-end';
          i++;
          break;
        case 'key-or-end':
        case 'key':
          if (b === C.CloseBrace && this.mode === 'key-or-end') {
            this.mode = 'done';
            i++;
            break;
          }
          if (b !== C.Quote) throw new JsonStreamError('expected a key');
          this.begin('key', buf, i);
          i = this.scan(buf, i + 1);
          break;
        case 'colon':
          if (b !== C.Colon) throw new JsonStreamError('expected ":"');
          this.mode = 'value';
          i++;
          break;
        case 'value':
          if (b === C.OpenBracket && this.streamed.has(this.key)) {
            this.mode = 'elem-or-end';
            i++;
            break;
          }
          this.begin('member', buf, i);
          i = this.scan(buf, i + 1);
          break;
        case 'after-value':
          if (b === C.Comma) this.mode = 'key';
          else if (b === C.CloseBrace) this.mode = 'done';
          else throw new JsonStreamError('expected "," or "}" after a member');
          i++;
          break;
        case 'elem-or-end':
        case 'elem':
          if (b === C.CloseBracket && this.mode === 'elem-or-end') {
            this.mode = 'after-value';
            i++;
            break;
          }
          this.begin('element', buf, i);
          i = this.scan(buf, i + 1);
          break;
        case 'after-elem':
          if (b === C.Comma) this.mode = 'elem';
          else if (b === C.CloseBracket) this.mode = 'after-value';
          else throw new JsonStreamError('expected "," or "]" in an array');
          i++;
          break;
        case 'done':
          throw new JsonStreamError('data after the end of the object');
      }
    }
    // Keep the unfinished value's bytes of this chunk.
    if (this.scanning && this.sliceStart >= 0) {
      this.keep(buf.subarray(this.sliceStart));
    }
    this.sliceStart = -1;
  }

  /** Ends the input: throws when the object is incomplete; returns the non-streamed members. */
  end(): Record<string, unknown> {
    if (this.mode !== 'done' || this.scanning) throw new JsonStreamError('the JSON object is incomplete');
    return this.members;
  }

  /** Where the current value starts in the current chunk (-1: it started in an earlier chunk). */
  private sliceStart = -1;

  private begin(target: Target, buf: Buffer, i: number): void {
    const b = buf[i]!;
    this.scanning = {
      target,
      depth: b === C.OpenBrace || b === C.OpenBracket ? 1 : 0,
      inString: b === C.Quote,
      escape: false,
      scalar: b !== C.OpenBrace && b !== C.OpenBracket && b !== C.Quote,
    };
    this.parts = [];
    this.partBytes = 0;
    this.sliceStart = i;
  }

  private keep(part: Buffer): void {
    this.partBytes += part.length;
    if (this.partBytes > this.maxValueBytes) throw new JsonStreamError(`a value is larger than ${this.maxValueBytes} bytes`);
    // Copy: the caller may reuse its chunk buffers.
    this.parts.push(Buffer.from(part));
  }

  /**
   * Scans the current value from `i`; returns the index
   * after it when it ends in this chunk (and completes it), or `buf.length`.
   */
  private scan(buf: Buffer, i: number): number {
    const s = this.scanning!;
    if (this.sliceStart < 0) this.sliceStart = i;
    const n = buf.length;
    if (s.scalar) {
      // Numbers, true, false, null: up to the next delimiter (not part of the value).
      while (i < n) {
        const b = buf[i]!;
        if (b === C.Comma || b === C.CloseBrace || b === C.CloseBracket || isSpace(b)) {
          this.complete(buf, i);
          return i;
        }
        i++;
      }
      this.checkSize(n - this.sliceStart);
      return n;
    }
    while (i < n) {
      if (s.inString) {
        if (s.escape) {
          // The byte after a backslash never ends the string.
          s.escape = false;
          i++;
          continue;
        }
        let j = i;
        while (j < n) {
          const c = buf[j]!;
          if (c === C.Quote || c === C.Backslash) break;
          j++;
        }
        if (j >= n) {
          i = n;
          break;
        }
        if (buf[j] === C.Backslash) {
          s.escape = true;
          i = j + 1;
          continue;
        }
        s.inString = false;
        i = j + 1;
        if (s.depth === 0) {
          this.complete(buf, i);
          return i;
        }
        continue;
      }
      const b = buf[i]!;
      if (b === C.Quote) s.inString = true;
      else if (b === C.OpenBrace || b === C.OpenBracket) s.depth++;
      else if (b === C.CloseBrace || b === C.CloseBracket) {
        s.depth--;
        if (s.depth === 0) {
          this.complete(buf, i + 1);
          return i + 1;
        }
      }
      i++;
    }
    this.checkSize(n - this.sliceStart);
    return n;
  }

  private checkSize(inChunk: number): void {
    if (this.partBytes + inChunk > this.maxValueBytes) throw new JsonStreamError(`a value is larger than ${this.maxValueBytes} bytes`);
  }

  /** The current value ends at `end` (exclusive) in `buf`: decode it and hand it over. */
  private complete(buf: Buffer, end: number): void {
    const s = this.scanning!;
    const tail = buf.subarray(this.sliceStart, end);
    const text = this.parts.length ? Buffer.concat([...this.parts, tail]).toString('utf8') : tail.toString('utf8');
    if (this.partBytes + tail.length > this.maxValueBytes) throw new JsonStreamError(`a value is larger than ${this.maxValueBytes} bytes`);
    this.parts = [];
    this.partBytes = 0;
    this.scanning = undefined;
    this.sliceStart = -1;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new JsonStreamError(`invalid JSON value: ${(err as Error).message}`);
    }
    switch (s.target) {
      case 'key':
        if (typeof value !== 'string') throw new JsonStreamError('a key is not a string');
        this.key = value;
        this.mode = 'colon';
        break;
      case 'member':
        // An own property even for "__proto__", as JSON.parse makes it (an assignment would set
        // the object's prototype instead).
        Object.defineProperty(this.members, this.key, { value, writable: true, enumerable: true, configurable: true });
        this.mode = 'after-value';
        break;
      case 'element':
        this.elements++;
        this.mode = 'after-elem';
        this.opts.onElement(this.key, value);
        break;
    }
  }
}

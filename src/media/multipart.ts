/**
 * `multipart/mixed` for federation media (RFC 2046): the two-part answer of
 * /_matrix/federation/v1/media/{download,thumbnail} — a JSON metadata part, then the bytes (or a
 * `Location` header). Written and read as streams: the media part never sits whole in memory.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { JsonObject } from '../protocol/json.js';

export function newBoundary(): string {
  return randomBytes(16).toString('hex');
}

/** The boundary parameter of a `multipart/mixed` Content-Type, if that is what it is. */
export function multipartBoundary(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  const [type, ...params] = contentType.split(';');
  if (type!.trim().toLowerCase() !== 'multipart/mixed') return undefined;
  for (const p of params) {
    const m = /^\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s";]{1,70}))\s*$/i.exec(p);
    if (m) return m[1] ?? m[2];
  }
  return undefined;
}

/**
 * Streams a multipart/mixed body: `{metadata}` JSON, then a part with `headers` and `body`.
 * `length` is the total size when `bodyLength` (the part's size) is given.
 */
export function multipartBody(
  boundary: string,
  metadata: JsonObject,
  part: { headers: Record<string, string>; body?: AsyncIterable<Buffer> | Readable; bodyLength?: number },
): { stream: Readable; length: number | undefined } {
  const head = Buffer.from(
    `--${boundary}\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(metadata)}\r\n` +
      `--${boundary}\r\n${Object.entries(part.headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`,
    'utf8',
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8');
  const stream = Readable.from(
    (async function* () {
      yield head;
      if (part.body) for await (const chunk of part.body) yield chunk as Buffer;
      yield tail;
    })(),
    { objectMode: false },
  );
  const length = part.body === undefined ? head.length + tail.length : part.bodyLength === undefined ? undefined : head.length + part.bodyLength + tail.length;
  return { stream, length };
}

export class MultipartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MultipartError';
  }
}

export interface MultipartMedia {
  metadata: JsonObject;
  /** Headers of the second part, names in lower case. */
  headers: Record<string, string>;
  /** The second part's bytes (empty when it only carries a Location). */
  body: AsyncIterable<Buffer>;
}

const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Reads a federation media answer. Only the metadata part and the part headers are buffered
 * (at most 64 KiB); the media bytes are yielded as they arrive, up to the closing delimiter.
 */
export async function readMultipartMedia(source: AsyncIterable<Buffer>, boundary: string): Promise<MultipartMedia> {
  const it = source[Symbol.asyncIterator]();
  let buf: Buffer = Buffer.alloc(0);
  const more = async (): Promise<boolean> => {
    const n = await it.next();
    if (n.done) return false;
    buf = buf.length === 0 ? n.value : Buffer.concat([buf, n.value]);
    if (buf.length > MAX_HEAD_BYTES * 2) throw new MultipartError('multipart headers too large');
    return true;
  };
  const dash = Buffer.from(`--${boundary}`);
  const delimiter = Buffer.from(`\r\n--${boundary}`);

  // Preamble up to the first boundary line.
  let pos: number;
  for (;;) {
    pos = buf.indexOf(dash);
    if (pos >= 0) break;
    if (!(await more())) throw new MultipartError('no multipart boundary');
  }
  buf = buf.subarray(pos + dash.length);

  /** Reads one part's headers, after a boundary line; returns them lower-cased. */
  const readHeaders = async (): Promise<Record<string, string>> => {
    let end: number;
    while ((end = buf.indexOf('\r\n\r\n')) < 0) {
      // A part with no headers at all: the boundary line is followed directly by CRLF CRLF.
      if (!(await more())) throw new MultipartError('truncated multipart part headers');
    }
    const block = buf.subarray(0, end).toString('latin1');
    buf = buf.subarray(end + 4);
    const headers: Record<string, string> = {};
    const lines = block.split('\r\n');
    // First line is the rest of the boundary line (transport padding).
    for (const line of lines.slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    return headers;
  };

  const jsonHeaders = await readHeaders();
  if (jsonHeaders['content-type'] && !jsonHeaders['content-type'].toLowerCase().startsWith('application/json')) {
    throw new MultipartError('first multipart part is not JSON');
  }
  let jsonEnd: number;
  while ((jsonEnd = buf.indexOf(delimiter)) < 0) {
    if (!(await more())) throw new MultipartError('truncated multipart metadata');
  }
  let metadata: JsonObject;
  try {
    const text = buf.subarray(0, jsonEnd).toString('utf8').trim();
    const parsed: unknown = text === '' ? {} : JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    metadata = parsed as JsonObject;
  } catch {
    throw new MultipartError('multipart metadata is not a JSON object');
  }
  buf = buf.subarray(jsonEnd + delimiter.length);
  const headers = await readHeaders();

  async function* body(): AsyncGenerator<Buffer> {
    let pending: Buffer = buf;
    buf = Buffer.alloc(0);
    for (;;) {
      const at = pending.indexOf(delimiter);
      if (at >= 0) {
        if (at > 0) yield pending.subarray(0, at);
        // Drain the epilogue so the connection can be reused.
        for (let n = await it.next(); !n.done; n = await it.next());
        return;
      }
      const keep = Math.min(pending.length, delimiter.length - 1);
      if (pending.length > keep) yield pending.subarray(0, pending.length - keep);
      const tail = pending.subarray(pending.length - keep);
      const n = await it.next();
      if (n.done) throw new MultipartError('multipart body ended without its closing boundary');
      pending = tail.length === 0 ? n.value : Buffer.concat([tail, n.value]);
    }
  }
  return { metadata, headers, body: body() };
}

/**
 * Media bytes on disk, named by their SHA-256: `<root>/content/ab/cd/<hash>`. Writes stream
 * into `<root>/tmp/` while hashing, are fsynced, then renamed into place, so a file under
 * content/ is always complete and identical uploads share one file.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, readdirSync, rmSync, statSync, type ReadStream } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Transform, type TransformCallback } from 'node:stream';

/** Thrown when a stream is longer than the limit given to `write`. */
export class ContentTooLargeError extends Error {
  constructor(readonly limit: number) {
    super(`content larger than ${limit} bytes`);
    this.name = 'ContentTooLargeError';
  }
}

export interface TempContent {
  tmpPath: string;
  sha256: string;
  size: number;
}

export interface StoredContent {
  sha256: string;
  size: number;
}

const HASH_RE = /^[0-9a-f]{64}$/;
/** Temporary files older than this are leftovers of a crash. */
const STALE_TMP_MS = 6 * 3_600_000;

/** Counts, hashes and bounds the bytes passing through. */
class HashingLimiter extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.size > this.limit) return cb(new ContentTooLargeError(this.limit));
    this.hash.update(chunk);
    cb(null, chunk);
  }
}

export class MediaFileStore {
  private readonly contentDir: string;
  private readonly tmpDir: string;

  constructor(readonly root: string) {
    this.contentDir = join(root, 'content');
    this.tmpDir = join(root, 'tmp');
    mkdirSync(this.contentDir, { recursive: true, mode: 0o700 });
    mkdirSync(this.tmpDir, { recursive: true, mode: 0o700 });
    // Leftovers of writes cut short by a crash. Only old ones: another process (the CLI next to
    // a running server) may be using the same store.
    const cutoff = Date.now() - STALE_TMP_MS;
    for (const f of readdirSync(this.tmpDir)) {
      const p = join(this.tmpDir, f);
      try {
        if (statSync(p).mtimeMs < cutoff) rmSync(p, { force: true });
      } catch {
        /* gone already */
      }
    }
  }

  pathOf(sha256: string): string {
    if (!HASH_RE.test(sha256)) throw new Error(`not a SHA-256 hex digest: ${sha256}`);
    return join(this.contentDir, sha256.slice(0, 2), sha256.slice(2, 4), sha256);
  }

  /**
   * Streams `source` into a temporary file (never holding it whole in memory), hashing it.
   * Rejects with ContentTooLargeError beyond `maxBytes`; nothing is left behind on failure.
   * The result must be passed to `commit` (or `discard`).
   */
  async writeTemp(source: Readable | AsyncIterable<Buffer>, maxBytes: number): Promise<TempContent> {
    const tmp = join(this.tmpDir, `${Date.now()}-${randomBytes(8).toString('hex')}`);
    const limiter = new HashingLimiter(maxBytes);
    const out = createWriteStream(tmp, { flags: 'wx', mode: 0o600 });
    try {
      await pipeline(source, limiter, out);
      const fh = await open(tmp, 'r+');
      try {
        await fh.sync();
      } finally {
        await fh.close();
      }
      return { tmpPath: tmp, sha256: limiter.hash.digest('hex'), size: limiter.size };
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw err;
    }
  }

  /** Moves a temporary file to its content address (an identical existing file is kept). */
  async commit(t: TempContent): Promise<StoredContent> {
    const dest = this.pathOf(t.sha256);
    mkdirSync(join(dest, '..'), { recursive: true, mode: 0o700 });
    if (await this.exists(t.sha256)) await unlink(t.tmpPath);
    else await rename(t.tmpPath, dest);
    return { sha256: t.sha256, size: t.size };
  }

  async discard(t: TempContent): Promise<void> {
    await unlink(t.tmpPath).catch(() => {});
  }

  /** writeTemp then commit. */
  async write(source: Readable | AsyncIterable<Buffer>, maxBytes: number): Promise<StoredContent> {
    return this.commit(await this.writeTemp(source, maxBytes));
  }

  /** Stores a buffer (thumbnails, small previews). */
  async writeBuffer(data: Buffer): Promise<StoredContent> {
    return this.write(
      (async function* () {
        yield data;
      })(),
      data.length,
    );
  }

  async exists(sha256: string): Promise<boolean> {
    return stat(this.pathOf(sha256)).then(
      () => true,
      () => false,
    );
  }

  /** A read stream of stored content (a range when `start`/`end` are given, inclusive). */
  read(sha256: string, range?: { start: number; end: number }): ReadStream {
    return createReadStream(this.pathOf(sha256), { highWaterMark: 64 * 1024, ...(range ?? {}) });
  }

  async remove(sha256: string): Promise<void> {
    await unlink(this.pathOf(sha256)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}

/**
 * The media repository: uploads (direct and via /create), local and remote downloads with a
 * local cache of remote media, thumbnails generated once, deletion and cache purging. HTTP
 * specifics live in src/api/media/; this speaks in MatrixErrors and streams.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { MediaConfig } from '../config/schema.js';
import { MatrixError, errors } from '../errors.js';
import type { FederationContext } from '../federation/index.js';
import { FederationError, FederationHttpError, FederationTimeoutError } from '../federation/errors.js';
import type { StreamResponse } from '../federation/transport.js';
import { isValidServerName } from '../protocol/identifiers.js';
import type { MediaRow, MediaStore } from '../storage/stores/media.js';
import { KeyedMutex } from '../util/mutex.js';
import { ContentTooLargeError, type MediaFileStore, type TempContent } from './file-store.js';
import { essence, filenameFromDisposition, OCTET_STREAM, sanitizeContentType, sanitizeFilename } from './headers.js';
import type { IpGuard } from './ip-guard.js';
import { multipartBoundary, readMultipartMedia } from './multipart.js';
import { safeFetch } from './safe-fetch.js';
import {
  canThumbnail,
  chooseTarget,
  generateThumbnail,
  imageInfo,
  Semaphore,
  ThumbnailError,
  type ThumbnailMethod,
} from './thumbnails.js';

const MEDIA_ID_RE = /^[A-Za-z0-9_-]{1,255}$/;
/** Longest wait a download may ask for (timeout_ms) for content not yet uploaded. */
export const MAX_WAIT_MS = 60_000;
export const DEFAULT_WAIT_MS = 20_000;
/** last_access_ts is written at most this often per media. */
const ACCESS_UPDATE_INTERVAL_MS = 3_600_000;

/** What is known about one piece of content that can be served. */
export interface MediaInfo {
  serverName: string;
  mediaId: string;
  /** Sanitised; application/octet-stream when unknown. */
  contentType: string;
  filename: string | undefined;
  size: number;
  sha256: string;
  local: boolean;
}

export interface ThumbnailInfo {
  contentType: string;
  size: number;
  sha256: string;
}

export interface DownloadOptions {
  /** Fetch from the origin server when not cached (legacy `allow_remote`). */
  allowRemote?: boolean;
  timeoutMs?: number;
  /** Requested through an unauthenticated (deprecated) endpoint: frozen media is not served. */
  unauthenticated?: boolean;
}

export interface UploadInput {
  contentType?: string;
  filename?: string;
  /** The request body; undefined for an empty upload. */
  body: Readable | AsyncIterable<Buffer> | undefined;
  /** Content-Length, when the client sent one (checked before reading anything). */
  declaredLength?: number;
}

export interface MediaRepositoryDeps {
  serverName: string;
  config: MediaConfig;
  store: MediaStore;
  files: MediaFileStore;
  federation: FederationContext['federation'];
  guard: IpGuard;
  log: Logger;
  now?: () => number;
}

export function newMediaId(): string {
  return randomBytes(18).toString('base64url');
}

export function isValidMediaId(id: string): boolean {
  return MEDIA_ID_RE.test(id);
}

const emptyBody = async function* (): AsyncGenerator<Buffer> {};

export class MediaRepository {
  readonly serverName: string;
  readonly config: MediaConfig;
  readonly store: MediaStore;
  readonly files: MediaFileStore;
  private readonly federation: FederationContext['federation'];
  private readonly guard: IpGuard;
  private readonly log: Logger;
  private readonly now: () => number;
  /** Serialises "file appears + row written" against "no row uses it + file removed" per hash. */
  private readonly hashLock = new KeyedMutex();
  private readonly remoteFetches = new Map<string, Promise<MediaRow>>();
  private readonly thumbnailJobs = new Map<string, Promise<ThumbnailInfo>>();
  private readonly thumbnailSlots = new Semaphore(2);
  private readonly uploaded = new EventEmitter();

  constructor(deps: MediaRepositoryDeps) {
    this.serverName = deps.serverName;
    this.config = deps.config;
    this.store = deps.store;
    this.files = deps.files;
    this.federation = deps.federation;
    this.guard = deps.guard;
    this.log = deps.log;
    this.now = deps.now ?? Date.now;
    this.uploaded.setMaxListeners(0);
  }

  get maxUploadSize(): number {
    return this.config.max_upload_size;
  }

  private tooLarge(): MatrixError {
    return errors.tooLarge(`Cannot upload files larger than ${this.config.max_upload_size} bytes`);
  }

  private async checkQuota(userId: string, adding: number): Promise<void> {
    const quota = this.config.max_user_storage;
    if (quota === undefined) return;
    const used = await this.store.usageOf(userId);
    if (used + adding > quota) {
      throw new MatrixError('M_FORBIDDEN', 403, `Media storage quota exceeded (${used} of ${quota} bytes used)`);
    }
  }

  /** Streams an upload body to a temporary file, enforcing the size limit and the quota. */
  private async receive(uploader: string, input: UploadInput): Promise<TempContent> {
    const max = this.config.max_upload_size;
    if (input.declaredLength !== undefined && input.declaredLength > max) throw this.tooLarge();
    await this.checkQuota(uploader, input.declaredLength ?? 0);
    let temp: TempContent;
    try {
      temp = await this.files.writeTemp(input.body ?? emptyBody(), max);
    } catch (err) {
      if (err instanceof ContentTooLargeError) throw this.tooLarge();
      throw err;
    }
    try {
      await this.checkQuota(uploader, temp.size);
    } catch (err) {
      await this.files.discard(temp);
      throw err;
    }
    return temp;
  }

  /** POST /upload: stores the content and returns its mxc:// URI. */
  async upload(uploader: string, input: UploadInput): Promise<string> {
    const temp = await this.receive(uploader, input);
    const mediaId = newMediaId();
    const now = this.now();
    await this.hashLock.run(temp.sha256, async () => {
      await this.files.commit(temp);
      await this.store.insert({
        serverName: this.serverName,
        mediaId,
        uploader,
        contentType: sanitizeContentType(input.contentType) ?? null,
        filename: sanitizeFilename(input.filename) ?? null,
        size: temp.size,
        sha256: temp.sha256,
        createdTs: now,
        unusedExpiresTs: null,
        lastAccessTs: now,
        authenticatedOnly: this.config.freeze_unauthenticated,
      });
    });
    this.log.debug({ media_id: mediaId, size: temp.size, uploader }, 'media uploaded');
    return `mxc://${this.serverName}/${mediaId}`;
  }

  /** POST /create: reserves a media ID for a later upload. */
  async create(uploader: string): Promise<{ content_uri: string; unused_expires_at: number }> {
    const now = this.now();
    await this.store.deleteExpiredPending(now);
    if ((await this.store.pendingCount(uploader, now)) >= this.config.max_pending_uploads) {
      throw new MatrixError('M_LIMIT_EXCEEDED', 429, 'Too many pending media uploads', { retry_after_ms: 60_000 });
    }
    const mediaId = newMediaId();
    const expires = now + this.config.pending_upload_lifetime_ms;
    await this.store.insert({
      serverName: this.serverName,
      mediaId,
      uploader,
      contentType: null,
      filename: null,
      size: null,
      sha256: null,
      createdTs: now,
      unusedExpiresTs: expires,
      lastAccessTs: now,
      authenticatedOnly: this.config.freeze_unauthenticated,
    });
    return { content_uri: `mxc://${this.serverName}/${mediaId}`, unused_expires_at: expires };
  }

  /** PUT /upload/{serverName}/{mediaId}: the content of a media ID from /create. */
  async uploadTo(serverName: string, mediaId: string, uploader: string, input: UploadInput): Promise<void> {
    const row = serverName === this.serverName && isValidMediaId(mediaId) ? await this.store.get(serverName, mediaId) : undefined;
    const now = this.now();
    if (!row || (row.sha256 === null && row.unusedExpiresTs !== null && row.unusedExpiresTs <= now)) {
      throw errors.notFound('Unknown media ID');
    }
    if (row.uploader !== uploader) throw errors.forbidden('This media ID was created by another user');
    if (row.sha256 !== null) throw new MatrixError('M_CANNOT_OVERWRITE_MEDIA', 409, 'Media already uploaded');
    const temp = await this.receive(uploader, input);
    let completed = false;
    await this.hashLock.run(temp.sha256, async () => {
      await this.files.commit(temp);
      completed = await this.store.complete(serverName, mediaId, {
        contentType: sanitizeContentType(input.contentType) ?? null,
        filename: sanitizeFilename(input.filename) ?? null,
        size: temp.size,
        sha256: temp.sha256,
        createdTs: now,
        authenticatedOnly: this.config.freeze_unauthenticated,
      });
    });
    if (!completed) {
      await this.releaseHashes([temp.sha256]);
      throw new MatrixError('M_CANNOT_OVERWRITE_MEDIA', 409, 'Media already uploaded');
    }
    this.uploaded.emit(`${serverName}/${mediaId}`);
  }

  /** A local media row with content, waiting up to `timeoutMs` for a pending upload. */
  private async localRow(mediaId: string, timeoutMs: number): Promise<MediaRow> {
    const deadline = this.now() + timeoutMs;
    for (;;) {
      const row = await this.store.get(this.serverName, mediaId);
      if (!row) throw errors.notFound('Media not found');
      if (row.sha256 !== null) return row;
      const now = this.now();
      if (row.unusedExpiresTs !== null && row.unusedExpiresTs <= now) throw errors.notFound('Media not found');
      const left = deadline - now;
      if (left <= 0) throw new MatrixError('M_NOT_YET_UPLOADED', 504, 'Content has not yet been uploaded');
      await new Promise<void>((resolve) => {
        const key = `${this.serverName}/${mediaId}`;
        const done = () => {
          clearTimeout(timer);
          this.uploaded.off(key, done);
          resolve();
        };
        const timer = setTimeout(done, Math.min(left, 5_000));
        timer.unref();
        this.uploaded.on(key, done);
      });
    }
  }

  /**
   * The content behind an mxc:// URI: local, cached, or fetched from its origin server.
   * Throws 404 M_NOT_FOUND (unknown, quarantined, or frozen for unauthenticated access),
   * 504 M_NOT_YET_UPLOADED, 502 M_TOO_LARGE or 502 for a remote failure.
   */
  async getMedia(serverName: string, mediaId: string, opts: DownloadOptions = {}): Promise<MediaInfo> {
    if (!isValidServerName(serverName) || !isValidMediaId(mediaId)) throw errors.notFound('Media not found');
    const timeoutMs = Math.min(Math.max(opts.timeoutMs ?? DEFAULT_WAIT_MS, 0), MAX_WAIT_MS);
    const local = serverName === this.serverName;
    let row: MediaRow;
    if (local) {
      row = await this.localRow(mediaId, timeoutMs);
    } else {
      const cached = await this.store.get(serverName, mediaId);
      if (cached && cached.sha256 !== null && (await this.files.exists(cached.sha256))) row = cached;
      else {
        // A fetch now would be "newly cached" media: frozen for the unauthenticated endpoints.
        if (opts.unauthenticated && this.config.freeze_unauthenticated) throw errors.notFound('Media not found');
        if (opts.allowRemote === false) throw errors.notFound('Remote media not cached and allow_remote is false');
        row = await this.fetchRemote(serverName, mediaId, timeoutMs, opts.unauthenticated === true);
      }
    }
    if (row.quarantined) throw errors.notFound('Media not found');
    if (opts.unauthenticated && row.authenticatedOnly) throw errors.notFound('Media not found');
    const now = this.now();
    if (now - row.lastAccessTs > ACCESS_UPDATE_INTERVAL_MS) {
      this.store.touch(serverName, mediaId, now).catch((err) => this.log.warn({ err }, 'could not record media access'));
    }
    return {
      serverName,
      mediaId,
      contentType: row.contentType ?? OCTET_STREAM,
      filename: row.filename ?? undefined,
      size: row.size ?? 0,
      sha256: row.sha256!,
      local,
    };
  }

  /** Streams stored content (optionally a byte range, inclusive). */
  open(sha256: string, range?: { start: number; end: number }): Readable {
    return this.files.read(sha256, range);
  }

  /** Fetches remote media once (concurrent requests share the download). */
  private fetchRemote(serverName: string, mediaId: string, timeoutMs: number, unauthenticated: boolean): Promise<MediaRow> {
    const key = `${serverName}/${mediaId}`;
    let p = this.remoteFetches.get(key);
    if (!p) {
      p = this.doFetchRemote(serverName, mediaId, timeoutMs, unauthenticated).finally(() => this.remoteFetches.delete(key));
      this.remoteFetches.set(key, p);
    }
    return p;
  }

  private async doFetchRemote(serverName: string, mediaId: string, timeoutMs: number, unauthenticated: boolean): Promise<MediaRow> {
    if (!this.federation.isAllowed(serverName)) throw errors.notFound('Federation with that server is not allowed');
    const client = this.federation.client;
    const requestTimeout = this.config.remote_fetch_timeout_ms;
    const max = this.config.max_upload_size;
    let temp: TempContent | undefined;
    let contentType: string | undefined;
    let filename: string | undefined;
    let res: StreamResponse | undefined;
    try {
      let legacy = false;
      try {
        res = await client.getStream(serverName, `/_matrix/federation/v1/media/download/${encodeURIComponent(mediaId)}`, {
          query: { timeout_ms: timeoutMs },
          timeoutMs: Math.max(requestTimeout, timeoutMs + 5_000),
        });
      } catch (err) {
        if (!(err instanceof FederationHttpError) || !isUnknownEndpoint(err)) throw err;
        legacy = true;
        res = await client.getStream(
          serverName,
          `/_matrix/media/v3/download/${encodeURIComponent(serverName)}/${encodeURIComponent(mediaId)}`,
          { query: { allow_remote: 'false', timeout_ms: timeoutMs }, timeoutMs: Math.max(requestTimeout, timeoutMs + 5_000) },
        );
      }
      const declared = Number(header(res.headers['content-length']));
      const boundary = legacy ? undefined : multipartBoundary(header(res.headers['content-type']));
      if (boundary === undefined) {
        // Legacy endpoint (or a server answering the new one without multipart): plain bytes.
        if (Number.isFinite(declared) && declared > max) {
          res.abort();
          throw new MatrixError('M_TOO_LARGE', 502, 'Remote content is too large');
        }
        contentType = header(res.headers['content-type']);
        filename = filenameFromDisposition(header(res.headers['content-disposition']));
        temp = await this.files.writeTemp(res.body, max);
      } else {
        const part = await readMultipartMedia(res.body, boundary);
        const location = part.headers['location'];
        if (location !== undefined) {
          // Drain the (empty) part, then follow the redirect with the same guard as URL previews.
          for await (const _ of part.body) void _;
          const redirected = await safeFetch(location, {
            resolver: this.federation.transport.resolver,
            guard: this.guard,
            timeoutMs: requestTimeout,
            maxRedirects: 5,
            userAgent: 'Myelin',
          });
          if (redirected.status !== 200) {
            redirected.abort();
            throw new MatrixError('M_UNKNOWN', 502, `Remote media location answered ${redirected.status}`);
          }
          const len = Number(header(redirected.headers['content-length']));
          if (Number.isFinite(len) && len > max) {
            redirected.abort();
            throw new MatrixError('M_TOO_LARGE', 502, 'Remote content is too large');
          }
          contentType = header(redirected.headers['content-type']);
          filename = filenameFromDisposition(header(redirected.headers['content-disposition']));
          temp = await this.files.writeTemp(redirected.body, max);
        } else {
          contentType = part.headers['content-type'];
          filename = filenameFromDisposition(part.headers['content-disposition']);
          temp = await this.files.writeTemp(part.body, max);
        }
      }
    } catch (err) {
      res?.abort();
      throw remoteError(err, serverName, this.log);
    }
    const now = this.now();
    const t = temp;
    const row: Omit<MediaRow, 'quarantined' | 'unusedExpiresTs'> = {
      serverName,
      mediaId,
      uploader: null,
      contentType: sanitizeContentType(contentType) ?? null,
      filename: filename ?? null,
      size: t.size,
      sha256: t.sha256,
      createdTs: now,
      lastAccessTs: now,
      // Cached now: new media as far as the freeze is concerned (unless fetched while unfrozen).
      authenticatedOnly: this.config.freeze_unauthenticated && !unauthenticated,
    };
    await this.hashLock.run(t.sha256, async () => {
      await this.files.commit(t);
      await this.store.upsertRemote(row);
    });
    this.log.debug({ server: serverName, media_id: mediaId, size: t.size }, 'cached remote media');
    return { ...row, quarantined: false, unusedExpiresTs: null };
  }

  /**
   * A thumbnail of the content, at least as large as asked where the source allows, generated
   * once per size and method and kept. Small sources are served as they are.
   */
  async thumbnail(
    serverName: string,
    mediaId: string,
    req: { width: number; height: number; method: ThumbnailMethod; animated: boolean } & DownloadOptions,
  ): Promise<ThumbnailInfo> {
    if (!Number.isInteger(req.width) || !Number.isInteger(req.height) || req.width < 1 || req.height < 1) {
      throw errors.invalidParam('width and height must be positive integers');
    }
    const media = await this.getMedia(serverName, mediaId, req);
    if (!canThumbnail(media.contentType)) {
      throw new MatrixError('M_UNKNOWN', 400, 'Cannot generate thumbnails for the requested content');
    }
    if (media.size > this.config.max_thumbnail_source_size) {
      throw new MatrixError('M_TOO_LARGE', media.local ? 413 : 502, 'Content is too large to thumbnail');
    }
    const target = chooseTarget(req.width, req.height, req.method);
    const cached = await this.store.getThumbnail(serverName, mediaId, target.width, target.height, target.method, req.animated);
    if (cached && (await this.files.exists(cached.sha256))) return cached;
    const key = `${serverName}/${mediaId}/${target.width}x${target.height}/${target.method}/${req.animated}`;
    let job = this.thumbnailJobs.get(key);
    if (!job) {
      job = this.thumbnailSlots
        .run(async () => {
          const path = this.files.pathOf(media.sha256);
          const maxPixels = this.config.max_thumbnail_pixels;
          const src = await imageInfo(path, maxPixels);
          let thumb: ThumbnailInfo;
          if (src.width <= target.width && src.height <= target.height && (!src.animated || req.animated)) {
            // Smaller than asked: the original content is the thumbnail.
            thumb = { contentType: essence(media.contentType) === 'image/jpg' ? 'image/jpeg' : essence(media.contentType), size: media.size, sha256: media.sha256 };
          } else {
            const made = await generateThumbnail(path, media.contentType, target, req.animated, maxPixels);
            const temp = await this.files.writeTemp(
              (async function* () {
                yield made.data;
              })(),
              made.data.length,
            );
            thumb = { contentType: made.contentType, size: temp.size, sha256: temp.sha256 };
            await this.hashLock.run(temp.sha256, async () => {
              await this.files.commit(temp);
              await this.store.putThumbnail(serverName, mediaId, { ...target, animated: req.animated, ...thumb }, this.now());
            });
            return thumb;
          }
          await this.store.putThumbnail(serverName, mediaId, { ...target, animated: req.animated, ...thumb }, this.now());
          return thumb;
        })
        .catch((err: unknown) => {
          if (err instanceof ThumbnailError) {
            throw err.reason === 'too_large'
              ? new MatrixError('M_TOO_LARGE', media.local ? 413 : 502, 'Content is too large to thumbnail')
              : new MatrixError('M_UNKNOWN', 400, 'Cannot generate thumbnails for the requested content');
          }
          throw err;
        })
        .finally(() => this.thumbnailJobs.delete(key));
      this.thumbnailJobs.set(key, job);
    }
    return job;
  }

  /** Removes files no media or thumbnail row refers to any more. */
  private async releaseHashes(hashes: string[]): Promise<void> {
    for (const h of hashes) {
      await this.hashLock.run(h, async () => {
        if (!(await this.store.hashInUse(h))) await this.files.remove(h);
      });
    }
  }

  /** Deletes a media item (local or cached), its thumbnails and any file left unused. */
  async delete(serverName: string, mediaId: string): Promise<boolean> {
    const { deleted, hashes } = await this.store.delete(serverName, mediaId);
    await this.releaseHashes(hashes);
    if (deleted) this.log.info({ server: serverName, media_id: mediaId }, 'media deleted');
    return deleted;
  }

  async setQuarantined(serverName: string, mediaId: string, quarantined: boolean): Promise<boolean> {
    return this.store.setQuarantined(serverName, mediaId, quarantined);
  }

  /** Deletes cached remote media not accessed since `beforeTs`; returns how many. */
  async purgeRemote(beforeTs: number): Promise<number> {
    let total = 0;
    for (let round = 0; round < 1_000_000; round++) {
      const batch = await this.store.remoteNotAccessedSince(this.serverName, beforeTs, 100);
      if (batch.length === 0) break;
      for (const m of batch) if (await this.delete(m.serverName, m.mediaId)) total++;
    }
    this.log.info({ deleted: total, before_ts: beforeTs }, 'purged remote media cache');
    return total;
  }
}

function header(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** A remote server that does not know the federation media endpoints yet. */
function isUnknownEndpoint(err: FederationHttpError): boolean {
  if (err.errcode === 'M_UNRECOGNIZED') return true;
  if (err.status === 404) return err.errcode === undefined;
  return err.status === 400 || err.status === 405 || err.status === 501;
}

/** Maps a failed remote fetch to the client's error. */
function remoteError(err: unknown, serverName: string, log: Logger): MatrixError {
  if (err instanceof MatrixError) return err;
  if (err instanceof ContentTooLargeError) return new MatrixError('M_TOO_LARGE', 502, 'Remote content is too large');
  if (err instanceof FederationHttpError) {
    if (err.status === 404) return errors.notFound('Remote media not found');
    if (err.errcode === 'M_NOT_YET_UPLOADED') return new MatrixError('M_NOT_YET_UPLOADED', 504, 'Content has not yet been uploaded');
    if (err.errcode === 'M_TOO_LARGE') return new MatrixError('M_TOO_LARGE', 502, 'Remote content is too large');
  }
  if (err instanceof FederationTimeoutError) log.info({ server: serverName }, 'remote media fetch timed out');
  else if (err instanceof FederationError) log.info({ server: serverName, err: err.message }, 'remote media fetch failed');
  else log.warn({ server: serverName, err }, 'remote media fetch failed');
  return new MatrixError('M_UNKNOWN', 502, `Failed to fetch media from ${serverName}`);
}

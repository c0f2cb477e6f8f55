/**
 * Media endpoints: the authenticated client API (/_matrix/client/v1/media/*), the legacy
 * /_matrix/media/{v3,r0,v1}/* endpoints (uploads; unauthenticated downloads frozen per
 * media.freeze_unauthenticated), and Synapse-compatible admin endpoints.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import type { AppContext } from '../../app.js';
import { MatrixError, errors } from '../../errors.js';
import { contentDisposition, MEDIA_SECURITY_HEADERS } from '../../media/headers.js';
import type { MediaInfo } from '../../media/repository.js';
import type { ThumbnailMethod } from '../../media/thumbnails.js';
import { requireAdmin, requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';

const AUTHED = '/_matrix/client/v1/media';
const LEGACY = ['/_matrix/media/v3', '/_matrix/media/r0', '/_matrix/media/v1'] as const;

const MediaParams = Type.Object({ serverName: Type.String(), mediaId: Type.String() });
const MediaFileParams = Type.Object({ serverName: Type.String(), mediaId: Type.String(), fileName: Type.String() });
const DownloadQuery = Type.Object({
  timeout_ms: Type.Optional(Type.Integer({ minimum: 0 })),
  allow_remote: Type.Optional(Type.Boolean()),
  allow_redirect: Type.Optional(Type.Boolean()),
});
const ThumbnailQuery = Type.Object({
  width: Type.Integer({ minimum: 1, maximum: 100_000 }),
  height: Type.Integer({ minimum: 1, maximum: 100_000 }),
  method: Type.Optional(Type.Union([Type.Literal('crop'), Type.Literal('scale')])),
  animated: Type.Optional(Type.Boolean()),
  timeout_ms: Type.Optional(Type.Integer({ minimum: 0 })),
  allow_remote: Type.Optional(Type.Boolean()),
});
const PreviewQuery = Type.Object({ url: Type.String({ minLength: 1 }), ts: Type.Optional(Type.Integer()) });

/** A single `bytes=a-b` range (a suffix `bytes=-n` too); undefined for none or several. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return 'unsatisfiable';
  return { start, end };
}

/** Waits until a file stream is open, so a missing file becomes a 404 instead of a cut response. */
async function opened(stream: Readable): Promise<Readable> {
  await new Promise<void>((resolve, reject) => {
    stream.once('ready', () => resolve());
    stream.once('error', reject);
  });
  return stream;
}

/** Sends stored media with the headers that keep it from running in a browser. */
export async function sendMedia(
  ctx: AppContext,
  req: FastifyRequest,
  reply: FastifyReply,
  media: MediaInfo,
  opts: { fileName?: string; publicCache: boolean },
): Promise<FastifyReply> {
  reply.headers(MEDIA_SECURITY_HEADERS);
  reply.header('content-type', media.contentType);
  reply.header('content-disposition', contentDisposition(media.contentType, opts.fileName ?? media.filename));
  reply.header('cache-control', opts.publicCache ? 'public, max-age=86400, immutable' : 'private, max-age=86400, immutable');
  reply.header('accept-ranges', 'bytes');
  const range = parseRange(req.headers.range, media.size);
  if (range === 'unsatisfiable') {
    reply.header('content-range', `bytes */${media.size}`);
    throw new MatrixError('M_UNKNOWN', 416, 'Requested range not satisfiable');
  }
  let stream: Readable;
  try {
    stream = await opened(ctx.media.open(media.sha256, range));
  } catch {
    throw errors.notFound('Media content is missing');
  }
  if (range) {
    reply.code(206);
    reply.header('content-range', `bytes ${range.start}-${range.end}/${media.size}`);
    reply.header('content-length', String(range.end - range.start + 1));
  } else {
    reply.header('content-length', String(media.size));
  }
  if (req.method === 'HEAD') {
    stream.destroy();
    return reply.send();
  }
  return reply.send(stream);
}

async function sendThumbnail(
  ctx: AppContext,
  reply: FastifyReply,
  serverName: string,
  mediaId: string,
  q: { width: number; height: number; method?: ThumbnailMethod; animated?: boolean; timeout_ms?: number; allow_remote?: boolean },
  unauthenticated: boolean,
): Promise<FastifyReply> {
  reply.headers(MEDIA_SECURITY_HEADERS);
  const thumb = await ctx.media.thumbnail(serverName, mediaId, {
    width: q.width,
    height: q.height,
    method: q.method ?? 'scale',
    animated: q.animated === true,
    timeoutMs: q.timeout_ms,
    allowRemote: q.allow_remote !== false,
    unauthenticated,
  });
  let stream: Readable;
  try {
    stream = await opened(ctx.media.open(thumb.sha256));
  } catch {
    throw errors.notFound('Thumbnail content is missing');
  }
  const ext = thumb.contentType.split('/')[1] ?? 'bin';
  reply.header('content-type', thumb.contentType);
  reply.header('content-disposition', contentDisposition(thumb.contentType, `thumbnail.${ext}`, true));
  reply.header('cache-control', unauthenticated ? 'public, max-age=86400, immutable' : 'private, max-age=86400, immutable');
  reply.header('content-length', String(thumb.size));
  return reply.send(stream);
}

function declaredLength(req: FastifyRequest): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : undefined;
}

function uploadBody(req: FastifyRequest): Readable | undefined {
  const b = req.body as unknown;
  return b !== null && typeof b === 'object' && typeof (b as Readable).pipe === 'function' ? (b as Readable) : undefined;
}

/** An M_TOO_LARGE answer closes the connection: the rest of the body is not read. */
async function closingOnTooLarge<T>(reply: FastifyReply, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof MatrixError && err.status === 413) reply.header('connection', 'close');
    throw err;
  }
}

export function registerMediaApi(app: HttpApp, ctx: AppContext): void {
  const config = async (req: FastifyRequest) => {
    await requireUser(ctx, req);
    return { 'm.upload.size': ctx.media.maxUploadSize };
  };
  const preview = async (req: FastifyRequest<{ Querystring: { url: string; ts?: number } }>) => {
    const user = await requireUser(ctx, req);
    return ctx.urlPreviews.preview(req.query.url, user.userId);
  };

  // Authenticated (v1.11) endpoints.
  app.get(`${AUTHED}/config`, config);
  app.get(`${AUTHED}/preview_url`, { schema: { querystring: PreviewQuery } }, preview);
  const authedDownload = async (
    req: FastifyRequest<{ Params: { serverName: string; mediaId: string; fileName?: string }; Querystring: { timeout_ms?: number } }>,
    reply: FastifyReply,
  ) => {
    await requireUser(ctx, req);
    const media = await ctx.media.getMedia(req.params.serverName, req.params.mediaId, { timeoutMs: req.query.timeout_ms, allowRemote: true });
    return sendMedia(ctx, req, reply, media, { fileName: req.params.fileName, publicCache: false });
  };
  app.get(`${AUTHED}/download/:serverName/:mediaId`, { schema: { params: MediaParams, querystring: DownloadQuery } }, authedDownload);
  app.get(`${AUTHED}/download/:serverName/:mediaId/:fileName`, { schema: { params: MediaFileParams, querystring: DownloadQuery } }, authedDownload);
  app.get(
    `${AUTHED}/thumbnail/:serverName/:mediaId`,
    { schema: { params: MediaParams, querystring: ThumbnailQuery } },
    async (req, reply) => {
      await requireUser(ctx, req);
      return sendThumbnail(ctx, reply, req.params.serverName, req.params.mediaId, { ...req.query, allow_remote: true }, false);
    },
  );

  registerLegacyDownloads(app, ctx);

  for (const prefix of LEGACY) {
    app.get(`${prefix}/config`, config);
    app.get(`${prefix}/preview_url`, { schema: { querystring: PreviewQuery } }, preview);
  }
  app.post('/_matrix/media/v1/create', async (req) => {
    const user = await requireUser(ctx, req);
    return ctx.media.create(user.userId);
  });
  app.post('/_matrix/media/v3/create', async (req) => {
    const user = await requireUser(ctx, req);
    return ctx.media.create(user.userId);
  });

  // Uploads read the raw body as a stream, bounded by media.max_upload_size (not the JSON limit).
  app.register(async (instance) => {
    const uploads = instance as unknown as HttpApp;
    uploads.removeAllContentTypeParsers();
    uploads.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    for (const prefix of LEGACY) {
      uploads.post(
        `${prefix}/upload`,
        { bodyLimit: ctx.media.maxUploadSize, schema: { querystring: Type.Object({ filename: Type.Optional(Type.String()) }) } },
        async (req, reply) => {
          const user = await requireUser(ctx, req);
          const contentUri = await closingOnTooLarge(reply, () =>
            ctx.media.upload(user.userId, {
              contentType: req.headers['content-type'],
              filename: req.query.filename,
              body: uploadBody(req),
              declaredLength: declaredLength(req),
            }),
          );
          return { content_uri: contentUri };
        },
      );
      uploads.put(
        `${prefix}/upload/:serverName/:mediaId`,
        { bodyLimit: ctx.media.maxUploadSize, schema: { params: MediaParams, querystring: Type.Object({ filename: Type.Optional(Type.String()) }) } },
        async (req, reply) => {
          const user = await requireUser(ctx, req);
          await closingOnTooLarge(reply, () =>
            ctx.media.uploadTo(req.params.serverName, req.params.mediaId, user.userId, {
              contentType: req.headers['content-type'],
              filename: req.query.filename,
              body: uploadBody(req),
              declaredLength: declaredLength(req),
            }),
          );
          return {};
        },
      );
    }
  });

  registerMediaAdmin(app, ctx);
}

/**
 * The deprecated unauthenticated downloads and thumbnails. Media uploaded (or cached) while
 * media.freeze_unauthenticated is on answers 404 here. Also served on the federation listener,
 * for servers that predate the federation media endpoints (without fetching remote media).
 */
export function registerLegacyDownloads(app: HttpApp, ctx: AppContext, opts: { federation?: boolean } = {}): void {
  for (const prefix of LEGACY) {
    const download = async (
      req: FastifyRequest<{ Params: { serverName: string; mediaId: string; fileName?: string }; Querystring: { timeout_ms?: number; allow_remote?: boolean } }>,
      reply: FastifyReply,
    ) => {
      const media = await ctx.media.getMedia(req.params.serverName, req.params.mediaId, {
        timeoutMs: req.query.timeout_ms,
        allowRemote: !opts.federation && req.query.allow_remote !== false,
        unauthenticated: true,
      });
      return sendMedia(ctx, req, reply, media, { fileName: req.params.fileName, publicCache: true });
    };
    app.get(`${prefix}/download/:serverName/:mediaId`, { schema: { params: MediaParams, querystring: DownloadQuery } }, download);
    app.get(`${prefix}/download/:serverName/:mediaId/:fileName`, { schema: { params: MediaFileParams, querystring: DownloadQuery } }, download);
    app.get(`${prefix}/thumbnail/:serverName/:mediaId`, { schema: { params: MediaParams, querystring: ThumbnailQuery } }, async (req, reply) =>
      sendThumbnail(ctx, reply, req.params.serverName, req.params.mediaId, { ...req.query, allow_remote: !opts.federation && req.query.allow_remote !== false }, true),
    );
  }
}

/** Synapse-compatible media administration (server administrators only). */
function registerMediaAdmin(app: HttpApp, ctx: AppContext): void {
  app.delete('/_synapse/admin/v1/media/:serverName/:mediaId', { schema: { params: MediaParams } }, async (req) => {
    requireAdmin(await requireUser(ctx, req));
    const deleted = await ctx.media.delete(req.params.serverName, req.params.mediaId);
    if (!deleted) throw errors.notFound('Media not found');
    return { deleted_media: [req.params.mediaId], total: 1 };
  });
  for (const action of ['quarantine', 'unquarantine'] as const) {
    app.post(`/_synapse/admin/v1/media/${action}/:serverName/:mediaId`, { schema: { params: MediaParams } }, async (req) => {
      requireAdmin(await requireUser(ctx, req));
      if (!(await ctx.media.setQuarantined(req.params.serverName, req.params.mediaId, action === 'quarantine'))) throw errors.notFound('Media not found');
      return {};
    });
  }
  app.post(
    '/_synapse/admin/v1/purge_media_cache',
    { schema: { querystring: Type.Object({ before_ts: Type.Integer({ minimum: 0 }) }) } },
    async (req) => {
      requireAdmin(await requireUser(ctx, req));
      return { deleted: await ctx.media.purgeRemote(req.query.before_ts) };
    },
  );
}

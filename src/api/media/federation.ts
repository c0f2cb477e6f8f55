/**
 * Federation media (server-server API, v1.11): GET /_matrix/federation/v1/media/download/{mediaId}
 * and /thumbnail/{mediaId}, X-Matrix authenticated, answered as multipart/mixed — a JSON
 * metadata part, then the bytes with their Content-Type and Content-Disposition. Only this
 * server's own media is served.
 */
import { Type } from '@sinclair/typebox';
import type { FastifyReply } from 'fastify';
import type { Readable } from 'node:stream';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { contentDisposition } from '../../media/headers.js';
import { multipartBody, newBoundary } from '../../media/multipart.js';
import { federationAuth } from '../federation/index.js';
import type { HttpApp } from '../http.js';
import { registerLegacyDownloads } from './index.js';

function sendMultipart(reply: FastifyReply, part: { contentType: string; disposition: string; body: Readable; size: number }) {
  const boundary = newBoundary();
  const { stream, length } = multipartBody(
    boundary,
    {},
    { headers: { 'Content-Type': part.contentType, 'Content-Disposition': part.disposition }, body: part.body, bodyLength: part.size },
  );
  reply.header('content-type', `multipart/mixed; boundary=${boundary}`);
  if (length !== undefined) reply.header('content-length', String(length));
  return reply.send(stream);
}

async function opened(stream: Readable): Promise<Readable> {
  try {
    await new Promise<void>((resolve, reject) => {
      stream.once('ready', () => resolve());
      stream.once('error', reject);
    });
  } catch {
    throw errors.notFound('Media content is missing');
  }
  return stream;
}

export function registerFederationMediaApi(app: HttpApp, ctx: AppContext): void {
  const auth = federationAuth(ctx);
  const Params = Type.Object({ mediaId: Type.String() });

  app.get(
    '/_matrix/federation/v1/media/download/:mediaId',
    { ...auth, schema: { params: Params, querystring: Type.Object({ timeout_ms: Type.Optional(Type.Integer({ minimum: 0 })) }) } },
    async (req, reply) => {
      const media = await ctx.media.getMedia(ctx.config.server_name, req.params.mediaId, { timeoutMs: req.query.timeout_ms, allowRemote: false });
      const body = await opened(ctx.media.open(media.sha256));
      return sendMultipart(reply, {
        contentType: media.contentType,
        disposition: contentDisposition(media.contentType, media.filename),
        body,
        size: media.size,
      });
    },
  );

  app.get(
    '/_matrix/federation/v1/media/thumbnail/:mediaId',
    {
      ...auth,
      schema: {
        params: Params,
        querystring: Type.Object({
          width: Type.Integer({ minimum: 1, maximum: 100_000 }),
          height: Type.Integer({ minimum: 1, maximum: 100_000 }),
          method: Type.Optional(Type.Union([Type.Literal('crop'), Type.Literal('scale')])),
          animated: Type.Optional(Type.Boolean()),
          timeout_ms: Type.Optional(Type.Integer({ minimum: 0 })),
        }),
      },
    },
    async (req, reply) => {
      const q = req.query;
      const thumb = await ctx.media.thumbnail(ctx.config.server_name, req.params.mediaId, {
        width: q.width,
        height: q.height,
        method: q.method ?? 'scale',
        animated: q.animated === true,
        timeoutMs: q.timeout_ms,
        allowRemote: false,
      });
      const body = await opened(ctx.media.open(thumb.sha256));
      const ext = thumb.contentType.split('/')[1] ?? 'bin';
      return sendMultipart(reply, {
        contentType: thumb.contentType,
        disposition: contentDisposition(thumb.contentType, `thumbnail.${ext}`, true),
        body,
        size: thumb.size,
      });
    },
  );

  // Older servers fetch media with the legacy client endpoint on the federation port.
  registerLegacyDownloads(app, ctx, { federation: true });
}

import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { MatrixError, errors } from '../../errors.js';
import { isValidRoomId } from '../../protocol/identifiers.js';
import { requireUser, type Requester } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

const MAX_TYPE_BYTES = 255;
const MAX_CONTENT_BYTES = 64 * 1024;

/** Account-data types the server manages itself (the read-marker API sets m.fully_read). */
const SERVER_MANAGED = new Set(['m.fully_read', 'm.push_rules']);

function checkUser(me: Requester, userId: string): void {
  if (me.userId !== userId) throw errors.forbidden("You cannot access another user's account data");
}

function checkRoom(roomId: string): void {
  if (!isValidRoomId(roomId)) throw errors.invalidParam(`${roomId} is not a valid room ID`);
}

function checkWrite(type: string, body: unknown): Record<string, unknown> {
  if (Buffer.byteLength(type) > MAX_TYPE_BYTES) throw new MatrixError('M_KEY_TOO_LARGE', 400, 'Account data types are at most 255 bytes');
  if (SERVER_MANAGED.has(type)) throw new MatrixError('M_BAD_JSON', 405, `Cannot set ${type} through this API`);
  if (!isPlainObject(body)) throw errors.badJson('Account data content must be a JSON object');
  if (Buffer.byteLength(JSON.stringify(body)) > MAX_CONTENT_BYTES) throw errors.tooLarge('Account data content too large');
  return body;
}

/**
 * GET/PUT /user/{userId}/account_data/{type}, the per-room variant under
 * /user/{userId}/rooms/{roomId}/account_data/{type}, and tags (/user/{userId}/rooms/{roomId}/tags).
 */
export function registerAccountData(app: HttpApp, ctx: AppContext): void {
  const data = ctx.userData;
  const G = Type.Object({ userId: Type.String(), type: Type.String() });
  const R = Type.Object({ userId: Type.String(), roomId: Type.String(), type: Type.String() });
  const T = Type.Object({ userId: Type.String(), roomId: Type.String() });
  const TT = Type.Object({ userId: Type.String(), roomId: Type.String(), tag: Type.String() });

  for (const prefix of V3) {
    app.get(`${prefix}/user/:userId/account_data/:type`, { schema: { params: G } }, async (req) => {
      const me = await requireUser(ctx, req);
      checkUser(me, req.params.userId);
      const content = await data.getAccountData(me.userId, null, req.params.type);
      if (!content) throw errors.notFound('No account data of that type');
      return content;
    });

    app.put(`${prefix}/user/:userId/account_data/:type`, { schema: { params: G } }, async (req) => {
      const me = await requireUser(ctx, req);
      checkUser(me, req.params.userId);
      await data.setAccountData(me.userId, null, req.params.type, checkWrite(req.params.type, req.body));
      return {};
    });

    app.get(`${prefix}/user/:userId/rooms/:roomId/account_data/:type`, { schema: { params: R } }, async (req) => {
      const me = await requireUser(ctx, req);
      checkUser(me, req.params.userId);
      checkRoom(req.params.roomId);
      const content = await data.getAccountData(me.userId, req.params.roomId, req.params.type);
      if (!content) throw errors.notFound('No account data of that type for this room');
      return content;
    });

    app.put(`${prefix}/user/:userId/rooms/:roomId/account_data/:type`, { schema: { params: R } }, async (req) => {
      const me = await requireUser(ctx, req);
      checkUser(me, req.params.userId);
      checkRoom(req.params.roomId);
      await data.setAccountData(me.userId, req.params.roomId, req.params.type, checkWrite(req.params.type, req.body));
      return {};
    });

    app.get(`${prefix}/user/:userId/rooms/:roomId/tags`, { schema: { params: T } }, async (req) => {
      const me = await requireUser(ctx, req);
      checkUser(me, req.params.userId);
      checkRoom(req.params.roomId);
      return { tags: await data.getTags(me.userId, req.params.roomId) };
    });

    app.put(`${prefix}/user/:userId/rooms/:roomId/tags/:tag`, { schema: { params: TT } }, async (req) => {
      const me = await requireUser(ctx, req);
      checkUser(me, req.params.userId);
      checkRoom(req.params.roomId);
      const { tag } = req.params;
      if (Buffer.byteLength(tag) > 255) throw errors.invalidParam('Tags are at most 255 bytes');
      if (!isPlainObject(req.body)) throw errors.badJson('The body must be a JSON object');
      const order = req.body.order;
      if (order !== undefined && (typeof order !== 'number' || !Number.isFinite(order))) throw errors.badJson('order must be a number');
      await data.setTag(me.userId, req.params.roomId, tag, req.body);
      return {};
    });

    app.delete(`${prefix}/user/:userId/rooms/:roomId/tags/:tag`, { schema: { params: TT } }, async (req) => {
      const me = await requireUser(ctx, req);
      checkUser(me, req.params.userId);
      checkRoom(req.params.roomId);
      await data.removeTag(me.userId, req.params.roomId, req.params.tag);
      return {};
    });
  }
}

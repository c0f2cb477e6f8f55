import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

const Obj = Type.Object({}, { additionalProperties: true });

function version(req: { query: unknown }): string | undefined {
  const v = (req.query as { version?: unknown }).version;
  return typeof v === 'string' ? v : undefined;
}

function roomsBody(body: unknown): Record<string, Record<string, unknown>> {
  if (!isPlainObject(body) || !isPlainObject(body.rooms)) throw errors.badJson('rooms must be an object');
  const out: Record<string, Record<string, unknown>> = {};
  for (const [roomId, room] of Object.entries(body.rooms)) out[roomId] = sessionsBody(room, `rooms.${roomId}`);
  return out;
}

function sessionsBody(room: unknown, where: string): Record<string, unknown> {
  if (!isPlainObject(room) || !isPlainObject(room.sessions)) throw errors.badJson(`${where}.sessions must be an object`);
  return room.sessions;
}

/**
 * Server-side key backup: /room_keys/version (create, get, update, delete) and
 * /room_keys/keys at every granularity (all rooms, one room, one session).
 */
export function registerRoomKeys(app: HttpApp, ctx: AppContext): void {
  const backup = ctx.e2ee.backup;
  const V = Type.Object({ version: Type.String() });
  const R = Type.Object({ roomId: Type.String() });
  const RS = Type.Object({ roomId: Type.String(), sessionId: Type.String() });
  for (const prefix of V3) {
    app.post(`${prefix}/room_keys/version`, { schema: { body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      const body = req.body as Record<string, unknown>;
      return { version: await backup.create(me.userId, body.algorithm, body.auth_data) };
    });
    app.get(`${prefix}/room_keys/version`, async (req) => {
      const me = await requireUser(ctx, req);
      return backup.get(me.userId);
    });
    app.get(`${prefix}/room_keys/version/:version`, { schema: { params: V } }, async (req) => {
      const me = await requireUser(ctx, req);
      return backup.get(me.userId, req.params.version);
    });
    app.put(`${prefix}/room_keys/version/:version`, { schema: { params: V, body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      await backup.update(me.userId, req.params.version, req.body as Record<string, unknown>);
      return {};
    });
    app.delete(`${prefix}/room_keys/version/:version`, { schema: { params: V } }, async (req) => {
      const me = await requireUser(ctx, req);
      await backup.delete(me.userId, req.params.version);
      return {};
    });

    app.put(`${prefix}/room_keys/keys`, { schema: { body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      return backup.putKeys(me.userId, version(req), roomsBody(req.body));
    });
    app.put(`${prefix}/room_keys/keys/:roomId`, { schema: { params: R, body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      return backup.putKeys(me.userId, version(req), { [req.params.roomId]: sessionsBody(req.body, 'body') });
    });
    app.put(`${prefix}/room_keys/keys/:roomId/:sessionId`, { schema: { params: RS, body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      return backup.putKeys(me.userId, version(req), { [req.params.roomId]: { [req.params.sessionId]: req.body } });
    });

    app.get(`${prefix}/room_keys/keys`, async (req) => {
      const me = await requireUser(ctx, req);
      return { rooms: await backup.getKeys(me.userId, version(req)) };
    });
    app.get(`${prefix}/room_keys/keys/:roomId`, { schema: { params: R } }, async (req) => {
      const me = await requireUser(ctx, req);
      const rooms = await backup.getKeys(me.userId, version(req), req.params.roomId);
      return { sessions: rooms[req.params.roomId]?.sessions ?? {} };
    });
    app.get(`${prefix}/room_keys/keys/:roomId/:sessionId`, { schema: { params: RS } }, async (req) => {
      const me = await requireUser(ctx, req);
      const rooms = await backup.getKeys(me.userId, version(req), req.params.roomId, req.params.sessionId);
      const data = rooms[req.params.roomId]?.sessions[req.params.sessionId];
      if (!data) throw errors.notFound('No key for that session');
      return data;
    });

    app.delete(`${prefix}/room_keys/keys`, async (req) => {
      const me = await requireUser(ctx, req);
      return backup.deleteKeys(me.userId, version(req));
    });
    app.delete(`${prefix}/room_keys/keys/:roomId`, { schema: { params: R } }, async (req) => {
      const me = await requireUser(ctx, req);
      return backup.deleteKeys(me.userId, version(req), req.params.roomId);
    });
    app.delete(`${prefix}/room_keys/keys/:roomId/:sessionId`, { schema: { params: RS } }, async (req) => {
      const me = await requireUser(ctx, req);
      return backup.deleteKeys(me.userId, version(req), req.params.roomId, req.params.sessionId);
    });
  }
}

import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { isValidEventId } from '../../protocol/identifiers.js';
import type { ReceiptType } from '../../services/ephemeral/index.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

const TYPES = new Set(['m.read', 'm.read.private', 'm.fully_read']);

/** Moves the fully-read marker (room account data `m.fully_read`) to an event of the room. */
async function setFullyRead(ctx: AppContext, userId: string, roomId: string, eventId: string): Promise<void> {
  if (!isValidEventId(eventId)) throw errors.invalidParam(`${eventId} is not an event ID`);
  const ev = await ctx.eventStore.getEvent(eventId);
  if (!ev || ev.roomId !== roomId) throw errors.notFound(`Unknown event ${eventId} in ${roomId}`);
  await ctx.userData.setAccountData(userId, roomId, 'm.fully_read', { event_id: eventId });
}

/** POST /rooms/{roomId}/receipt/{receiptType}/{eventId} and POST /rooms/{roomId}/read_markers. */
export function registerReceipts(app: HttpApp, ctx: AppContext): void {
  const P = Type.Object({ roomId: Type.String(), receiptType: Type.String(), eventId: Type.String() });
  for (const prefix of V3) {
    app.post(`${prefix}/rooms/:roomId/receipt/:receiptType/:eventId`, { schema: { params: P } }, async (req) => {
      const me = await requireUser(ctx, req);
      const { roomId, receiptType, eventId } = req.params;
      if (!TYPES.has(receiptType)) throw errors.invalidParam(`Unknown receipt type ${receiptType}`);
      const body = req.body === undefined || req.body === null ? {} : req.body;
      if (!isPlainObject(body)) throw errors.badJson('The body must be a JSON object');
      const threadId = body.thread_id;
      if (threadId !== undefined) {
        if (typeof threadId !== 'string' || threadId === '') throw errors.invalidParam('thread_id field must be a non-empty string');
        if (receiptType === 'm.fully_read') throw errors.invalidParam('thread_id is not allowed for m.fully_read');
      }
      await ctx.rooms.requireJoined(me.userId, roomId);
      if (receiptType === 'm.fully_read') {
        await setFullyRead(ctx, me.userId, roomId, eventId);
      } else {
        if (!isValidEventId(eventId)) throw errors.invalidParam(`${eventId} is not an event ID`);
        await ctx.receipts.setReceipt(me.userId, roomId, receiptType as ReceiptType, eventId, threadId as string | undefined);
      }
      return {};
    });

    const RM = Type.Object({ roomId: Type.String() });
    const RB = Type.Object({
      'm.fully_read': Type.Optional(Type.String()),
      'm.read': Type.Optional(Type.String()),
      'm.read.private': Type.Optional(Type.String()),
    });
    app.post(`${prefix}/rooms/:roomId/read_markers`, { schema: { params: RM, body: RB } }, async (req) => {
      const me = await requireUser(ctx, req);
      const { roomId } = req.params;
      await ctx.rooms.requireJoined(me.userId, roomId);
      const b = req.body;
      for (const id of [b['m.fully_read'], b['m.read'], b['m.read.private']]) {
        if (id !== undefined && !isValidEventId(id)) throw errors.invalidParam(`${id} is not an event ID`);
      }
      if (b['m.read'] !== undefined) await ctx.receipts.setReceipt(me.userId, roomId, 'm.read', b['m.read']);
      if (b['m.read.private'] !== undefined) await ctx.receipts.setReceipt(me.userId, roomId, 'm.read.private', b['m.read.private']);
      if (b['m.fully_read'] !== undefined) await setFullyRead(ctx, me.userId, roomId, b['m.fully_read']);
      return {};
    });
  }
}

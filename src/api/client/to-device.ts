import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { MatrixError, errors } from '../../errors.js';
import { isValidUserId } from '../../protocol/identifiers.js';
import type { JsonObject } from '../../protocol/json.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

/** Largest content of one to-device message, in bytes of JSON. */
const MAX_MESSAGE_BYTES = 64 * 1024;
const MAX_TYPE_BYTES = 255;

/** PUT /sendToDevice/{eventType}/{txnId} */
export function registerToDevice(app: HttpApp, ctx: AppContext): void {
  const Params = Type.Object({ eventType: Type.String(), txnId: Type.String() });
  for (const prefix of V3) {
    app.put(`${prefix}/sendToDevice/:eventType/:txnId`, { schema: { params: Params, body: Type.Object({}, { additionalProperties: true }) } }, async (req) => {
      const me = await requireUser(ctx, req);
      const { eventType, txnId } = req.params;
      if (Buffer.byteLength(eventType) > MAX_TYPE_BYTES) throw new MatrixError('M_KEY_TOO_LARGE', 400, 'Event types are at most 255 bytes');
      const body = req.body as Record<string, unknown>;
      if (!isPlainObject(body.messages)) throw errors.badJson('messages must be an object');
      const messages: Record<string, Record<string, JsonObject>> = {};
      for (const [userId, byDevice] of Object.entries(body.messages)) {
        if (!isValidUserId(userId, { historical: true })) throw errors.invalidParam(`${userId} is not a valid user ID`);
        if (!isPlainObject(byDevice)) throw errors.badJson(`messages.${userId} must map device IDs to contents`);
        for (const [deviceId, content] of Object.entries(byDevice)) {
          if (!isPlainObject(content)) throw errors.badJson(`messages.${userId}.${deviceId} must be an object`);
          if (Buffer.byteLength(JSON.stringify(content)) > MAX_MESSAGE_BYTES) throw errors.tooLarge(`A to-device message is larger than ${MAX_MESSAGE_BYTES} bytes`);
        }
        messages[userId] = byDevice as Record<string, JsonObject>;
      }
      await ctx.e2ee.toDevice.send({ sender: me.userId, senderDevice: me.deviceId, type: eventType, txnId, messages });
      return {};
    });
  }
}

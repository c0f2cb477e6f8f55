import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { isValidUserId } from '../../protocol/identifiers.js';
import { parseSyncToken } from '../../services/sync/token.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';

const Obj = Type.Object({}, { additionalProperties: true });

function userIdKey(u: string, field: string): void {
  if (!isValidUserId(u, { historical: true })) throw errors.invalidParam(`${field}: ${u} is not a valid user ID`);
}

/**
 * End-to-end encryption keys: POST /keys/upload, /keys/query, /keys/claim, GET /keys/changes,
 * POST /keys/device_signing/upload (cross-signing keys) and /keys/signatures/upload.
 */
export function registerKeys(app: HttpApp, ctx: AppContext): void {
  const keys = ctx.e2ee.keys;
  for (const prefix of V3) {
    app.post(`${prefix}/keys/upload`, { schema: { body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      return keys.upload(me.userId, me.deviceId, req.body as Record<string, unknown>);
    });

    // The device ID in the path of the old endpoint must be the requester's own.
    app.post(`${prefix}/keys/upload/:deviceId`, { schema: { body: Obj, params: Type.Object({ deviceId: Type.String() }) } }, async (req) => {
      const me = await requireUser(ctx, req);
      if (req.params.deviceId !== me.deviceId) throw errors.forbidden('You can only upload keys for your own device');
      return keys.upload(me.userId, me.deviceId, req.body as Record<string, unknown>);
    });

    app.post(`${prefix}/keys/query`, { schema: { body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      const body = req.body as Record<string, unknown>;
      if (!isPlainObject(body.device_keys)) throw errors.badJson('device_keys must be an object');
      const q: Record<string, string[]> = {};
      for (const [u, devices] of Object.entries(body.device_keys)) {
        userIdKey(u, 'device_keys');
        if (!Array.isArray(devices) || !devices.every((d) => typeof d === 'string')) throw errors.badJson(`device_keys.${u} must be a list of device IDs`);
        q[u] = devices as string[];
      }
      return keys.query(me.userId, q);
    });

    app.post(`${prefix}/keys/claim`, { schema: { body: Obj } }, async (req) => {
      await requireUser(ctx, req);
      const body = req.body as Record<string, unknown>;
      if (!isPlainObject(body.one_time_keys)) throw errors.badJson('one_time_keys must be an object');
      const q: Record<string, Record<string, string>> = {};
      for (const [u, byDevice] of Object.entries(body.one_time_keys)) {
        userIdKey(u, 'one_time_keys');
        if (!isPlainObject(byDevice) || !Object.values(byDevice).every((a) => typeof a === 'string')) {
          throw errors.badJson(`one_time_keys.${u} must map device IDs to algorithms`);
        }
        q[u] = byDevice as Record<string, string>;
      }
      return keys.claim(q);
    });

    app.get(`${prefix}/keys/changes`, async (req) => {
      const me = await requireUser(ctx, req);
      const q = req.query as { from?: string; to?: string };
      if (q.from === undefined) throw errors.missingParam('from is required');
      const from = parseSyncToken(q.from);
      const to = q.to !== undefined && q.to !== '' ? parseSyncToken(q.to) : await ctx.sync.currentPositions();
      return ctx.e2ee.deviceLists.changesBetween(me.userId, from, to);
    });

    app.post(`${prefix}/keys/device_signing/upload`, { schema: { body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      const body = req.body as Record<string, unknown>;
      // Application services replace their users' keys without user-interactive auth (spec v1.17).
      if (me.appserviceId === undefined && (await keys.crossSigningUploadNeedsAuth(me.userId, body))) {
        await ctx.accounts.requirePassword(me.userId, 'device_signing_upload', body.auth);
      }
      await keys.uploadCrossSigningKeys(me.userId, body);
      return {};
    });

    app.post(`${prefix}/keys/signatures/upload`, { schema: { body: Obj } }, async (req) => {
      const me = await requireUser(ctx, req);
      const body = req.body as Record<string, unknown>;
      for (const u of Object.keys(body)) userIdKey(u, 'body');
      return keys.uploadSignatures(me.userId, body);
    });
  }
}

import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { isPlainObject, V3 } from './paths.js';
import { gatewayUrlProblem } from '../../services/push/gateway-client.js';

const DEFAULT_NOTIFICATIONS_LIMIT = 20;
const MAX_NOTIFICATIONS_LIMIT = 100;

/**
 * GET /pushers, POST /pushers/set (the gateway URL is checked against the server's push
 * policy; delivery is src/services/push/sender.ts) and GET /notifications.
 */
export function registerPushers(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.get(`${prefix}/pushers`, async (req) => {
      const me = await requireUser(ctx, req);
      const list = await ctx.pushStore.pushers(me.userId);
      return {
        pushers: list.map((p) => ({
          pushkey: p.pushkey,
          kind: p.kind,
          app_id: p.appId,
          app_display_name: p.appDisplayName,
          device_display_name: p.deviceDisplayName,
          ...(p.profileTag !== null ? { profile_tag: p.profileTag } : {}),
          lang: p.lang,
          data: p.data,
        })),
      };
    });

    app.post(`${prefix}/pushers/set`, async (req) => {
      const me = await requireUser(ctx, req);
      const b = req.body;
      if (!isPlainObject(b)) throw errors.badJson('The body must be a JSON object');
      for (const k of ['app_id', 'pushkey']) {
        if (b[k] === undefined) throw errors.missingParam(`Missing ${k}`);
        if (typeof b[k] !== 'string') throw errors.badJson(`${k} must be a string`);
      }
      if (!('kind' in b)) throw errors.missingParam('Missing kind');
      const appId = b.app_id as string;
      const pushkey = b.pushkey as string;
      if (appId.length > 64) throw errors.invalidParam('app_id is at most 64 characters');
      if (Buffer.byteLength(pushkey) > 512) throw errors.invalidParam('pushkey is at most 512 bytes');
      if (b.kind === null) {
        await ctx.pushStore.deletePusher(me.userId, appId, pushkey);
        return {};
      }
      if (typeof b.kind !== 'string') throw errors.badJson('kind must be a string or null');
      if (b.kind !== 'http') throw errors.invalidParam(`Pushers of kind ${b.kind} are not supported`);
      for (const k of ['app_display_name', 'device_display_name', 'lang', 'data']) {
        if (b[k] === undefined) throw errors.missingParam(`Missing ${k}`);
      }
      for (const k of ['app_display_name', 'device_display_name', 'lang']) {
        if (typeof b[k] !== 'string') throw errors.badJson(`${k} must be a string`);
      }
      if (b.profile_tag !== undefined && typeof b.profile_tag !== 'string') throw errors.badJson('profile_tag must be a string');
      if (b.append !== undefined && typeof b.append !== 'boolean') throw errors.badJson('append must be a boolean');
      const data = b.data;
      if (!isPlainObject(data)) throw errors.badJson('data must be an object');
      if (typeof data.url !== 'string') throw errors.invalidParam('data.url is required for http pushers');
      const problem = gatewayUrlProblem(data.url, ctx.pushGatewayPolicy);
      if (problem) throw errors.invalidParam(problem);
      await ctx.pushStore.setPusher(
        {
          userId: me.userId,
          deviceId: me.deviceId,
          appId,
          pushkey,
          kind: b.kind,
          appDisplayName: b.app_display_name as string,
          deviceDisplayName: b.device_display_name as string,
          profileTag: (b.profile_tag as string | undefined) ?? null,
          lang: b.lang as string,
          data,
          createdTs: Date.now(),
        },
        b.append === true,
      );
      return {};
    });

    const NQ = Type.Object({
      from: Type.Optional(Type.String()),
      limit: Type.Optional(Type.Integer({ minimum: 0 })),
      only: Type.Optional(Type.String()),
    });
    app.get(`${prefix}/notifications`, { schema: { querystring: NQ } }, async (req) => {
      const me = await requireUser(ctx, req);
      const { from, only } = req.query;
      if (from !== undefined && !/^[0-9]{1,15}$/.test(from)) throw errors.invalidParam('Invalid from token');
      const limit = Math.min(MAX_NOTIFICATIONS_LIMIT, req.query.limit ?? DEFAULT_NOTIFICATIONS_LIMIT);
      await ctx.pushActions.catchUp();
      const rows = limit === 0 ? [] : await ctx.pushStore.notifications(me.userId, from === undefined ? undefined : Number(from), limit + 1, only === 'highlight');
      const page = rows.slice(0, limit);
      const stored = await ctx.eventStore.getEvents(page.map((r) => r.eventId));
      const notifications = [];
      for (const r of page) {
        const s = stored.get(r.eventId);
        if (!s) continue;
        const [event] = await ctx.formatter.format([s], { viewer: { userId: me.userId, deviceId: me.deviceId } });
        notifications.push({
          actions: r.actions,
          event,
          read: await ctx.pushActions.isRead(me.userId, r.roomId, r.threadId, r.streamOrdering),
          room_id: r.roomId,
          ts: r.ts,
        });
      }
      const next = rows.length > limit && page.length ? String(page[page.length - 1]!.streamOrdering) : undefined;
      return { notifications, ...(next ? { next_token: next } : {}) };
    });
  }
}

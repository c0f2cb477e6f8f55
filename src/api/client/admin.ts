import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import { isValidUserId, serverNameOf } from '../../protocol/identifiers.js';
import type { UserRow } from '../../storage/stores/accounts.js';
import { requireAdmin, requireUser, type Requester } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V1, V3 } from './paths.js';

const UserParams = Type.Object({ userId: Type.String() });

/**
 * GET /_matrix/client/v3/admin/whois/{userId}: a user's devices with where and when each was
 * last used, for the user themself or a server administrator (checked before any lookup, so
 * it tells others nothing about which users exist).
 *
 * Account moderation by server administrators (spec v1.18):
 * GET/PUT /_matrix/client/v1/admin/suspend/{userId} and GET/PUT /_matrix/client/v1/admin/lock/{userId}.
 * Only local, active users; an administrator cannot suspend or lock themselves or another administrator.
 */
export function registerAdmin(app: HttpApp, ctx: AppContext): void {
  /** The target user, checked: local (400 M_INVALID_PARAM), existing and active (404). */
  const target = async (me: Requester, userId: string): Promise<UserRow> => {
    requireAdmin(me);
    if (!isValidUserId(userId, { historical: true }) || serverNameOf(userId) !== ctx.config.server_name) {
      throw errors.invalidParam(`${userId} is not a user of this server`);
    }
    const row = await ctx.accounts.getUser(userId);
    if (!row || row.deactivated) throw errors.notFound('The user was not found or is deactivated');
    return row;
  };
  /** Changing the status: never one's own account nor another administrator's. */
  const changeable = (me: Requester, row: UserRow): void => {
    if (row.user_id === me.userId) throw errors.forbidden('You cannot change the status of your own account');
    if (row.is_admin) throw errors.forbidden('You cannot change the status of another administrator');
  };
  for (const prefix of V3) {
    app.get(`${prefix}/admin/whois/:userId`, { schema: { params: UserParams } }, async (req) => {
      const me = await requireUser(ctx, req);
      const { userId } = req.params;
      if (userId !== me.userId) requireAdmin(me);
      const row = serverNameOf(userId) === ctx.config.server_name ? await ctx.accounts.getUser(userId) : undefined;
      if (!row) throw errors.notFound(`${userId} is not a user of this server`);
      const devices: Record<string, { sessions: Array<{ connections: Array<{ ip?: string; last_seen?: number; user_agent?: string }> }> }> = {};
      for (const d of await ctx.accounts.listDevices(row.user_id)) {
        const seen = d.last_seen_ts !== null || d.last_seen_ip !== null;
        const connection = {
          ...(d.last_seen_ip !== null ? { ip: d.last_seen_ip } : {}),
          ...(d.last_seen_ts !== null ? { last_seen: d.last_seen_ts } : {}),
          ...(d.last_seen_user_agent !== null ? { user_agent: d.last_seen_user_agent } : {}),
        };
        devices[d.device_id] = { sessions: [{ connections: seen ? [connection] : [] }] };
      }
      return { user_id: row.user_id, devices };
    });
  }
  for (const prefix of V1) {
    app.get(`${prefix}/admin/suspend/:userId`, { schema: { params: UserParams } }, async (req) => {
      const row = await target(await requireUser(ctx, req), req.params.userId);
      return { suspended: row.suspended === 1 };
    });
    app.put(
      `${prefix}/admin/suspend/:userId`,
      { schema: { params: UserParams, body: Type.Object({ suspended: Type.Boolean() }) } },
      async (req) => {
        const me = await requireUser(ctx, req);
        const row = await target(me, req.params.userId);
        changeable(me, row);
        await ctx.accounts.setSuspended(row.user_id, req.body.suspended);
        ctx.log.info({ target: row.user_id, admin: me.userId, suspended: req.body.suspended }, 'account suspension changed');
        return { suspended: req.body.suspended };
      },
    );
    app.get(`${prefix}/admin/lock/:userId`, { schema: { params: UserParams } }, async (req) => {
      const row = await target(await requireUser(ctx, req), req.params.userId);
      return { locked: row.locked === 1 };
    });
    app.put(
      `${prefix}/admin/lock/:userId`,
      { schema: { params: UserParams, body: Type.Object({ locked: Type.Boolean() }) } },
      async (req) => {
        const me = await requireUser(ctx, req);
        const row = await target(me, req.params.userId);
        changeable(me, row);
        await ctx.accounts.setLocked(row.user_id, req.body.locked);
        ctx.log.info({ target: row.user_id, admin: me.userId, locked: req.body.locked }, 'account lock changed');
        return { locked: req.body.locked };
      },
    );
  }
}

import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { errors } from '../../errors.js';
import type { SlidingSyncBody } from '../../services/sliding-sync/index.js';
import { WAIT_OVER } from '../../services/sync/sync-service.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';

/** The unstable path of simplified sliding sync (MSC4186), as clients call it today. */
export const SLIDING_SYNC_PATH = '/_matrix/client/unstable/org.matrix.simplified_msc3575/sync';
/** The longest a request may long-poll, whatever the client asks. */
const MAX_TIMEOUT_MS = 120_000;
const MAX_LISTS = 100;
const MAX_SUBSCRIPTIONS = 100;

const Open = { additionalProperties: true } as const;
const Range = Type.Tuple([Type.Integer({ minimum: 0 }), Type.Integer({ minimum: 0 })]);
const StateElement = Type.Object({ type: Type.Optional(Type.String()), state_key: Type.Optional(Type.String()) }, Open);
/** Bounds on the sizes of request arrays, so no request costs more than a few rooms' worth. */
const MANY = { maxItems: 1000 } as const;
const FEW = { maxItems: 100 } as const;
const RequiredState = Type.Union([
  Type.Array(Type.Tuple([Type.String(), Type.String()]), MANY),
  Type.Object(
    { include: Type.Optional(Type.Array(StateElement, MANY)), exclude: Type.Optional(Type.Array(StateElement, MANY)), lazy_members: Type.Optional(Type.Boolean()) },
    Open,
  ),
]);
const RoomConfig = {
  required_state: Type.Optional(RequiredState),
  timeline_limit: Type.Optional(Type.Integer({ minimum: 0 })),
};
const RoomTypes = Type.Array(Type.Union([Type.String(), Type.Null()]), FEW);
const Filters = Type.Object(
  {
    is_dm: Type.Optional(Type.Boolean()),
    spaces: Type.Optional(Type.Array(Type.String(), FEW)),
    is_encrypted: Type.Optional(Type.Boolean()),
    is_invite: Type.Optional(Type.Boolean()),
    is_invited: Type.Optional(Type.Boolean()),
    room_types: Type.Optional(RoomTypes),
    not_room_types: Type.Optional(RoomTypes),
    tags: Type.Optional(Type.Array(Type.String(), FEW)),
    not_tags: Type.Optional(Type.Array(Type.String(), FEW)),
  },
  Open,
);
const List = Type.Object(
  {
    ...RoomConfig,
    ranges: Type.Optional(Type.Array(Range, FEW)),
    range: Type.Optional(Range),
    slow_get_all_rooms: Type.Optional(Type.Boolean()),
    filters: Type.Optional(Filters),
  },
  Open,
);
const RoomsExtension = Type.Object(
  { enabled: Type.Optional(Type.Boolean()), lists: Type.Optional(Type.Array(Type.String())), rooms: Type.Optional(Type.Array(Type.String())) },
  Open,
);
const Body = Type.Object(
  {
    conn_id: Type.Optional(Type.String({ maxLength: 255 })),
    txn_id: Type.Optional(Type.String({ maxLength: 255 })),
    pos: Type.Optional(Type.String()),
    timeout: Type.Optional(Type.Integer({ minimum: 0 })),
    lists: Type.Optional(Type.Record(Type.String(), List)),
    room_subscriptions: Type.Optional(Type.Record(Type.String(), Type.Object(RoomConfig, Open))),
    extensions: Type.Optional(
      Type.Object(
        {
          to_device: Type.Optional(
            Type.Object({ enabled: Type.Optional(Type.Boolean()), since: Type.Optional(Type.String({ pattern: '^[0-9]+$' })), limit: Type.Optional(Type.Integer({ minimum: 0 })) }, Open),
          ),
          e2ee: Type.Optional(Type.Object({ enabled: Type.Optional(Type.Boolean()) }, Open)),
          account_data: Type.Optional(RoomsExtension),
          receipts: Type.Optional(RoomsExtension),
          typing: Type.Optional(RoomsExtension),
        },
        Open,
      ),
    ),
  },
  Open,
);

/** POST …/org.matrix.simplified_msc3575/sync: simplified sliding sync. */
export function registerSlidingSync(app: HttpApp, ctx: AppContext): void {
  app.post(SLIDING_SYNC_PATH, { schema: { body: Body } }, async (req, reply) => {
    const user = await requireUser(ctx, req);
    const body = req.body as SlidingSyncBody;
    const q = req.query as { pos?: string; timeout?: string; set_presence?: string };
    const rawTimeout = q.timeout ?? (body.timeout === undefined ? undefined : String(body.timeout));
    const timeout = rawTimeout === undefined ? 0 : Number(rawTimeout);
    if (!Number.isFinite(timeout) || timeout < 0) throw errors.invalidParam('timeout must be a non-negative number of milliseconds');
    if (Object.keys(body.lists ?? {}).length > MAX_LISTS) throw errors.invalidParam(`At most ${MAX_LISTS} lists`);
    if (Object.keys(body.room_subscriptions ?? {}).length > MAX_SUBSCRIPTIONS) throw errors.invalidParam(`At most ${MAX_SUBSCRIPTIONS} room subscriptions`);
    for (const list of Object.values(body.lists ?? {})) {
      for (const [a, b] of list.ranges ?? (list.range ? [list.range] : [])) if (a > b) throw errors.invalidParam('A range must not end before it starts');
    }
    if (q.set_presence !== undefined && !['online', 'offline', 'unavailable'].includes(q.set_presence)) {
      throw errors.invalidParam('set_presence must be online, offline or unavailable');
    }
    const presence = (q.set_presence ?? 'online') as 'online' | 'offline' | 'unavailable';
    if (presence !== 'offline') {
      const current = await ctx.userData.getPresence(user.userId);
      if (current.presence !== presence) await ctx.userData.setPresence(user.userId, presence, current.status_msg ?? undefined);
    }
    const abort = new AbortController();
    const onClose = () => abort.abort(WAIT_OVER);
    // The response closing before we answer means the client went away.
    reply.raw.once('close', onClose);
    try {
      return await ctx.slidingSync.sync({
        userId: user.userId,
        deviceId: user.deviceId,
        pos: q.pos ?? body.pos,
        timeoutMs: Math.min(timeout, MAX_TIMEOUT_MS),
        body,
        signal: abort.signal,
      });
    } finally {
      reply.raw.off('close', onClose);
    }
  });
}

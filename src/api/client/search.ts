import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import type { JsonObject } from '../../protocol/json.js';
import type { RoomEventsCriteria } from '../../services/messaging/search.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

const Filter = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 0 })),
    types: Type.Optional(Type.Array(Type.String())),
    not_types: Type.Optional(Type.Array(Type.String())),
    senders: Type.Optional(Type.Array(Type.String())),
    not_senders: Type.Optional(Type.Array(Type.String())),
    rooms: Type.Optional(Type.Array(Type.String())),
    not_rooms: Type.Optional(Type.Array(Type.String())),
    contains_url: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: true },
);

const RoomEvents = Type.Object({
  search_term: Type.String(),
  keys: Type.Optional(Type.Array(Type.String())),
  filter: Type.Optional(Filter),
  order_by: Type.Optional(Type.Union([Type.Literal('rank'), Type.Literal('recent')])),
  event_context: Type.Optional(
    Type.Object({
      before_limit: Type.Optional(Type.Integer({ minimum: 0 })),
      after_limit: Type.Optional(Type.Integer({ minimum: 0 })),
      include_profile: Type.Optional(Type.Boolean()),
    }),
  ),
  include_state: Type.Optional(Type.Boolean()),
  groupings: Type.Optional(Type.Object({ group_by: Type.Optional(Type.Array(Type.Object({ key: Type.Optional(Type.String()) }))) })),
});

const Body = Type.Object({ search_categories: Type.Object({ room_events: Type.Optional(RoomEvents) }) });

/** POST /search: server-side search of room events. */
export function registerSearch(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.post(`${prefix}/search`, { schema: { body: Body } }, async (req) => {
      const user = await requireUser(ctx, req);
      const { next_batch } = req.query as { next_batch?: string };
      const body = req.body as { search_categories: { room_events?: RoomEventsCriteria } };
      const categories: JsonObject = {};
      if (body.search_categories.room_events) {
        categories['room_events'] = await ctx.search.searchRoomEvents(user.userId, body.search_categories.room_events, next_batch);
      }
      return { search_categories: categories };
    });
  }
}

import type { JsonObject } from '../../protocol/json.js';
import { rulesetToJson } from '../../protocol/push-rules.js';
import type { EventStore } from '../../storage/stores/events.js';
import type { UserDataService } from '../accounts/user-data.js';
import type { PushActions } from '../push/push-actions.js';
import type { PushRulesService } from '../push/push-rules.js';
import { eventMatches, roomAllowed } from '../sync/filter.js';
import { streamMoved, type SyncExtension, type SyncWindow } from '../sync/sync-service.js';
import { receiptEvents, type ReceiptService } from './receipts.js';
import type { ReceiptRow } from '../../storage/stores/receipts.js';
import type { TypingService } from './typing.js';

const PAGE = 1000;

/** Global account data (`account_data`) and per-room account data (incl. `m.tag`) of joined and just-left rooms. */
export function accountDataExtension(userData: UserDataService, pushRules: PushRulesService): SyncExtension {
  return {
    stream: 'account_data',
    currentPosition: () => userData.store.maxAccountDataPosition(),
    async collect(w: SyncWindow): Promise<boolean> {
      const userId = w.req.userId;
      const to = w.to.account_data;
      // Nothing of this user's was written after `since`: nothing to read.
      if (w.since && (!streamMoved(w, 'account_data') || w.activity.accountData.last(userId) <= w.since.account_data)) return false;
      const joined = new Set(w.joinedRoomIds);
      const filter = w.req.filter;
      let from = w.since?.account_data ?? 0;
      let changed = false;
      let sawPushRules = false;
      const latest = new Map<string, { roomId: string | null; type: string; content: Record<string, unknown> }>();
      for (;;) {
        const rows = await userData.store.accountDataSince(userId, from, PAGE);
        for (const r of rows) if (r.stream_id <= to) latest.set(`${r.room_id ?? ''}\u0000${r.type}`, { roomId: r.room_id, type: r.type, content: r.content });
        if (rows.length < PAGE || rows[rows.length - 1]!.stream_id >= to) break;
        from = rows[rows.length - 1]!.stream_id;
      }
      for (const r of latest.values()) {
        let content = r.content as JsonObject;
        if (r.roomId === null) {
          // Push rules are shown merged with the current server-default rules.
          if (r.type === 'm.push_rules') {
            sawPushRules = true;
            content = rulesetToJson(await pushRules.get(userId));
          }
          if (!eventMatches(filter.account_data, { type: r.type })) continue;
          w.response.account_data.events.push({ type: r.type, content });
          changed = true;
        } else if (joined.has(r.roomId)) {
          if (!roomAllowed(filter, r.roomId) || !eventMatches(filter.room?.account_data, { type: r.type, room_id: r.roomId })) continue;
          w.joinedRoom(r.roomId).account_data.events.push({ type: r.type, content });
          changed = true;
        } else {
          const left = w.response.rooms.leave[r.roomId];
          if (left && eventMatches(filter.room?.account_data, { type: r.type, room_id: r.roomId })) left.account_data.events.push({ type: r.type, content });
        }
      }
      // A user who never changed a push rule still gets the default ruleset on initial sync.
      if (!w.since && !sawPushRules && eventMatches(filter.account_data, { type: 'm.push_rules' })) {
        w.response.account_data.events.push({ type: 'm.push_rules', content: rulesetToJson(await pushRules.get(userId)) });
      }
      return changed;
    },
  };
}

/** Presence of the user and of everyone sharing a joined room with them. */
export function presenceExtension(userData: UserDataService, events: EventStore): SyncExtension {
  return {
    stream: 'presence',
    currentPosition: () => userData.store.maxPresencePosition(),
    async collect(w: SyncWindow): Promise<boolean> {
      const f = w.req.filter.presence;
      if (f?.limit === 0 || (f?.types && f.types.length === 0)) return false;
      if (!streamMoved(w, 'presence')) return false;
      const users = new Set<string>([w.req.userId]);
      for (const roomId of w.joinedRoomIds) for (const u of await events.members(roomId, ['join'])) users.add(u);
      const list = [...users];
      const since = w.since?.presence ?? 0;
      let changed = false;
      for (let i = 0; i < list.length; i += 500) {
        for (const row of await userData.store.presenceSince(list.slice(i, i + 500), since)) {
          if (row.stream_id > w.to.presence) continue;
          if (!eventMatches(f, { type: 'm.presence', sender: row.user_id })) continue;
          const status = await userData.getPresence(row.user_id);
          w.response.presence.events.push({ type: 'm.presence', sender: row.user_id, content: status as unknown as JsonObject });
          changed = true;
        }
      }
      return changed;
    },
  };
}

/** `m.typing` in the ephemeral events of joined rooms whose typing list changed. */
export function typingExtension(typing: TypingService): SyncExtension {
  return {
    stream: 'typing',
    currentPosition: () => typing.position(),
    async collect(w: SyncWindow): Promise<boolean> {
      // No typing list changed in the window.
      if (w.since && !streamMoved(w, 'typing')) return false;
      let changed = false;
      for (const roomId of w.joinedRoomIds) {
        if (w.since && !typing.changedBetween(roomId, w.since.typing, w.to.typing)) continue;
        const users = typing.typing(roomId);
        if (!w.since && users.length === 0) continue;
        if (!eventMatches(w.req.filter.room?.ephemeral, { type: 'm.typing', room_id: roomId })) continue;
        w.joinedRoom(roomId).ephemeral.events.push({ type: 'm.typing', content: { user_ids: users } });
        changed = true;
      }
      return changed;
    },
  };
}

/**
 * `m.receipt` in the ephemeral events of joined rooms (private receipts only to their owner),
 * then the unread notification counts of every joined room in the response. Registered last,
 * so rooms added by the other extensions get their counts too.
 */
export function receiptsExtension(receipts: ReceiptService, pushActions: PushActions): SyncExtension {
  return {
    stream: 'receipts',
    currentPosition: () => receipts.position(),
    async collect(w: SyncWindow): Promise<boolean> {
      const userId = w.req.userId;
      let rows: ReceiptRow[] = [];
      if (!w.since) rows = await receipts.store.forRooms(w.joinedRoomIds, w.to.receipts);
      else if (streamMoved(w, 'receipts')) {
        const joined = new Set(w.joinedRoomIds);
        rows = (await receipts.store.between(w.since.receipts, w.to.receipts)).filter((r) => joined.has(r.roomId));
      }
      let changed = false;
      for (const [roomId, content] of rows.length ? receiptEvents(rows, userId) : []) {
        if (!eventMatches(w.req.filter.room?.ephemeral, { type: 'm.receipt', room_id: roomId })) continue;
        w.joinedRoom(roomId).ephemeral.events.push({ type: 'm.receipt', content: content as JsonObject });
        changed = true;
      }

      await pushActions.catchUp(w.to.events);
      const byThread = w.req.filter.room?.timeline?.unread_thread_notifications === true;
      for (const [roomId, room] of Object.entries(w.response.rooms.join)) {
        const c = await pushActions.counts(userId, roomId, w.to.events, byThread);
        room.unread_notifications = { ...c.room };
        if (byThread) room.unread_thread_notifications = (c.threads ?? {}) as unknown as Record<string, JsonObject>;
      }
      return changed;
    },
  };
}

import { sql } from 'kysely';
import type { Database, Tx } from '../db.js';
import { prepared, type Prepared } from '../prepared.js';

export interface PushActionRow {
  userId: string;
  eventId: string;
  roomId: string;
  streamOrdering: number;
  threadId: string;
  notif: boolean;
  highlight: boolean;
  own: boolean;
  actions: readonly unknown[];
  /** `actions` as JSON, when known (rows sharing actions share it). */
  actionsJson?: string;
  ts: number;
}

export interface ThreadCounts {
  threadId: string;
  notifications: number;
  highlights: number;
}

export interface PusherRow {
  userId: string;
  deviceId: string | null;
  appId: string;
  pushkey: string;
  kind: string;
  appDisplayName: string;
  deviceDisplayName: string;
  profileTag: string | null;
  lang: string;
  data: Record<string, unknown>;
  createdTs: number;
}

/** A pusher with its delivery state (migration 0012). */
export interface PusherState extends PusherRow {
  /** Stream position of the last notification handled (sent, skipped or given up on). */
  position: number;
  /** When delivery of the next notification first failed; null while delivery works. */
  failingSince: number | null;
}

export interface PusherKey {
  userId: string;
  appId: string;
  pushkey: string;
}

type PusherDbRow = {
  user_id: string;
  device_id: string | null;
  app_id: string;
  pushkey: string;
  kind: string;
  app_display_name: string;
  device_display_name: string;
  profile_tag: string | null;
  lang: string;
  data: string;
  created_ts: number;
  push_position: number;
  failing_since: number | null;
};

function pusherFromRow(r: PusherDbRow): PusherState {
  return {
    userId: r.user_id,
    deviceId: r.device_id,
    appId: r.app_id,
    pushkey: r.pushkey,
    kind: r.kind,
    appDisplayName: r.app_display_name,
    deviceDisplayName: r.device_display_name,
    profileTag: r.profile_tag,
    lang: r.lang,
    data: JSON.parse(r.data) as Record<string, unknown>,
    createdTs: Number(r.created_ts),
    position: Number(r.push_position),
    failingSince: r.failing_since === null ? null : Number(r.failing_since),
  };
}

const INSERT_COLUMNS = ['user_id', 'event_id', 'room_id', 'stream_ordering', 'thread_id', 'notif', 'highlight', 'own', 'actions', 'ts'] as const;
/** The most rows per insert statement (10 parameters each); statements of 1, 2, 4 … rows are used. */
const INSERT_CHUNK = 128;
/**
 * `notif = 1 and own = 0` written as literals, not parameters: the index for /notifications and
 * pushers only holds such rows, and the planners use it only when the query says so literally.
 */
const NOTIF = sql.lit(1);
const NOT_OWN = sql.lit(0);

// Run with every local event's write.
const setProgressQuery = prepared(1, (db, position: number) =>
  db.updateTable('push_actions_progress').set({ position }).where('name', '=', 'events').where('position', '<', position),
);

/** The table's key order (user, room, stream position); UTF-16 order, close enough to SQLite's. */
function byKey(a: PushActionRow, b: PushActionRow): number {
  if (a.userId !== b.userId) return a.userId < b.userId ? -1 : 1;
  if (a.roomId !== b.roomId) return a.roomId < b.roomId ? -1 : 1;
  return a.streamOrdering - b.streamOrdering;
}

/** Evaluated push actions (the source of notification counts) and pushers. */
export class PushStore {
  /** The insert of n rows, prepared once per n. */
  private readonly inserts = new Map<number, Prepared<unknown[], unknown>>();
  /**
   * Users who have (or may have: removals are not tracked) a pusher, once read; every pusher
   * is added here, so users outside it need no query when their notifications commit.
   */
  private readonly pusherUsers = new Set<string>();
  private pusherUsersLoaded: Promise<void> | undefined;

  constructor(private readonly database: Database) {}

  // ---- evaluation progress

  async progress(): Promise<number> {
    const row = await this.database.db.selectFrom('push_actions_progress').select('position').where('name', '=', 'events').executeTakeFirst();
    return Number(row?.position ?? 0);
  }

  /** Moves the evaluation position forward (never back). */
  async setProgress(tx: Tx, position: number): Promise<void> {
    await setProgressQuery.run(tx.db, position);
  }

  /** Event IDs of non-outlier events in (from, to] in stream order. */
  async eventsBetween(from: number, to: number, limit: number): Promise<Array<{ eventId: string; streamOrdering: number }>> {
    const rows = await this.database.db
      .selectFrom('events')
      .select(['event_id', 'stream_ordering'])
      .where('stream_ordering', '>', from)
      .where('stream_ordering', '<=', to)
      .where('outlier', '=', 0)
      .where('rejected', 'is', null)
      .orderBy('stream_ordering')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ eventId: r.event_id, streamOrdering: Number(r.stream_ordering) }));
  }

  /**
   * Inserts rows (a row already stored for the user and event is kept). The insert of n rows is
   * built once: building it through the query builder for every event cost about as much as
   * SQLite's work to run it. Rows are written in the order of the table's key (user, room,
   * position): a batch's rows for one user then land next to each other, which halves what
   * SQLite spends on them compared with event order (every event touches each member's part).
   */
  async insertActions(tx: Tx, rows: readonly PushActionRow[]): Promise<void> {
    const sorted = rows.length > 1 ? [...rows].sort(byKey) : rows;
    let done = 0;
    while (done < sorted.length) {
      // The largest power of two that fits (so few distinct statements), at most INSERT_CHUNK.
      let n = INSERT_CHUNK;
      while (n > sorted.length - done) n >>= 1;
      const params: unknown[] = new Array(n * INSERT_COLUMNS.length);
      let p = 0;
      for (let i = done; i < done + n; i++) {
        const r = sorted[i]!;
        params[p++] = r.userId;
        params[p++] = r.eventId;
        params[p++] = r.roomId;
        params[p++] = r.streamOrdering;
        params[p++] = r.threadId;
        params[p++] = r.notif ? 1 : 0;
        params[p++] = r.highlight ? 1 : 0;
        params[p++] = r.own ? 1 : 0;
        params[p++] = r.actionsJson ?? JSON.stringify(r.actions);
        params[p++] = r.ts;
      }
      await this.insertOf(n).run(tx.db, ...params);
      done += n;
    }
  }

  private insertOf(n: number): Prepared<unknown[], unknown> {
    let q = this.inserts.get(n);
    if (!q) {
      const width = INSERT_COLUMNS.length;
      q = prepared(n * width, (db, ...v: unknown[]) =>
        db
          .insertInto('event_push_actions')
          .values(Array.from({ length: n }, (_, r) => Object.fromEntries(INSERT_COLUMNS.map((c, i) => [c, v[r * width + i]]))) as never)
          // An event has one stream position, so the key (user, room, position) is the row's (user, event).
          .onConflict((oc) => oc.columns(['user_id', 'room_id', 'stream_ordering']).doNothing()),
      );
      this.inserts.set(n, q);
    }
    return q;
  }

  // ---- counts

  /**
   * The stream position of the user's latest own event per thread in a room, for threads with
   * one after stream position `after` (the rows are read from there on, so callers that only
   * care about marks past a receipt do not read the room's whole history).
   */
  async ownMarks(userId: string, roomId: string, after = 0): Promise<Map<string, number>> {
    const rows = await this.database.db
      .selectFrom('event_push_actions')
      .select(['thread_id', (eb) => eb.fn.max('stream_ordering').as('m')])
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId)
      .where('stream_ordering', '>', after)
      .where('own', '=', 1)
      .groupBy('thread_id')
      .execute();
    return new Map(rows.map((r) => [r.thread_id, Number(r.m)]));
  }

  /** Whether the user sent an event in the thread at or after stream position `from`. */
  async hasOwnEventFrom(userId: string, roomId: string, threadId: string, from: number): Promise<boolean> {
    const row = await this.database.db
      .selectFrom('event_push_actions')
      .select('stream_ordering')
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId)
      .where('stream_ordering', '>=', from)
      .where('own', '=', 1)
      .where('thread_id', '=', threadId)
      .limit(1)
      .executeTakeFirst();
    return row !== undefined;
  }

  /**
   * Notifying events per thread in (after, to]; `threadId` limits it to one thread.
   */
  async countsAfter(userId: string, roomId: string, after: number, to: number, threadId?: string): Promise<ThreadCounts[]> {
    let q = this.database.db
      .selectFrom('event_push_actions')
      .select(['thread_id', (eb) => eb.fn.countAll().as('n'), (eb) => eb.fn.sum('highlight').as('h')])
      .where('user_id', '=', userId)
      .where('room_id', '=', roomId)
      .where('own', '=', NOT_OWN)
      .where('notif', '=', NOTIF)
      .where('stream_ordering', '>', after)
      .where('stream_ordering', '<=', to);
    if (threadId !== undefined) q = q.where('thread_id', '=', threadId);
    const rows = await q.groupBy('thread_id').execute();
    return rows.map((r) => ({ threadId: r.thread_id, notifications: Number(r.n), highlights: Number(r.h ?? 0) }));
  }

  /** The user's notifications, newest first, before stream position `before`. */
  async notifications(userId: string, before: number | undefined, limit: number, onlyHighlight: boolean): Promise<PushActionRow[]> {
    let q = this.database.db
      .selectFrom('event_push_actions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('notif', '=', NOTIF)
      .where('own', '=', NOT_OWN);
    if (before !== undefined) q = q.where('stream_ordering', '<', before);
    if (onlyHighlight) q = q.where('highlight', '=', 1);
    const rows = await q.orderBy('stream_ordering', 'desc').limit(limit).execute();
    return rows.map((r) => ({
      userId: r.user_id,
      eventId: r.event_id,
      roomId: r.room_id,
      streamOrdering: Number(r.stream_ordering),
      threadId: r.thread_id,
      notif: !!r.notif,
      highlight: !!r.highlight,
      own: !!r.own,
      actions: JSON.parse(r.actions) as unknown[],
      ts: Number(r.ts),
    }));
  }

  // ---- pushers

  async pushers(userId: string): Promise<PusherState[]> {
    const rows = await this.database.db.selectFrom('pushers').selectAll().where('user_id', '=', userId).orderBy('id').execute();
    return rows.map(pusherFromRow);
  }

  async pusher(k: PusherKey): Promise<PusherState | undefined> {
    const r = await this.database.db
      .selectFrom('pushers')
      .selectAll()
      .where('user_id', '=', k.userId)
      .where('app_id', '=', k.appId)
      .where('pushkey', '=', k.pushkey)
      .executeTakeFirst();
    return r ? pusherFromRow(r) : undefined;
  }

  /** Every pusher of these users (all pushers when `userIds` is undefined). */
  async pushersOf(userIds?: readonly string[]): Promise<PusherState[]> {
    if (userIds) {
      // Added to before it is read, so a pusher written while it loads is not missed.
      await (this.pusherUsersLoaded ??= this.database.db
        .selectFrom('pushers')
        .select('user_id')
        .distinct()
        .execute()
        .then(
          (rows) => {
            for (const r of rows) this.pusherUsers.add(r.user_id);
          },
          (err: unknown) => {
            this.pusherUsersLoaded = undefined;
            throw err;
          },
        ));
      userIds = userIds.filter((u) => this.pusherUsers.has(u));
    }
    if (userIds && userIds.length === 0) return [];
    let q = this.database.db.selectFrom('pushers').selectAll();
    if (userIds) q = q.where('user_id', 'in', userIds);
    return (await q.orderBy('id').execute()).map(pusherFromRow);
  }

  /** The user's notifications (not their own events) after stream position `after`, oldest first. */
  async notificationsAfter(userId: string, after: number, limit: number): Promise<PushActionRow[]> {
    const rows = await this.database.db
      .selectFrom('event_push_actions')
      .selectAll()
      .where('user_id', '=', userId)
      .where('notif', '=', NOTIF)
      .where('own', '=', NOT_OWN)
      .where('stream_ordering', '>', after)
      .orderBy('stream_ordering')
      .limit(limit)
      .execute();
    return rows.map((r) => ({
      userId: r.user_id,
      eventId: r.event_id,
      roomId: r.room_id,
      streamOrdering: Number(r.stream_ordering),
      threadId: r.thread_id,
      notif: !!r.notif,
      highlight: !!r.highlight,
      own: !!r.own,
      actions: JSON.parse(r.actions) as unknown[],
      ts: Number(r.ts),
    }));
  }

  /** Records a pusher's progress (never moving it back) and its failure state. */
  async advancePusher(k: PusherKey, position: number, failingSince: number | null): Promise<void> {
    await this.database.db
      .updateTable('pushers')
      .set({ push_position: position, failing_since: failingSince })
      .where('user_id', '=', k.userId)
      .where('app_id', '=', k.appId)
      .where('pushkey', '=', k.pushkey)
      .where('push_position', '<', position)
      .execute();
  }

  async setPusherFailing(k: PusherKey, since: number | null): Promise<void> {
    await this.database.db
      .updateTable('pushers')
      .set({ failing_since: since })
      .where('user_id', '=', k.userId)
      .where('app_id', '=', k.appId)
      .where('pushkey', '=', k.pushkey)
      .execute();
  }

  /**
   * Adds or replaces the user's pusher for (app_id, pushkey); unless `append`, removes other users' pushers for it.
   * A replaced pusher keeps its delivery position; a new one starts at the current evaluation
   * position (events evaluated before it existed are not pushed).
   */
  async setPusher(p: PusherRow, append: boolean): Promise<void> {
    this.pusherUsers.add(p.userId);
    await this.database.transaction(async (tx) => {
      const old = await tx.db
        .selectFrom('pushers')
        .select(['push_position', 'failing_since'])
        .where('user_id', '=', p.userId)
        .where('app_id', '=', p.appId)
        .where('pushkey', '=', p.pushkey)
        .executeTakeFirst();
      const progress = await tx.db.selectFrom('push_actions_progress').select('position').where('name', '=', 'events').executeTakeFirst();
      let del = tx.db.deleteFrom('pushers').where('app_id', '=', p.appId).where('pushkey', '=', p.pushkey);
      if (append) del = del.where('user_id', '=', p.userId);
      await del.execute();
      await tx.db
        .insertInto('pushers')
        .values({
          user_id: p.userId,
          device_id: p.deviceId,
          app_id: p.appId,
          pushkey: p.pushkey,
          kind: p.kind,
          app_display_name: p.appDisplayName,
          device_display_name: p.deviceDisplayName,
          profile_tag: p.profileTag,
          lang: p.lang,
          data: JSON.stringify(p.data),
          created_ts: p.createdTs,
          push_position: old ? Number(old.push_position) : Number(progress?.position ?? 0),
          failing_since: old?.failing_since ?? null,
        })
        .execute();
    });
  }

  /** Removes the pushers set from these devices (device deleted or logged out). */
  async deletePushersOfDevices(userId: string, deviceIds: readonly string[]): Promise<void> {
    if (deviceIds.length === 0) return;
    await this.database.db.deleteFrom('pushers').where('user_id', '=', userId).where('device_id', 'in', [...deviceIds]).execute();
  }

  /** Removes every pusher of a user (account deactivated). */
  async deletePushersOfUser(userId: string): Promise<void> {
    await this.database.db.deleteFrom('pushers').where('user_id', '=', userId).execute();
  }

  async deletePusher(userId: string, appId: string, pushkey: string): Promise<void> {
    await this.database.db.deleteFrom('pushers').where('user_id', '=', userId).where('app_id', '=', appId).where('pushkey', '=', pushkey).execute();
  }
}

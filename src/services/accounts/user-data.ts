import { errors } from '../../errors.js';
import type { Database } from '../../storage/db.js';
import type { UserDataStore } from '../../storage/stores/user-data.js';
import type { Streams } from '../../streams/streams.js';

export const PRESENCE_STATES = ['online', 'offline', 'unavailable'] as const;
export type PresenceState = (typeof PRESENCE_STATES)[number];

export interface PresenceStatus {
  presence: PresenceState;
  last_active_ago?: number;
  status_msg?: string;
  currently_active?: boolean;
}

/** How recently an online user must have been active to count as "currently active". */
const CURRENTLY_ACTIVE_MS = 5 * 60 * 1000;
const MAX_FILTER_BYTES = 64 * 1024;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkStringArray(v: unknown, where: string): void {
  if (v === undefined) return;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw errors.badJson(`${where} must be an array of strings`);
}

function checkEventFilter(v: unknown, where: string): void {
  if (v === undefined) return;
  if (!isObject(v)) throw errors.badJson(`${where} must be an object`);
  for (const k of ['types', 'not_types', 'senders', 'not_senders', 'rooms', 'not_rooms']) checkStringArray(v[k], `${where}.${k}`);
  if (v.limit !== undefined && (!Number.isInteger(v.limit) || (v.limit as number) < 0)) throw errors.badJson(`${where}.limit must be a non-negative integer`);
  for (const k of ['contains_url', 'lazy_load_members', 'include_redundant_members', 'unread_thread_notifications']) {
    if (v[k] !== undefined && typeof v[k] !== 'boolean') throw errors.badJson(`${where}.${k} must be a boolean`);
  }
}

/** Checks the structure of a filter (types of the fields the spec defines). */
export function validateFilter(filter: unknown): asserts filter is Record<string, unknown> {
  if (!isObject(filter)) throw errors.badJson('The filter must be an object');
  checkStringArray(filter.event_fields, 'event_fields');
  if (filter.event_format !== undefined && filter.event_format !== 'client' && filter.event_format !== 'federation') {
    throw errors.badJson('event_format must be "client" or "federation"');
  }
  checkEventFilter(filter.presence, 'presence');
  checkEventFilter(filter.account_data, 'account_data');
  if (filter.room !== undefined) {
    const room = filter.room;
    if (!isObject(room)) throw errors.badJson('room must be an object');
    checkStringArray(room.rooms, 'room.rooms');
    checkStringArray(room.not_rooms, 'room.not_rooms');
    for (const k of ['include_leave']) if (room[k] !== undefined && typeof room[k] !== 'boolean') throw errors.badJson(`room.${k} must be a boolean`);
    for (const k of ['ephemeral', 'state', 'timeline', 'account_data']) checkEventFilter(room[k], `room.${k}`);
  }
}

/** Filters, account data (incl. room tags) and presence of local users. */
export class UserDataService {
  constructor(
    private readonly database: Database,
    readonly store: UserDataStore,
    private readonly streams: Streams,
    private readonly now: () => number = Date.now,
  ) {}

  // ---- filters

  async createFilter(userId: string, filter: unknown): Promise<string> {
    validateFilter(filter);
    const json = JSON.stringify(filter);
    if (Buffer.byteLength(json) > MAX_FILTER_BYTES) throw errors.tooLarge('Filter too large');
    return String(await this.store.insertFilter(userId, json));
  }

  /** A user's stored filter, or undefined (also for another user's filter ID). */
  async getFilter(userId: string, filterId: string): Promise<Record<string, unknown> | undefined> {
    if (!/^[0-9]{1,15}$/.test(filterId)) return undefined;
    const json = await this.store.getFilter(userId, Number(filterId));
    return json === undefined ? undefined : (JSON.parse(json) as Record<string, unknown>);
  }

  // ---- account data

  /** Writes account data (roomId null: global) and announces it on `account_data` after commit. */
  async setAccountData(userId: string, roomId: string | null, type: string, content: Record<string, unknown>): Promise<number> {
    return this.database.transaction(async (tx) => {
      const pos = await this.store.putAccountData(tx, userId, roomId, type, JSON.stringify(content));
      tx.onCommit(() => this.streams.emit('account_data', userId, pos, roomId));
      return pos;
    });
  }

  getAccountData(userId: string, roomId: string | null, type: string): Promise<Record<string, unknown> | undefined> {
    return this.store.getAccountData(userId, roomId, type);
  }

  /**
   * Whether the user blocks every invite (invite permission, spec v1.18: global account data
   * `m.invite_permission_config` with `default_action: "block"`; anything else lets invites in).
   */
  async blocksInvites(userId: string): Promise<boolean> {
    return (await this.store.getAccountData(userId, null, 'm.invite_permission_config'))?.['default_action'] === 'block';
  }

  // ---- tags (room account data of type m.tag)

  async getTags(userId: string, roomId: string): Promise<Record<string, Record<string, unknown>>> {
    const content = await this.store.getAccountData(userId, roomId, 'm.tag');
    const tags = content?.tags;
    return isObject(tags) ? (tags as Record<string, Record<string, unknown>>) : {};
  }

  async setTag(userId: string, roomId: string, tag: string, content: Record<string, unknown>): Promise<void> {
    await this.updateTags(userId, roomId, (tags) => {
      tags[tag] = content;
    });
  }

  async removeTag(userId: string, roomId: string, tag: string): Promise<void> {
    await this.updateTags(userId, roomId, (tags) => {
      delete tags[tag];
    });
  }

  private async updateTags(userId: string, roomId: string, change: (tags: Record<string, unknown>) => void): Promise<void> {
    await this.database.transaction(async (tx) => {
      const current = await this.store.getAccountData(userId, roomId, 'm.tag', tx);
      const tags: Record<string, unknown> = isObject(current?.tags) ? { ...(current.tags as Record<string, unknown>) } : {};
      change(tags);
      const pos = await this.store.putAccountData(tx, userId, roomId, 'm.tag', JSON.stringify({ tags }));
      tx.onCommit(() => this.streams.emit('account_data', userId, pos, roomId));
    });
  }

  // ---- presence

  async setPresence(userId: string, state: PresenceState, statusMsg: string | undefined): Promise<number> {
    return this.database.transaction(async (tx) => {
      const pos = await this.store.putPresence(tx, { user_id: userId, state, status_msg: statusMsg ?? null, last_active_ts: this.now() });
      tx.onCommit(() => this.streams.emit('presence', userId, pos));
      return pos;
    });
  }

  /** A user's presence as clients see it; users who never set one are offline (or, with `knownOnly`, undefined). */
  async getPresence(userId: string): Promise<PresenceStatus>;
  async getPresence(userId: string, opts: { knownOnly: true }): Promise<PresenceStatus | undefined>;
  async getPresence(userId: string, opts: { knownOnly?: boolean } = {}): Promise<PresenceStatus | undefined> {
    const row = await this.store.getPresence(userId);
    if (!row) return opts.knownOnly ? undefined : { presence: 'offline' };
    const ago = Math.max(0, this.now() - row.last_active_ts);
    return {
      presence: row.state as PresenceState,
      last_active_ago: ago,
      ...(row.status_msg !== null ? { status_msg: row.status_msg } : {}),
      currently_active: row.state === 'online' && ago < CURRENTLY_ACTIVE_MS,
    };
  }
}

import { sql, type Kysely, type Selectable } from 'kysely';
import type { Database, Tx } from '../db.js';
import type { Tables } from '../schema.js';
import type { DevicesTable, RegistrationTokensTable, UsersTable } from '../schema-accounts.js';
import { LruCache } from '../../util/lru.js';

/** Where a device's request came from: its IP and User-Agent header (either may be unknown). */
export interface SeenFrom {
  ip: string | null;
  userAgent?: string | null;
}

export type UserRow = Selectable<UsersTable>;
export type DeviceRow = Selectable<DevicesTable>;
export type RegistrationTokenRow = Selectable<RegistrationTokensTable>;

export interface AccessTokenLookup {
  id: number;
  user_id: string;
  device_id: string;
  expires_ts: number | null;
  is_admin: number;
  is_guest: number;
  deactivated: number;
  suspended: number;
  locked: number;
}

export interface UiaSessionRow {
  session_id: string;
  purpose: string;
  completed: string[];
  data: Record<string, unknown>;
  created_ts: number;
}

/** Escapes LIKE wildcards; used with `escape '\'`. */
function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** Access-token lookups kept in memory (every authenticated request makes one). */
const TOKEN_CACHE_SIZE = 10_000;

/** Users, devices, tokens, registration tokens and UIA sessions. */
export class AccountStore {
  /**
   * Found access tokens by hash, with their user's flags. Every write here that can change a
   * lookup (a user's flags, deleting tokens or devices) empties it when it runs and again when
   * its transaction commits, and a lookup that began before an emptying does not store its
   * answer, so a cached entry never outlives what it was read from. Expiry is checked by the
   * caller on every use.
   */
  private readonly tokenCache = new LruCache<string, AccessTokenLookup>(TOKEN_CACHE_SIZE);
  private tokenEpoch = 0;

  constructor(private readonly database: Database) {}

  /** Forgets the cached token lookups (after the tables were changed other than through this store). */
  dropCachedTokens(): void {
    this.tokensChanged();
  }

  private tokensChanged(tx?: Tx): void {
    this.tokenEpoch++;
    this.tokenCache.clear();
    tx?.onCommit(() => {
      this.tokenEpoch++;
      this.tokenCache.clear();
    });
  }

  private q(tx?: Tx): Kysely<Tables> {
    return tx?.db ?? this.database.db;
  }

  // ---- users

  async getUser(userId: string, tx?: Tx): Promise<UserRow | undefined> {
    return this.q(tx).selectFrom('users').selectAll().where('user_id', '=', userId).executeTakeFirst();
  }

  async insertUser(
    tx: Tx,
    u: { user_id: string; password_hash: string | null; is_admin: boolean; is_guest?: boolean; user_type: string | null; created_ts: number; displayname: string | null },
  ): Promise<boolean> {
    const res = await tx.db
      .insertInto('users')
      .values({
        user_id: u.user_id,
        password_hash: u.password_hash,
        is_admin: u.is_admin ? 1 : 0,
        is_guest: u.is_guest ? 1 : 0,
        user_type: u.user_type,
        created_ts: u.created_ts,
        displayname: u.displayname,
        avatar_url: null,
        profile_extra: null,
      })
      .onConflict((oc) => oc.column('user_id').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async updateUser(
    userId: string,
    set: Partial<Pick<UserRow, 'password_hash' | 'is_admin' | 'deactivated' | 'displayname' | 'avatar_url' | 'profile_extra' | 'suspended' | 'locked'>>,
    tx?: Tx,
  ): Promise<void> {
    this.tokensChanged(tx);
    await this.q(tx).updateTable('users').set(set).where('user_id', '=', userId).execute();
    this.tokensChanged();
  }

  /** Local, active users whose ID or display name contains `term` (case-insensitive). */
  async searchUsers(term: string, limit: number): Promise<Array<Pick<UserRow, 'user_id' | 'displayname' | 'avatar_url'>>> {
    const pattern = `%${likeEscape(term.toLowerCase())}%`;
    return this.database.db
      .selectFrom('users')
      .select(['user_id', 'displayname', 'avatar_url'])
      .where('deactivated', '=', 0)
      .where('is_guest', '=', 0)
      .where(sql<boolean>`(lower(user_id) like ${pattern} escape '\\' or lower(coalesce(displayname, '')) like ${pattern} escape '\\')`)
      .orderBy('user_id')
      .limit(limit)
      .execute();
  }

  async countUsers(): Promise<number> {
    const row = await this.database.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  // ---- devices

  async getDevice(userId: string, deviceId: string, tx?: Tx): Promise<DeviceRow | undefined> {
    return this.q(tx).selectFrom('devices').selectAll().where('user_id', '=', userId).where('device_id', '=', deviceId).executeTakeFirst();
  }

  async listDevices(userId: string, tx?: Tx): Promise<DeviceRow[]> {
    return this.q(tx).selectFrom('devices').selectAll().where('user_id', '=', userId).orderBy('device_id').execute();
  }

  /** Creates the device, or keeps an existing one (updating its display name when given). */
  async upsertDevice(tx: Tx, d: { user_id: string; device_id: string; display_name: string | null; created_ts: number; ip: string | null }): Promise<void> {
    const existing = await this.getDevice(d.user_id, d.device_id, tx);
    if (existing) {
      if (d.display_name !== null) await this.renameDevice(d.user_id, d.device_id, d.display_name, tx);
      return;
    }
    await tx.db
      .insertInto('devices')
      .values({
        user_id: d.user_id,
        device_id: d.device_id,
        display_name: d.display_name,
        created_ts: d.created_ts,
        last_seen_ts: d.created_ts,
        last_seen_ip: d.ip,
      })
      .execute();
  }

  async renameDevice(userId: string, deviceId: string, displayName: string, tx?: Tx): Promise<boolean> {
    const res = await this.q(tx)
      .updateTable('devices')
      .set({ display_name: displayName })
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  async touchDevice(userId: string, deviceId: string, ts: number, seen: SeenFrom): Promise<void> {
    await this.database.db
      .updateTable('devices')
      .set({ last_seen_ts: ts, last_seen_ip: seen.ip, last_seen_user_agent: seen.userAgent ?? null })
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .execute();
  }

  /** Deletes devices with their access and refresh tokens (and a dehydrated device among them). Returns the IDs that existed. */
  async deleteDevices(tx: Tx, userId: string, deviceIds: readonly string[]): Promise<string[]> {
    if (deviceIds.length === 0) return [];
    const existing = await tx.db
      .selectFrom('devices')
      .select('device_id')
      .where('user_id', '=', userId)
      .where('device_id', 'in', deviceIds)
      .execute();
    this.tokensChanged(tx);
    await tx.db.deleteFrom('access_tokens').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    await tx.db.deleteFrom('refresh_tokens').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    await tx.db.deleteFrom('dehydrated_devices').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    await tx.db.deleteFrom('devices').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    return existing.map((r) => r.device_id);
  }

  // ---- access and refresh tokens

  async insertAccessToken(
    tx: Tx,
    t: { token_hash: string; user_id: string; device_id: string; created_ts: number; expires_ts: number | null; refresh_token_id: number | null },
  ): Promise<number> {
    const row = await tx.db.insertInto('access_tokens').values(t).returning('id').executeTakeFirstOrThrow();
    return Number(row.id);
  }

  /** The access token with that hash and its user's flags (the returned object must not be modified). */
  async findAccessToken(tokenHash: string): Promise<Readonly<AccessTokenLookup> | undefined> {
    const cached = this.tokenCache.get(tokenHash);
    if (cached) return cached;
    const epoch = this.tokenEpoch;
    const row = await this.database.db
      .selectFrom('access_tokens as t')
      .innerJoin('users as u', 'u.user_id', 't.user_id')
      .select(['t.id', 't.user_id', 't.device_id', 't.expires_ts', 'u.is_admin', 'u.is_guest', 'u.deactivated', 'u.suspended', 'u.locked'])
      .where('t.token_hash', '=', tokenHash)
      .executeTakeFirst();
    if (row && epoch === this.tokenEpoch) this.tokenCache.set(tokenHash, row);
    return row;
  }

  async deleteAccessTokensOfDevice(tx: Tx, userId: string, deviceId: string): Promise<void> {
    this.tokensChanged(tx);
    await tx.db.deleteFrom('access_tokens').where('user_id', '=', userId).where('device_id', '=', deviceId).execute();
    await tx.db.deleteFrom('refresh_tokens').where('user_id', '=', userId).where('device_id', '=', deviceId).execute();
  }

  async insertRefreshToken(tx: Tx, t: { token_hash: string; user_id: string; device_id: string; created_ts: number }): Promise<number> {
    const row = await tx.db.insertInto('refresh_tokens').values(t).returning('id').executeTakeFirstOrThrow();
    return Number(row.id);
  }

  /** Removes a refresh token (single use); returns its owner when it existed. */
  async takeRefreshToken(tx: Tx, tokenHash: string): Promise<{ id: number; user_id: string; device_id: string } | undefined> {
    const row = await tx.db.selectFrom('refresh_tokens').select(['id', 'user_id', 'device_id']).where('token_hash', '=', tokenHash).executeTakeFirst();
    if (!row) return undefined;
    const del = await tx.db.deleteFrom('refresh_tokens').where('id', '=', row.id).executeTakeFirst();
    if (Number(del.numDeletedRows) !== 1) return undefined; // used concurrently
    return { id: Number(row.id), user_id: row.user_id, device_id: row.device_id };
  }

  async deleteAccessTokensOfRefreshToken(tx: Tx, refreshTokenId: number): Promise<void> {
    this.tokensChanged(tx);
    await tx.db.deleteFrom('access_tokens').where('refresh_token_id', '=', refreshTokenId).execute();
  }

  // ---- login tokens

  async insertLoginToken(t: { token_hash: string; user_id: string; expires_ts: number }): Promise<void> {
    await this.database.db.insertInto('login_tokens').values(t).execute();
  }

  /** Consumes a login token (single use); returns its user when it existed and had not expired. */
  async takeLoginToken(tokenHash: string, now: number): Promise<string | undefined> {
    return this.database.transaction(async (tx) => {
      const row = await tx.db.selectFrom('login_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
      if (!row) return undefined;
      await tx.db.deleteFrom('login_tokens').where('token_hash', '=', tokenHash).execute();
      await tx.db.deleteFrom('login_tokens').where('expires_ts', '<', now).execute();
      return row.expires_ts >= now ? row.user_id : undefined;
    });
  }

  // ---- registration tokens

  async insertRegistrationToken(t: { token: string; uses_allowed: number | null; expiry_time: number | null; created_ts: number }): Promise<boolean> {
    const res = await this.database.db
      .insertInto('registration_tokens')
      .values(t)
      .onConflict((oc) => oc.column('token').doNothing())
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) === 1;
  }

  async getRegistrationToken(token: string, tx?: Tx): Promise<RegistrationTokenRow | undefined> {
    return this.q(tx).selectFrom('registration_tokens').selectAll().where('token', '=', token).executeTakeFirst();
  }

  async listRegistrationTokens(): Promise<RegistrationTokenRow[]> {
    return this.database.db.selectFrom('registration_tokens').selectAll().orderBy('created_ts').orderBy('token').execute();
  }

  async deleteRegistrationToken(token: string): Promise<boolean> {
    const res = await this.database.db.deleteFrom('registration_tokens').where('token', '=', token).executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  async adjustRegistrationToken(tx: Tx, token: string, pendingDelta: number, completedDelta: number): Promise<void> {
    await tx.db
      .updateTable('registration_tokens')
      .set((eb) => ({
        pending: eb('pending', '+', pendingDelta),
        completed: eb('completed', '+', completedDelta),
      }))
      .where('token', '=', token)
      .execute();
  }

  // ---- user-interactive auth sessions

  async insertUiaSession(s: UiaSessionRow): Promise<void> {
    await this.database.db
      .insertInto('uia_sessions')
      .values({ ...s, completed: JSON.stringify(s.completed), data: JSON.stringify(s.data) })
      .execute();
  }

  async getUiaSession(sessionId: string, tx?: Tx): Promise<UiaSessionRow | undefined> {
    const row = await this.q(tx).selectFrom('uia_sessions').selectAll().where('session_id', '=', sessionId).executeTakeFirst();
    if (!row) return undefined;
    return { ...row, completed: JSON.parse(row.completed) as string[], data: JSON.parse(row.data) as Record<string, unknown> };
  }

  async updateUiaSession(sessionId: string, completed: string[], data: Record<string, unknown>, tx?: Tx): Promise<void> {
    await this.q(tx)
      .updateTable('uia_sessions')
      .set({ completed: JSON.stringify(completed), data: JSON.stringify(data) })
      .where('session_id', '=', sessionId)
      .execute();
  }

  async deleteUiaSession(sessionId: string, tx?: Tx): Promise<void> {
    await this.q(tx).deleteFrom('uia_sessions').where('session_id', '=', sessionId).execute();
  }

  async expiredUiaSessions(before: number): Promise<UiaSessionRow[]> {
    const rows = await this.database.db.selectFrom('uia_sessions').selectAll().where('created_ts', '<', before).limit(500).execute();
    return rows.map((row) => ({ ...row, completed: JSON.parse(row.completed) as string[], data: JSON.parse(row.data) as Record<string, unknown> }));
  }
}

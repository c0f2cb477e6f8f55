import { LruCache } from '../../util/lru.js';
import type { Database, Tx } from '../db.js';

type Q = Database['db'] | Tx['db'];

export interface OneTimeKeyRow {
  algorithm: string;
  keyId: string;
  json: string;
}

export interface CrossSigningKeyRow {
  keyType: string;
  publicKey: string;
  json: string;
}

export interface SignatureRow {
  signerUserId: string;
  signerKeyId: string;
  targetUserId: string;
  targetKeyId: string;
  signature: string;
}

export interface InboxRow {
  streamId: number;
  sender: string;
  type: string;
  content: string;
}

export interface BackupVersionRow {
  version: number;
  algorithm: string;
  authData: string;
  etag: number;
  deleted: boolean;
}

export interface BackupSessionRow {
  roomId: string;
  sessionId: string;
  firstMessageIndex: number;
  forwardedCount: number;
  isVerified: boolean;
  sessionData: string;
}

/** Storage of end-to-end encryption keys, device-list changes, to-device messages and key backups. */
export class E2eeStore {
  /**
   * Per device, the one-time key counts and unused fallback key algorithms every /sync shows.
   * Every write of those keys is here: it drops the device's entry when it writes and again when
   * it commits, and a read that began before any drop does not store its answer.
   */
  private readonly keyCounts = new LruCache<string, { otk?: Record<string, number>; fallback?: string[] }>(10_000);
  private keyGeneration = 0;

  constructor(private readonly database: Database) {}

  private dropKeyCounts(tx: Tx | undefined, userId: string, deviceIds: readonly string[]): void {
    const drop = () => {
      this.keyGeneration++;
      for (const d of deviceIds) this.keyCounts.delete(`${userId}\u0000${d}`);
    };
    drop();
    tx?.onCommit(drop);
  }

  private async cachedKeyCount<K extends 'otk' | 'fallback'>(
    userId: string,
    deviceId: string,
    kind: K,
    load: () => Promise<NonNullable<{ otk?: Record<string, number>; fallback?: string[] }[K]>>,
  ): Promise<NonNullable<{ otk?: Record<string, number>; fallback?: string[] }[K]>> {
    const key = `${userId}\u0000${deviceId}`;
    const hit = this.keyCounts.get(key)?.[kind];
    // Copies (flat values: counts by algorithm, or algorithm names) so callers cannot change the cache.
    if (hit !== undefined) return (Array.isArray(hit) ? [...hit] : { ...hit }) as NonNullable<{ otk?: Record<string, number>; fallback?: string[] }[K]>;
    const generation = this.keyGeneration;
    const value = await load();
    if (this.keyGeneration === generation) {
      const entry = this.keyCounts.get(key) ?? {};
      entry[kind] = (Array.isArray(value) ? [...value] : { ...value }) as typeof entry[K];
      this.keyCounts.set(key, entry);
    }
    return value;
  }

  private get db() {
    return this.database.db;
  }

  // ---- device keys

  async getDeviceKeys(userId: string, deviceId: string, q: Q = this.db): Promise<string | undefined> {
    const row = await q.selectFrom('e2e_device_keys').select('key_json').where('user_id', '=', userId).where('device_id', '=', deviceId).executeTakeFirst();
    return row?.key_json;
  }

  /** Device keys of a user's existing devices, with each device's display name. */
  async deviceKeysOfUser(userId: string, deviceIds?: string[]): Promise<Array<{ deviceId: string; json: string; displayName: string | null }>> {
    let query = this.db
      .selectFrom('e2e_device_keys as k')
      .innerJoin('devices as d', (j) => j.onRef('d.user_id', '=', 'k.user_id').onRef('d.device_id', '=', 'k.device_id'))
      .select(['k.device_id', 'k.key_json', 'd.display_name'])
      .where('k.user_id', '=', userId);
    if (deviceIds && deviceIds.length > 0) query = query.where('k.device_id', 'in', deviceIds);
    const rows = await query.execute();
    return rows.map((r) => ({ deviceId: r.device_id, json: r.key_json, displayName: r.display_name }));
  }

  async putDeviceKeys(tx: Tx, userId: string, deviceId: string, json: string, now: number): Promise<void> {
    await tx.db.deleteFrom('e2e_device_keys').where('user_id', '=', userId).where('device_id', '=', deviceId).execute();
    await tx.db.insertInto('e2e_device_keys').values({ user_id: userId, device_id: deviceId, key_json: json, updated_ts: now }).execute();
  }

  /** Removes every key of these devices (deleted devices); returns whether any device had keys. */
  async deleteDeviceKeys(tx: Tx, userId: string, deviceIds: string[]): Promise<boolean> {
    if (deviceIds.length === 0) return false;
    this.dropKeyCounts(tx, userId, deviceIds);
    const res = await tx.db.deleteFrom('e2e_device_keys').where('user_id', '=', userId).where('device_id', 'in', deviceIds).executeTakeFirst();
    await tx.db.deleteFrom('e2e_one_time_keys').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    await tx.db.deleteFrom('e2e_fallback_keys').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    await tx.db.deleteFrom('device_inbox').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    await tx.db.deleteFrom('to_device_txns').where('user_id', '=', userId).where('device_id', 'in', deviceIds).execute();
    await tx.db
      .deleteFrom('e2e_signatures')
      .where('target_user_id', '=', userId)
      .where('target_key_id', 'in', deviceIds)
      .execute();
    await tx.db
      .deleteFrom('e2e_signatures')
      .where('signer_user_id', '=', userId)
      .where('signer_key_id', 'in', deviceIds.map((d) => `ed25519:${d}`))
      .execute();
    return Number(res.numDeletedRows) > 0;
  }

  // ---- one-time and fallback keys

  async getOneTimeKeys(userId: string, deviceId: string, keys: Array<{ algorithm: string; keyId: string }>, q: Q = this.db): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    for (let i = 0; i < keys.length; i += 200) {
      const ids = keys.slice(i, i + 200).map((k) => k.keyId);
      const rows = await q
        .selectFrom('e2e_one_time_keys')
        .select(['algorithm', 'key_id', 'key_json'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('key_id', 'in', ids)
        .execute();
      for (const r of rows) out.set(`${r.algorithm}:${r.key_id}`, r.key_json);
    }
    return out;
  }

  async insertOneTimeKeys(tx: Tx, userId: string, deviceId: string, keys: OneTimeKeyRow[]): Promise<void> {
    this.dropKeyCounts(tx, userId, [deviceId]);
    for (let i = 0; i < keys.length; i += 200) {
      await tx.db
        .insertInto('e2e_one_time_keys')
        .values(keys.slice(i, i + 200).map((k) => ({ user_id: userId, device_id: deviceId, algorithm: k.algorithm, key_id: k.keyId, key_json: k.json })))
        .execute();
    }
  }

  async oneTimeKeyCounts(userId: string, deviceId: string, q: Q = this.db): Promise<Record<string, number>> {
    if (q === this.db) return this.cachedKeyCount(userId, deviceId, 'otk', () => this.oneTimeKeyCountsFrom(q, userId, deviceId));
    return this.oneTimeKeyCountsFrom(q, userId, deviceId);
  }

  private async oneTimeKeyCountsFrom(q: Q, userId: string, deviceId: string): Promise<Record<string, number>> {
    const rows = await q
      .selectFrom('e2e_one_time_keys')
      .select(['algorithm', (eb) => eb.fn.countAll<number>().as('n')])
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .groupBy('algorithm')
      .execute();
    return Object.fromEntries(rows.map((r) => [r.algorithm, Number(r.n)]));
  }

  /** Takes the oldest one-time key of an algorithm (each key is handed out at most once). */
  async claimOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<OneTimeKeyRow | undefined> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const row = await this.db
        .selectFrom('e2e_one_time_keys')
        .select(['id', 'key_id', 'key_json'])
        .where('user_id', '=', userId)
        .where('device_id', '=', deviceId)
        .where('algorithm', '=', algorithm)
        .orderBy('id')
        .limit(1)
        .executeTakeFirst();
      if (!row) return undefined;
      // A concurrent claim may have taken it first: only the one that deletes the row gets it.
      this.dropKeyCounts(undefined, userId, [deviceId]);
      const res = await this.db.deleteFrom('e2e_one_time_keys').where('id', '=', row.id).executeTakeFirst();
      this.dropKeyCounts(undefined, userId, [deviceId]);
      if (Number(res.numDeletedRows) === 1) return { algorithm, keyId: row.key_id, json: row.key_json };
    }
    return undefined;
  }

  async getFallbackKey(userId: string, deviceId: string, algorithm: string, q: Q = this.db): Promise<{ keyId: string; json: string; used: boolean } | undefined> {
    const row = await q
      .selectFrom('e2e_fallback_keys')
      .select(['key_id', 'key_json', 'used'])
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('algorithm', '=', algorithm)
      .executeTakeFirst();
    return row && { keyId: row.key_id, json: row.key_json, used: row.used === 1 };
  }

  async putFallbackKey(tx: Tx, userId: string, deviceId: string, k: OneTimeKeyRow): Promise<void> {
    this.dropKeyCounts(tx, userId, [deviceId]);
    await tx.db.deleteFrom('e2e_fallback_keys').where('user_id', '=', userId).where('device_id', '=', deviceId).where('algorithm', '=', k.algorithm).execute();
    await tx.db.insertInto('e2e_fallback_keys').values({ user_id: userId, device_id: deviceId, algorithm: k.algorithm, key_id: k.keyId, key_json: k.json }).execute();
  }

  async markFallbackKeyUsed(userId: string, deviceId: string, algorithm: string, keyId: string): Promise<void> {
    this.dropKeyCounts(undefined, userId, [deviceId]);
    await this.db
      .updateTable('e2e_fallback_keys')
      .set({ used: 1 })
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('algorithm', '=', algorithm)
      .where('key_id', '=', keyId)
      .execute();
    this.dropKeyCounts(undefined, userId, [deviceId]);
  }

  async unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    return this.cachedKeyCount(userId, deviceId, 'fallback', () => this.unusedFallbackKeyTypesFrom(userId, deviceId));
  }

  private async unusedFallbackKeyTypesFrom(userId: string, deviceId: string): Promise<string[]> {
    const rows = await this.db
      .selectFrom('e2e_fallback_keys')
      .select('algorithm')
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('used', '=', 0)
      .execute();
    return rows.map((r) => r.algorithm).sort();
  }

  // ---- cross-signing

  async crossSigningKeys(userId: string, q: Q = this.db): Promise<Map<string, CrossSigningKeyRow>> {
    const rows = await q.selectFrom('e2e_cross_signing_keys').select(['key_type', 'public_key', 'key_json']).where('user_id', '=', userId).execute();
    return new Map(rows.map((r) => [r.key_type, { keyType: r.key_type, publicKey: r.public_key, json: r.key_json }]));
  }

  async putCrossSigningKey(tx: Tx, userId: string, k: CrossSigningKeyRow, now: number): Promise<void> {
    await tx.db.deleteFrom('e2e_cross_signing_keys').where('user_id', '=', userId).where('key_type', '=', k.keyType).execute();
    await tx.db
      .insertInto('e2e_cross_signing_keys')
      .values({ user_id: userId, key_type: k.keyType, public_key: k.publicKey, key_json: k.json, updated_ts: now })
      .execute();
  }

  async putSignature(tx: Tx, s: SignatureRow): Promise<void> {
    await tx.db
      .deleteFrom('e2e_signatures')
      .where('target_user_id', '=', s.targetUserId)
      .where('target_key_id', '=', s.targetKeyId)
      .where('signer_user_id', '=', s.signerUserId)
      .where('signer_key_id', '=', s.signerKeyId)
      .execute();
    await tx.db
      .insertInto('e2e_signatures')
      .values({
        signer_user_id: s.signerUserId,
        signer_key_id: s.signerKeyId,
        target_user_id: s.targetUserId,
        target_key_id: s.targetKeyId,
        signature: s.signature,
      })
      .execute();
  }

  /** Signatures uploaded for a user's keys (devices and master key). */
  async signaturesOf(targetUserId: string, targetKeyIds?: string[]): Promise<SignatureRow[]> {
    let query = this.db.selectFrom('e2e_signatures').selectAll().where('target_user_id', '=', targetUserId);
    if (targetKeyIds) {
      if (targetKeyIds.length === 0) return [];
      query = query.where('target_key_id', 'in', targetKeyIds);
    }
    const rows = await query.execute();
    return rows.map((r) => ({
      signerUserId: r.signer_user_id,
      signerKeyId: r.signer_key_id,
      targetUserId: r.target_user_id,
      targetKeyId: r.target_key_id,
      signature: r.signature,
    }));
  }

  // ---- device-list changes

  async insertDeviceListChange(tx: Tx, userId: string, now: number): Promise<number> {
    const row = await tx.db.insertInto('device_list_changes').values({ user_id: userId, created_ts: now }).returning('stream_id').executeTakeFirstOrThrow();
    return Number(row.stream_id);
  }

  async maxDeviceListPosition(): Promise<number> {
    const row = await this.db.selectFrom('device_list_changes').select((eb) => eb.fn.max('stream_id').as('m')).executeTakeFirst();
    return Number(row?.m ?? 0);
  }

  /** Users whose devices or keys changed in (from, to]. */
  async usersWithDeviceChanges(from: number, to: number): Promise<string[]> {
    if (to <= from) return [];
    const rows = await this.db
      .selectFrom('device_list_changes')
      .select('user_id')
      .distinct()
      .where('stream_id', '>', from)
      .where('stream_id', '<=', to)
      .execute();
    return rows.map((r) => r.user_id);
  }

  /** Membership events of other users in these rooms in the events window (from, to]. */
  async membershipEventsInRooms(roomIds: string[], from: number, to: number): Promise<Array<{ roomId: string; userId: string; membership: string }>> {
    const out: Array<{ roomId: string; userId: string; membership: string }> = [];
    if (to <= from) return out;
    for (let i = 0; i < roomIds.length; i += 500) {
      const rows = await this.db
        .selectFrom('room_memberships')
        .select(['room_id', 'user_id', 'membership'])
        .where('room_id', 'in', roomIds.slice(i, i + 500))
        .where('stream_ordering', '>', from)
        .where('stream_ordering', '<=', to)
        .orderBy('stream_ordering')
        .execute();
      for (const r of rows) out.push({ roomId: r.room_id, userId: r.user_id, membership: r.membership });
    }
    return out;
  }

  // ---- to-device

  /** Records a to-device transaction; false when this device already sent it. */
  async claimToDeviceTxn(tx: Tx, userId: string, deviceId: string, txnId: string, now: number): Promise<boolean> {
    const existing = await tx.db
      .selectFrom('to_device_txns')
      .select('txn_id')
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('txn_id', '=', txnId)
      .executeTakeFirst();
    if (existing) return false;
    await tx.db.insertInto('to_device_txns').values({ user_id: userId, device_id: deviceId, txn_id: txnId, created_ts: now }).execute();
    return true;
  }

  async insertToDevice(
    tx: Tx,
    rows: Array<{ userId: string; deviceId: string; sender: string; type: string; content: string }>,
    now: number,
  ): Promise<number> {
    let max = 0;
    for (let i = 0; i < rows.length; i += 200) {
      const inserted = await tx.db
        .insertInto('device_inbox')
        .values(rows.slice(i, i + 200).map((r) => ({ user_id: r.userId, device_id: r.deviceId, sender: r.sender, type: r.type, content: r.content, created_ts: now })))
        .returning('stream_id')
        .execute();
      for (const r of inserted) max = Math.max(max, Number(r.stream_id));
    }
    return max;
  }

  async maxToDevicePosition(): Promise<number> {
    const row = await this.db.selectFrom('device_inbox').select((eb) => eb.fn.max('stream_id').as('m')).executeTakeFirst();
    return Number(row?.m ?? 0);
  }

  /** Deletes a device's messages up to a position (acknowledged by the client). */
  async ackToDevice(userId: string, deviceId: string, upTo: number): Promise<void> {
    await this.db.deleteFrom('device_inbox').where('user_id', '=', userId).where('device_id', '=', deviceId).where('stream_id', '<=', upTo).execute();
  }

  async pendingToDevice(userId: string, deviceId: string, after: number, upTo: number, limit: number): Promise<InboxRow[]> {
    const rows = await this.db
      .selectFrom('device_inbox')
      .select(['stream_id', 'sender', 'type', 'content'])
      .where('user_id', '=', userId)
      .where('device_id', '=', deviceId)
      .where('stream_id', '>', after)
      .where('stream_id', '<=', upTo)
      .orderBy('stream_id')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ streamId: Number(r.stream_id), sender: r.sender, type: r.type, content: r.content }));
  }

  // ---- dehydrated devices (MSC3814)

  async getDehydratedDevice(userId: string, q: Q = this.db): Promise<{ deviceId: string; deviceData: string } | undefined> {
    const r = await q.selectFrom('dehydrated_devices').select(['device_id', 'device_data']).where('user_id', '=', userId).executeTakeFirst();
    return r && { deviceId: r.device_id, deviceData: r.device_data };
  }

  /** Sets the user's dehydrated device, replacing the previous one. */
  async putDehydratedDevice(tx: Tx, userId: string, deviceId: string, deviceData: string, now: number): Promise<void> {
    await tx.db.deleteFrom('dehydrated_devices').where('user_id', '=', userId).execute();
    await tx.db.insertInto('dehydrated_devices').values({ user_id: userId, device_id: deviceId, device_data: deviceData, created_ts: now }).execute();
  }

  // ---- key backup

  async backupVersion(userId: string, version: number | undefined, q: Q = this.db): Promise<BackupVersionRow | undefined> {
    let query = q.selectFrom('key_backup_versions').selectAll().where('user_id', '=', userId);
    query = version === undefined ? query.where('deleted', '=', 0).orderBy('version', 'desc').limit(1) : query.where('version', '=', version);
    const r = await query.executeTakeFirst();
    return r && { version: Number(r.version), algorithm: r.algorithm, authData: r.auth_data, etag: Number(r.etag), deleted: r.deleted === 1 };
  }

  async createBackupVersion(tx: Tx, userId: string, algorithm: string, authData: string): Promise<number> {
    const row = await tx.db
      .selectFrom('key_backup_versions')
      .select((eb) => eb.fn.max('version').as('m'))
      .where('user_id', '=', userId)
      .executeTakeFirst();
    const version = Number(row?.m ?? 0) + 1;
    await tx.db.insertInto('key_backup_versions').values({ user_id: userId, version, algorithm, auth_data: authData }).execute();
    return version;
  }

  async updateBackupAuthData(userId: string, version: number, authData: string): Promise<void> {
    await this.db.updateTable('key_backup_versions').set({ auth_data: authData }).where('user_id', '=', userId).where('version', '=', version).execute();
  }

  async deleteBackupVersion(tx: Tx, userId: string, version: number): Promise<void> {
    await tx.db.updateTable('key_backup_versions').set({ deleted: 1 }).where('user_id', '=', userId).where('version', '=', version).execute();
    await tx.db.deleteFrom('key_backup_sessions').where('user_id', '=', userId).where('version', '=', version).execute();
  }

  async bumpBackupEtag(tx: Tx, userId: string, version: number): Promise<void> {
    await tx.db
      .updateTable('key_backup_versions')
      .set((eb) => ({ etag: eb('etag', '+', 1) }))
      .where('user_id', '=', userId)
      .where('version', '=', version)
      .execute();
  }

  async backupCount(userId: string, version: number, q: Q = this.db): Promise<number> {
    const row = await q
      .selectFrom('key_backup_sessions')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('user_id', '=', userId)
      .where('version', '=', version)
      .executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  async backupSessions(userId: string, version: number, roomId?: string, sessionId?: string, q: Q = this.db): Promise<BackupSessionRow[]> {
    let query = q.selectFrom('key_backup_sessions').selectAll().where('user_id', '=', userId).where('version', '=', version);
    if (roomId !== undefined) query = query.where('room_id', '=', roomId);
    if (sessionId !== undefined) query = query.where('session_id', '=', sessionId);
    const rows = await query.execute();
    return rows.map((r) => ({
      roomId: r.room_id,
      sessionId: r.session_id,
      firstMessageIndex: Number(r.first_message_index),
      forwardedCount: Number(r.forwarded_count),
      isVerified: r.is_verified === 1,
      sessionData: r.session_data,
    }));
  }

  async putBackupSession(tx: Tx, userId: string, version: number, s: BackupSessionRow): Promise<void> {
    await tx.db
      .deleteFrom('key_backup_sessions')
      .where('user_id', '=', userId)
      .where('version', '=', version)
      .where('room_id', '=', s.roomId)
      .where('session_id', '=', s.sessionId)
      .execute();
    await tx.db
      .insertInto('key_backup_sessions')
      .values({
        user_id: userId,
        version,
        room_id: s.roomId,
        session_id: s.sessionId,
        first_message_index: s.firstMessageIndex,
        forwarded_count: s.forwardedCount,
        is_verified: s.isVerified ? 1 : 0,
        session_data: s.sessionData,
      })
      .execute();
  }

  async deleteBackupSessions(tx: Tx, userId: string, version: number, roomId?: string, sessionId?: string): Promise<number> {
    let query = tx.db.deleteFrom('key_backup_sessions').where('user_id', '=', userId).where('version', '=', version);
    if (roomId !== undefined) query = query.where('room_id', '=', roomId);
    if (sessionId !== undefined) query = query.where('session_id', '=', sessionId);
    const res = await query.executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}

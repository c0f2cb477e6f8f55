import { MatrixError, errors } from '../../errors.js';
import { backupKeyReplaces } from '../../protocol/e2e-keys.js';
import { isJsonObject, type JsonObject } from '../../protocol/json.js';
import type { Database } from '../../storage/db.js';
import type { BackupSessionRow, BackupVersionRow, E2eeStore } from '../../storage/stores/e2ee.js';

export const MEGOLM_BACKUP_V1 = 'm.megolm_backup.v1.curve25519-aes-sha2';
/** The largest auth_data or session_data accepted, in bytes of JSON. */
export const MAX_BACKUP_OBJECT_BYTES = 64 * 1024;

export interface BackupInfo {
  algorithm: string;
  auth_data: JsonObject;
  count: number;
  etag: string;
  version: string;
}

/** The KeyBackupData of one session. */
export interface KeyBackupData {
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  session_data: JsonObject;
}

/** room ID → session ID → data, as uploaded to PUT /room_keys/keys. */
export type BackupUpload = Record<string, Record<string, unknown>>;

function parseVersion(v: string | undefined): number | undefined {
  if (v === undefined || !/^[1-9][0-9]{0,14}$/.test(v)) return undefined;
  return Number(v);
}

function checkAuthData(algorithm: unknown, authData: unknown): { algorithm: string; authData: JsonObject } {
  if (typeof algorithm !== 'string' || algorithm === '') throw errors.badJson('algorithm must be a non-empty string');
  if (!isJsonObject(authData)) throw errors.badJson('auth_data must be an object');
  if (algorithm === MEGOLM_BACKUP_V1 && typeof authData.public_key !== 'string') throw errors.badJson(`auth_data.public_key is required for ${MEGOLM_BACKUP_V1}`);
  if (Buffer.byteLength(JSON.stringify(authData)) > MAX_BACKUP_OBJECT_BYTES) throw new MatrixError('M_TOO_LARGE', 413, 'auth_data is too large');
  return { algorithm, authData };
}

/** Validates one KeyBackupData object; M_BAD_JSON names what is wrong. */
export function parseKeyBackupData(v: unknown, where: string): KeyBackupData {
  if (!isJsonObject(v)) throw errors.badJson(`${where} must be an object`);
  const int = (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (!int(v.first_message_index)) throw errors.badJson(`${where}.first_message_index must be a non-negative integer`);
  if (!int(v.forwarded_count)) throw errors.badJson(`${where}.forwarded_count must be a non-negative integer`);
  if (typeof v.is_verified !== 'boolean') throw errors.badJson(`${where}.is_verified must be a boolean`);
  if (!isJsonObject(v.session_data)) throw errors.badJson(`${where}.session_data must be an object`);
  if (Buffer.byteLength(JSON.stringify(v.session_data)) > MAX_BACKUP_OBJECT_BYTES) throw new MatrixError('M_TOO_LARGE', 413, `${where}.session_data is too large`);
  return v as unknown as KeyBackupData;
}

function sessionJson(s: BackupSessionRow): KeyBackupData {
  return {
    first_message_index: s.firstMessageIndex,
    forwarded_count: s.forwardedCount,
    is_verified: s.isVerified,
    session_data: JSON.parse(s.sessionData) as JsonObject,
  };
}

/**
 * Server-side key backups: per-user numbered versions holding encrypted megolm session keys.
 * Keys can only be written to the newest version; every change of its keys changes its etag.
 */
export class KeyBackupService {
  constructor(
    private readonly database: Database,
    private readonly store: E2eeStore,
  ) {}

  async create(userId: string, algorithm: unknown, authData: unknown): Promise<string> {
    const checked = checkAuthData(algorithm, authData);
    const version = await this.database.transaction((tx) => this.store.createBackupVersion(tx, userId, checked.algorithm, JSON.stringify(checked.authData)));
    return String(version);
  }

  private async info(userId: string, row: BackupVersionRow): Promise<BackupInfo> {
    return {
      algorithm: row.algorithm,
      auth_data: JSON.parse(row.authData) as JsonObject,
      count: await this.store.backupCount(userId, row.version),
      etag: String(row.etag),
      version: String(row.version),
    };
  }

  /** The newest backup, or a given version; M_NOT_FOUND when there is none (or it was deleted). */
  async get(userId: string, version?: string): Promise<BackupInfo> {
    const row = await this.existing(userId, version);
    return this.info(userId, row);
  }

  private async existing(userId: string, version: string | undefined): Promise<BackupVersionRow> {
    if (version === undefined) {
      const row = await this.store.backupVersion(userId, undefined);
      if (!row) throw errors.notFound('No current backup version');
      return row;
    }
    const n = parseVersion(version);
    const row = n === undefined ? undefined : await this.store.backupVersion(userId, n);
    if (!row || row.deleted) throw errors.notFound('Unknown backup version');
    return row;
  }

  async update(userId: string, version: string, body: Record<string, unknown>): Promise<void> {
    const row = await this.existing(userId, version);
    const checked = checkAuthData(body.algorithm, body.auth_data);
    if (body.version !== undefined && body.version !== version) throw errors.invalidParam('The version in the body does not match the path');
    if (checked.algorithm !== row.algorithm) throw errors.invalidParam('Algorithm does not match');
    await this.store.updateBackupAuthData(userId, row.version, JSON.stringify(checked.authData));
  }

  /** Deletes a version and its keys; deleting an already deleted version succeeds. */
  async delete(userId: string, version: string): Promise<void> {
    const n = parseVersion(version);
    const row = n === undefined ? undefined : await this.store.backupVersion(userId, n);
    if (!row) throw errors.notFound('Unknown backup version');
    if (row.deleted) return;
    await this.database.transaction((tx) => this.store.deleteBackupVersion(tx, userId, row.version));
  }

  /** The version keys may be written to: the newest; M_WRONG_ROOM_KEYS_VERSION for any other. */
  private async writable(userId: string, version: string | undefined): Promise<BackupVersionRow> {
    if (version === undefined) throw errors.missingParam('The version query parameter is required');
    const current = await this.store.backupVersion(userId, undefined);
    if (!current) throw errors.notFound('No current backup version');
    if (String(current.version) !== version) {
      throw new MatrixError('M_WRONG_ROOM_KEYS_VERSION', 403, 'Wrong backup version', { current_version: String(current.version) });
    }
    return current;
  }

  /**
   * Stores keys (all validated before anything is written). A key replaces the stored one of
   * its session only if it is better (verified, then lower first_message_index, then lower
   * forwarded_count).
   */
  async putKeys(userId: string, version: string | undefined, rooms: BackupUpload): Promise<{ etag: string; count: number }> {
    const parsed: Array<{ roomId: string; sessionId: string; data: KeyBackupData }> = [];
    for (const [roomId, sessions] of Object.entries(rooms)) {
      for (const [sessionId, data] of Object.entries(sessions)) parsed.push({ roomId, sessionId, data: parseKeyBackupData(data, `rooms.${roomId}.sessions.${sessionId}`) });
    }
    const row = await this.writable(userId, version);
    return this.database.transaction(async (tx) => {
      let changed = false;
      for (const p of parsed) {
        const [cur] = await this.store.backupSessions(userId, row.version, p.roomId, p.sessionId, tx.db);
        if (cur && !backupKeyReplaces(p.data, sessionJson(cur))) continue;
        await this.store.putBackupSession(tx, userId, row.version, {
          roomId: p.roomId,
          sessionId: p.sessionId,
          firstMessageIndex: p.data.first_message_index,
          forwardedCount: p.data.forwarded_count,
          isVerified: p.data.is_verified,
          sessionData: JSON.stringify(p.data.session_data),
        });
        changed = true;
      }
      if (changed) await this.store.bumpBackupEtag(tx, userId, row.version);
      const after = await this.store.backupVersion(userId, row.version, tx.db);
      return { etag: String(after!.etag), count: await this.store.backupCount(userId, row.version, tx.db) };
    });
  }

  async getKeys(userId: string, version: string | undefined, roomId?: string, sessionId?: string): Promise<Record<string, { sessions: Record<string, KeyBackupData> }>> {
    if (version === undefined) throw errors.missingParam('The version query parameter is required');
    const row = await this.existing(userId, version);
    const rooms: Record<string, { sessions: Record<string, KeyBackupData> }> = {};
    for (const s of await this.store.backupSessions(userId, row.version, roomId, sessionId)) {
      (rooms[s.roomId] ??= { sessions: {} }).sessions[s.sessionId] = sessionJson(s);
    }
    return rooms;
  }

  async deleteKeys(userId: string, version: string | undefined, roomId?: string, sessionId?: string): Promise<{ etag: string; count: number }> {
    if (version === undefined) throw errors.missingParam('The version query parameter is required');
    const row = await this.existing(userId, version);
    return this.database.transaction(async (tx) => {
      const n = await this.store.deleteBackupSessions(tx, userId, row.version, roomId, sessionId);
      if (n > 0) await this.store.bumpBackupEtag(tx, userId, row.version);
      const after = await this.store.backupVersion(userId, row.version, tx.db);
      return { etag: String(after!.etag), count: await this.store.backupCount(userId, row.version, tx.db) };
    });
  }
}

import type { Kysely } from 'kysely';
import type { Database, Tx } from '../db.js';
import type { Tables } from '../schema.js';

/** What is known of a remote user's devices: device keys by device, cross-signing keys. */
export interface RemoteDeviceList {
  devices: Record<string, Record<string, unknown>>;
  master_key?: Record<string, unknown>;
  self_signing_key?: Record<string, unknown>;
  /** Recent stream IDs of updates applied (to tell a gap from an update already seen). */
  seen?: string[];
}

type Q = Kysely<Tables>;

/** Device-list updates announced for local users, and the cached device lists of remote users. */
export class FederationDeviceStore {
  constructor(private readonly database: Database) {}

  private get db(): Q {
    return this.database.db;
  }

  async lastOutbound(userId: string, q: Q = this.db): Promise<number | undefined> {
    const row = await q
      .selectFrom('device_list_outbound')
      .select('stream_id')
      .where('user_id', '=', userId)
      .orderBy('stream_id', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? Number(row.stream_id) : undefined;
  }

  async appendOutbound(tx: Tx, userId: string, deviceId: string, deleted: boolean, now: number): Promise<number> {
    const row = await tx.db
      .insertInto('device_list_outbound')
      .values({ user_id: userId, device_id: deviceId, deleted: deleted ? 1 : 0, created_ts: now })
      .returning('stream_id')
      .executeTakeFirstOrThrow();
    return Number(row.stream_id);
  }

  async snapshot(userId: string, q: Q = this.db): Promise<Map<string, string>> {
    const rows = await q.selectFrom('device_list_snapshots').select(['device_id', 'hash']).where('user_id', '=', userId).execute();
    return new Map(rows.map((r) => [r.device_id, r.hash]));
  }

  async setSnapshot(tx: Tx, userId: string, deviceId: string, hash: string | undefined): Promise<void> {
    await tx.db.deleteFrom('device_list_snapshots').where('user_id', '=', userId).where('device_id', '=', deviceId).execute();
    if (hash !== undefined) await tx.db.insertInto('device_list_snapshots').values({ user_id: userId, device_id: deviceId, hash }).execute();
  }

  async getRemote(userId: string): Promise<{ streamId: string; list: RemoteDeviceList } | undefined> {
    const row = await this.db.selectFrom('remote_device_lists').selectAll().where('user_id', '=', userId).executeTakeFirst();
    return row && { streamId: row.stream_id, list: JSON.parse(row.json) as RemoteDeviceList };
  }

  async putRemote(userId: string, streamId: string, list: RemoteDeviceList, now: number): Promise<void> {
    await this.database.transaction(async (tx) => {
      await tx.db.deleteFrom('remote_device_lists').where('user_id', '=', userId).execute();
      await tx.db.insertInto('remote_device_lists').values({ user_id: userId, stream_id: streamId, json: JSON.stringify(list), updated_ts: now }).execute();
    });
  }

  async deleteRemote(userId: string): Promise<void> {
    await this.db.deleteFrom('remote_device_lists').where('user_id', '=', userId).execute();
  }
}

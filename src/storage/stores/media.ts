import type { Database } from '../db.js';
import type { MediaTable, MediaThumbnailsTable } from '../schema-media.js';

export interface MediaRow {
  serverName: string;
  mediaId: string;
  uploader: string | null;
  contentType: string | null;
  filename: string | null;
  /** Null while a /create media ID waits for its upload. */
  size: number | null;
  sha256: string | null;
  createdTs: number;
  unusedExpiresTs: number | null;
  lastAccessTs: number;
  quarantined: boolean;
  authenticatedOnly: boolean;
}

export interface ThumbnailRow {
  width: number;
  height: number;
  method: 'crop' | 'scale';
  animated: boolean;
  contentType: string;
  size: number;
  sha256: string;
}

type MediaSelect = Omit<MediaTable, 'quarantined' | 'authenticated_only'> & { quarantined: number; authenticated_only: number };

function toRow(r: MediaSelect): MediaRow {
  return {
    serverName: r.server_name,
    mediaId: r.media_id,
    uploader: r.uploader,
    contentType: r.content_type,
    filename: r.filename,
    size: r.size,
    sha256: r.sha256,
    createdTs: r.created_ts,
    unusedExpiresTs: r.unused_expires_ts,
    lastAccessTs: r.last_access_ts,
    quarantined: r.quarantined !== 0,
    authenticatedOnly: r.authenticated_only !== 0,
  };
}

/** Media metadata: which mxc:// URIs exist, who uploaded them and where their bytes are. */
export class MediaStore {
  constructor(private readonly database: Database) {}

  private get db() {
    return this.database.db;
  }

  async get(serverName: string, mediaId: string): Promise<MediaRow | undefined> {
    const r = await this.db.selectFrom('media').selectAll().where('server_name', '=', serverName).where('media_id', '=', mediaId).executeTakeFirst();
    return r ? toRow(r) : undefined;
  }

  /** Inserts a media row; false when the (server, media ID) pair already exists. */
  async insert(row: Omit<MediaRow, 'quarantined'> & { quarantined?: boolean }): Promise<boolean> {
    return this.database.transaction(async ({ db }) => {
      const existing = await db
        .selectFrom('media')
        .select('media_id')
        .where('server_name', '=', row.serverName)
        .where('media_id', '=', row.mediaId)
        .executeTakeFirst();
      if (existing) return false;
      await db
        .insertInto('media')
        .values({
          server_name: row.serverName,
          media_id: row.mediaId,
          uploader: row.uploader,
          content_type: row.contentType,
          filename: row.filename,
          size: row.size,
          sha256: row.sha256,
          created_ts: row.createdTs,
          unused_expires_ts: row.unusedExpiresTs,
          last_access_ts: row.lastAccessTs,
          quarantined: row.quarantined ? 1 : 0,
          authenticated_only: row.authenticatedOnly ? 1 : 0,
        })
        .execute();
      return true;
    });
  }

  /**
   * Fills in the content of a media ID created earlier (async upload). False when it already has
   * content (another upload won the race).
   */
  async complete(
    serverName: string,
    mediaId: string,
    content: { contentType: string | null; filename: string | null; size: number; sha256: string; createdTs: number; authenticatedOnly: boolean },
  ): Promise<boolean> {
    const res = await this.db
      .updateTable('media')
      .set({
        content_type: content.contentType,
        filename: content.filename,
        size: content.size,
        sha256: content.sha256,
        created_ts: content.createdTs,
        last_access_ts: content.createdTs,
        unused_expires_ts: null,
        authenticated_only: content.authenticatedOnly ? 1 : 0,
      })
      .where('server_name', '=', serverName)
      .where('media_id', '=', mediaId)
      .where('sha256', 'is', null)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Replaces a cached remote media row (a re-fetch after a purge or a failed earlier fetch). */
  async upsertRemote(row: Omit<MediaRow, 'quarantined' | 'unusedExpiresTs'>): Promise<void> {
    await this.database.transaction(async ({ db }) => {
      await db.deleteFrom('media').where('server_name', '=', row.serverName).where('media_id', '=', row.mediaId).execute();
      await db
        .insertInto('media')
        .values({
          server_name: row.serverName,
          media_id: row.mediaId,
          uploader: row.uploader,
          content_type: row.contentType,
          filename: row.filename,
          size: row.size,
          sha256: row.sha256,
          created_ts: row.createdTs,
          unused_expires_ts: null,
          last_access_ts: row.lastAccessTs,
          quarantined: 0,
          authenticated_only: row.authenticatedOnly ? 1 : 0,
        })
        .execute();
    });
  }

  async touch(serverName: string, mediaId: string, ts: number): Promise<void> {
    await this.db.updateTable('media').set({ last_access_ts: ts }).where('server_name', '=', serverName).where('media_id', '=', mediaId).execute();
  }

  async setQuarantined(serverName: string, mediaId: string, quarantined: boolean): Promise<boolean> {
    const res = await this.db
      .updateTable('media')
      .set({ quarantined: quarantined ? 1 : 0 })
      .where('server_name', '=', serverName)
      .where('media_id', '=', mediaId)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Total bytes of a user's uploads (their quota use). */
  async usageOf(userId: string): Promise<number> {
    const r = await this.db
      .selectFrom('media')
      .select((eb) => eb.fn.sum<number | string | null>('size').as('total'))
      .where('uploader', '=', userId)
      .executeTakeFirst();
    return Number(r?.total ?? 0);
  }

  /** Media IDs a user created with /create that still wait for their upload. */
  async pendingCount(userId: string, now: number): Promise<number> {
    const r = await this.db
      .selectFrom('media')
      .select((eb) => eb.fn.countAll<number | string>().as('n'))
      .where('uploader', '=', userId)
      .where('sha256', 'is', null)
      .where('unused_expires_ts', '>', now)
      .executeTakeFirst();
    return Number(r?.n ?? 0);
  }

  /** Deletes media IDs whose upload never came; returns how many. */
  async deleteExpiredPending(now: number): Promise<number> {
    const res = await this.db.deleteFrom('media').where('sha256', 'is', null).where('unused_expires_ts', '<=', now).executeTakeFirst();
    return Number(res.numDeletedRows);
  }

  /** Deletes a media row and its thumbnails; returns the content hashes they referenced. */
  async delete(serverName: string, mediaId: string): Promise<{ deleted: boolean; hashes: string[] }> {
    return this.database.transaction(async ({ db }) => {
      const row = await db.selectFrom('media').select('sha256').where('server_name', '=', serverName).where('media_id', '=', mediaId).executeTakeFirst();
      if (!row) return { deleted: false, hashes: [] };
      const thumbs = await db
        .selectFrom('media_thumbnails')
        .select('sha256')
        .where('server_name', '=', serverName)
        .where('media_id', '=', mediaId)
        .execute();
      await db.deleteFrom('media_thumbnails').where('server_name', '=', serverName).where('media_id', '=', mediaId).execute();
      await db.deleteFrom('media').where('server_name', '=', serverName).where('media_id', '=', mediaId).execute();
      const hashes = [row.sha256, ...thumbs.map((t) => t.sha256)].filter((h): h is string => h !== null);
      return { deleted: true, hashes: [...new Set(hashes)] };
    });
  }

  /** Remote media (not from `localServer`) not accessed since `beforeTs`, oldest first. */
  async remoteNotAccessedSince(localServer: string, beforeTs: number, limit: number): Promise<Array<{ serverName: string; mediaId: string }>> {
    const rows = await this.db
      .selectFrom('media')
      .select(['server_name', 'media_id'])
      .where('server_name', '!=', localServer)
      .where('last_access_ts', '<', beforeTs)
      .orderBy('last_access_ts')
      .limit(limit)
      .execute();
    return rows.map((r) => ({ serverName: r.server_name, mediaId: r.media_id }));
  }

  /** Whether any media or thumbnail still refers to the content with this hash. */
  async hashInUse(sha256: string): Promise<boolean> {
    const m = await this.db.selectFrom('media').select('media_id').where('sha256', '=', sha256).limit(1).executeTakeFirst();
    if (m) return true;
    const t = await this.db.selectFrom('media_thumbnails').select('media_id').where('sha256', '=', sha256).limit(1).executeTakeFirst();
    return t !== undefined;
  }

  async getThumbnail(serverName: string, mediaId: string, width: number, height: number, method: string, animated: boolean): Promise<ThumbnailRow | undefined> {
    const r = await this.db
      .selectFrom('media_thumbnails')
      .selectAll()
      .where('server_name', '=', serverName)
      .where('media_id', '=', mediaId)
      .where('width', '=', width)
      .where('height', '=', height)
      .where('method', '=', method)
      .where('animated', '=', animated ? 1 : 0)
      .executeTakeFirst();
    return r ? thumbRow(r) : undefined;
  }

  async listThumbnails(serverName: string, mediaId: string): Promise<ThumbnailRow[]> {
    const rows = await this.db.selectFrom('media_thumbnails').selectAll().where('server_name', '=', serverName).where('media_id', '=', mediaId).execute();
    return rows.map(thumbRow);
  }

  /** Records a generated thumbnail (a concurrent identical one is kept as is). */
  async putThumbnail(serverName: string, mediaId: string, t: ThumbnailRow, createdTs: number): Promise<void> {
    await this.database.transaction(async ({ db }) => {
      const existing = await db
        .selectFrom('media_thumbnails')
        .select('sha256')
        .where('server_name', '=', serverName)
        .where('media_id', '=', mediaId)
        .where('width', '=', t.width)
        .where('height', '=', t.height)
        .where('method', '=', t.method)
        .where('animated', '=', t.animated ? 1 : 0)
        .executeTakeFirst();
      if (existing) return;
      await db
        .insertInto('media_thumbnails')
        .values({
          server_name: serverName,
          media_id: mediaId,
          width: t.width,
          height: t.height,
          method: t.method,
          animated: t.animated ? 1 : 0,
          content_type: t.contentType,
          size: t.size,
          sha256: t.sha256,
          created_ts: createdTs,
        })
        .execute();
    });
  }
}

function thumbRow(r: MediaThumbnailsTable): ThumbnailRow {
  return {
    width: r.width,
    height: r.height,
    method: r.method === 'crop' ? 'crop' : 'scale',
    animated: r.animated !== 0,
    contentType: r.content_type,
    size: r.size,
    sha256: r.sha256,
  };
}

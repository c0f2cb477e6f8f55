import type { Generated } from 'kysely';

export interface MediaTable {
  server_name: string;
  media_id: string;
  uploader: string | null;
  content_type: string | null;
  filename: string | null;
  size: number | null;
  sha256: string | null;
  created_ts: number;
  unused_expires_ts: number | null;
  last_access_ts: number;
  quarantined: Generated<number>;
  authenticated_only: Generated<number>;
}

export interface MediaThumbnailsTable {
  server_name: string;
  media_id: string;
  width: number;
  height: number;
  method: string;
  animated: number;
  content_type: string;
  size: number;
  sha256: string;
  created_ts: number;
}

export interface MediaTables {
  media: MediaTable;
  media_thumbnails: MediaThumbnailsTable;
}

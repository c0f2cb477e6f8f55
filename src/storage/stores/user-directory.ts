import { sql } from 'kysely';
import type { Database } from '../db.js';

/** Escapes LIKE wildcards; used with `escape '\'`. */
function likeEscape(s: string): string {
  return s.replace(/[\\%_]/g, (c) => `\\${c}`);
}

export interface RoomPeerRow {
  user_id: string;
  /** The member event (PDU JSON) that makes the user joined. */
  json: string;
}

/**
 * Users of other servers for the user directory: those joined to a room the searching user is
 * joined to or to a room published in the room directory, read from the rooms' current state.
 */
export class UserDirectoryStore {
  constructor(private readonly database: Database) {}

  /**
   * Joined members of other servers (user ID not ending in `:<localServer>`) of a room `userId`
   * is joined to or of a room in the room directory, whose user ID or member event contains
   * `term` (case-insensitive for ASCII). One row per room and user, ordered by user ID; at most
   * `limit` rows. The member event match is a pre-filter: callers check the display name
   * themselves.
   */
  async roomPeersMatching(userId: string, localServer: string, term: string, limit: number): Promise<RoomPeerRow[]> {
    const pattern = `%${likeEscape(term.toLowerCase())}%`;
    const local = `%:${likeEscape(localServer)}`;
    const db = this.database.db;
    const shared = db
      .selectFrom('current_state as mine')
      .select('mine.room_id')
      .where('mine.type', '=', 'm.room.member')
      .where('mine.state_key', '=', userId)
      .where('mine.membership', '=', 'join');
    const published = db.selectFrom('rooms').select('rooms.room_id').where('rooms.is_public', '=', 1);
    return db
      .selectFrom('current_state as peer')
      .innerJoin('events as e', 'e.event_id', 'peer.event_id')
      .select(['peer.state_key as user_id', 'e.json as json'])
      .where((eb) => eb.or([eb('peer.room_id', 'in', shared), eb('peer.room_id', 'in', published)]))
      .where('peer.type', '=', 'm.room.member')
      .where('peer.membership', '=', 'join')
      .where(sql<boolean>`peer.state_key not like ${local} escape '\\'`)
      .where(sql<boolean>`(lower(peer.state_key) like ${pattern} escape '\\' or lower(e.json) like ${pattern} escape '\\')`)
      .orderBy('peer.state_key')
      .limit(limit)
      .execute();
  }
}

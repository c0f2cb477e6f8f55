import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { isJsonObject } from '../../protocol/json.js';
import { UserDirectoryStore } from '../../storage/stores/user-directory.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

type DirectoryEntry = { user_id: string; display_name?: string; avatar_url?: string };

/** Most member rows read for one search (a user shares several rooms with the searcher). */
const MAX_PEER_ROWS = 500;

/**
 * POST /user_directory/search: local, active users whose ID or display name contains the term,
 * then users of other servers who share a joined room with the searcher or are joined to a room
 * in the room directory (their display name and avatar as their member event gives them).
 */
export function registerUserDirectory(app: HttpApp, ctx: AppContext): void {
  const peers = new UserDirectoryStore(ctx.database);
  for (const prefix of V3) {
    app.post(
      `${prefix}/user_directory/search`,
      { schema: { body: Type.Object({ search_term: Type.String(), limit: Type.Optional(Type.Integer({ minimum: 0 })) }) } },
      async (req) => {
        const me = await requireUser(ctx, req);
        const limit = Math.min(req.body.limit ?? 10, 100);
        const term = req.body.search_term.trim();
        if (term === '' || limit === 0) return { limited: false, results: [] };
        const local = await ctx.accounts.searchUsers(term, limit);
        const room = limit - local.results.length;
        if (room <= 0) return local;
        const remote = remoteMatches(
          await peers.roomPeersMatching(me.userId, ctx.config.server_name, term, Math.min(MAX_PEER_ROWS, (limit + 1) * 5)),
          term,
        );
        return { limited: local.limited || remote.length > room, results: [...local.results, ...remote.slice(0, room)] };
      },
    );
  }
}

/** One entry per user whose ID or display name contains `term`, from their member events. */
export function remoteMatches(rows: Array<{ user_id: string; json: string }>, term: string): DirectoryEntry[] {
  const needle = term.toLowerCase();
  const byUser = new Map<string, DirectoryEntry>();
  for (const row of rows) {
    let content: unknown;
    try {
      const pdu: unknown = JSON.parse(row.json);
      content = isJsonObject(pdu) ? pdu['content'] : undefined;
    } catch {
      continue;
    }
    const displayName = isJsonObject(content) && typeof content['displayname'] === 'string' ? content['displayname'] : undefined;
    const avatarUrl = isJsonObject(content) && typeof content['avatar_url'] === 'string' ? content['avatar_url'] : undefined;
    if (!row.user_id.toLowerCase().includes(needle) && !(displayName ?? '').toLowerCase().includes(needle)) continue;
    const seen = byUser.get(row.user_id);
    if (seen && seen.display_name !== undefined) continue;
    byUser.set(row.user_id, {
      user_id: row.user_id,
      ...(displayName !== undefined ? { display_name: displayName } : {}),
      ...(avatarUrl !== undefined ? { avatar_url: avatarUrl } : {}),
    });
  }
  return [...byUser.values()];
}

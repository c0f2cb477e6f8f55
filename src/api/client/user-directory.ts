import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../app.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

/**
 * POST /user_directory/search: local, active users whose ID or display name contains the term.
 * Every local user is searchable for now; limiting results to users who share a room or sit in
 * public rooms (the spec's default) comes with room membership.
 */
export function registerUserDirectory(app: HttpApp, ctx: AppContext): void {
  for (const prefix of V3) {
    app.post(
      `${prefix}/user_directory/search`,
      { schema: { body: Type.Object({ search_term: Type.String(), limit: Type.Optional(Type.Integer({ minimum: 0 })) }) } },
      async (req) => {
        await requireUser(ctx, req);
        const limit = Math.min(req.body.limit ?? 10, 100);
        const term = req.body.search_term.trim();
        if (term === '' || limit === 0) return { limited: false, results: [] };
        return ctx.accounts.searchUsers(term, limit);
      },
    );
  }
}

import type { AppContext } from '../../app.js';
import { DEFAULT_ROOM_VERSION, ROOM_VERSIONS } from '../../protocol/room-versions.js';
import { requireUser } from '../auth.js';
import type { HttpApp } from '../http.js';
import { V3 } from './paths.js';

/** GET /capabilities. */
export function registerCapabilities(app: HttpApp, ctx: AppContext): void {
  const available: Record<string, 'stable' | 'unstable'> = {};
  for (const id of ROOM_VERSIONS.keys()) available[id] = 'stable';
  for (const prefix of V3) {
    app.get(`${prefix}/capabilities`, async (req) => {
      const user = await requireUser(ctx, req);
      return {
        capabilities: {
          'm.change_password': { enabled: true },
          'm.room_versions': { default: DEFAULT_ROOM_VERSION, available },
          'm.set_displayname': { enabled: true },
          'm.set_avatar_url': { enabled: true },
          'm.3pid_changes': { enabled: false },
          'm.get_login_token': { enabled: true },
          // Every profile field may be set (PUT /profile/{userId}/{keyName}), within the size limit.
          'm.profile_fields': { enabled: true },
          // Leaving a room does not forget it.
          'm.forget_forced_upon_leave': { enabled: false },
          // Server administrators may suspend and lock local users (/_matrix/client/v1/admin/…).
          ...(user.isAdmin ? { 'm.account_moderation': { suspend: true, lock: true } } : {}),
        },
      };
    });
  }
}

import type { AppContext } from '../../app.js';

/**
 * Connects account changes to rooms and sync: profile changes update member events,
 * deactivation leaves every room, account data and presence wake /sync.
 */
export function wireRoomHooks(ctx: AppContext): void {
  const log = ctx.log.child({ subsystem: 'rooms' });

  ctx.accounts.hooks.onProfileChanged.push(async (userId, profile) => {
    for (const { roomId } of await ctx.eventStore.roomsForUser(userId, ['join'])) {
      try {
        const current = await ctx.eventStore.getCurrentStateEvent(roomId, 'm.room.member', userId);
        const content = { ...(current?.event.content ?? {}), membership: 'join' } as Record<string, unknown>;
        if (profile.displayname) content['displayname'] = profile.displayname;
        else delete content['displayname'];
        if (profile.avatar_url) content['avatar_url'] = profile.avatar_url;
        else delete content['avatar_url'];
        delete content['reason'];
        await ctx.roomEvents.send({ roomId, type: 'm.room.member', sender: userId, stateKey: userId, content: content as never });
      } catch (err) {
        log.warn({ err, roomId, userId }, 'could not update the member event after a profile change');
      }
    }
  });

  ctx.accounts.hooks.onUserDeactivated.push(async (userId) => {
    for (const { roomId } of await ctx.eventStore.roomsForUser(userId, ['join', 'invite', 'knock'])) {
      try {
        await ctx.rooms.setMembership(userId, roomId, userId, 'leave');
      } catch (err) {
        log.warn({ err, roomId, userId }, 'could not leave a room of a deactivated user');
      }
    }
  });

  ctx.streams.on('account_data', (userId, position, roomId) => {
    ctx.notifier.publish({ stream: 'account_data', position, userId, roomId: roomId ?? undefined }, [userId]);
  });
  ctx.streams.on('presence', (userId, position) => {
    // Announced as it commits (sync follows stream positions from the notifier, so a token
    // handed out after the write includes it); the users sharing a room are woken once known.
    ctx.notifier.publish({ stream: 'presence', position, userId }, [userId]);
    void (async () => {
      const wake = new Set<string>();
      for (const { roomId } of await ctx.eventStore.roomsForUser(userId, ['join'])) {
        for (const m of await ctx.eventStore.members(roomId)) if (m !== userId) wake.add(m);
      }
      ctx.notifier.wake(wake);
    })().catch((err: unknown) => log.warn({ err }, 'presence notification failed'));
  });
}

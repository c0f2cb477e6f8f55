import type { AppContext } from '../app.js';
import type { JsonObject } from '../protocol/json.js';

/**
 * Feeds typing notifications, public read receipts and presence to the application services
 * that asked for ephemeral data (application-service-api "Pushing ephemeral data"). Private
 * read receipts are not forwarded.
 */
export function wireAppServiceEphemeral(ctx: AppContext): void {
  const wanted = ctx.appservices.services.some((s) => s.reg.receiveEphemeral && s.reg.url !== null);
  if (!wanted) return;
  const log = ctx.log.child({ subsystem: 'appservice' });
  const push = (edu: JsonObject) => ctx.appservices.pushEphemeral(edu).catch((err: unknown) => log.warn({ err }, 'could not queue ephemeral data'));
  ctx.notifier.on('change', (change) => {
    if (change.stream === 'typing') {
      void push({ type: 'm.typing', room_id: change.roomId, content: { user_ids: ctx.typing.typing(change.roomId) } });
    } else if (change.stream === 'receipts') {
      void (async () => {
        const rows = await ctx.receipts.store.between(change.position - 1, change.position);
        for (const r of rows) {
          if (r.receiptType !== 'm.read' || r.roomId !== change.roomId) continue;
          const data = { ...r.data } as JsonObject;
          if (r.threadId !== '') data['thread_id'] = r.threadId;
          await push({ type: 'm.receipt', room_id: r.roomId, content: { [r.eventId]: { 'm.read': { [r.userId]: data } } } });
        }
      })().catch((err: unknown) => log.warn({ err }, 'could not read a receipt for application services'));
    }
  });
  ctx.streams.on('presence', (userId: string) => {
    void (async () => {
      const status = await ctx.userData.getPresence(userId);
      await push({ type: 'm.presence', sender: userId, content: { ...status } as JsonObject });
    })().catch((err: unknown) => log.warn({ err }, 'could not read presence for application services'));
  });
}

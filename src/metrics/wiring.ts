/**
 * Connects the federation and application-service metrics to those subsystems once the whole
 * context exists: the outgoing federation sender reports each transaction, joins over federation
 * report the progress of storing the room's state, and the queue gauges read the senders'
 * in-memory counts when scraped.
 */
import type { AppContext } from '../app.js';

export function wireSubsystemMetrics(ctx: Pick<AppContext, 'metrics' | 'federationRooms' | 'appservices'>): void {
  const { metrics } = ctx;
  const sender = ctx.federationRooms.sender;
  sender.observer = {
    transaction(result, pdus) {
      metrics.federationTxnOut.inc({ result });
      if (result === 'ok' && pdus > 0) metrics.federationPdusOut.inc(pdus);
    },
  };
  ctx.federationRooms.rooms.joinObserver = (p) => {
    metrics.federationJoinProgress.set({ phase: 'received' }, p.received);
    metrics.federationJoinProgress.set({ phase: 'checked' }, p.checked);
    metrics.federationJoinProgress.set({ phase: 'persisted' }, p.persisted);
    metrics.federationJoinProgress.set({ phase: 'done' }, p.done ? 1 : 0);
  };
  metrics.source(metrics.federationQueueDepth, () => sender.queueDepth);
  metrics.source(metrics.federationBackoffDestinations, () => sender.backoffDestinations());
  metrics.source(metrics.appserviceQueueDepth, () => ctx.appservices.queueDepth);
}

import { createRequire } from 'node:module';
import type { Config } from '../config/schema.js';
import type { Database } from '../storage/db.js';
import { StatsStore } from '../storage/stores/stats.js';
import type { Notifier } from '../streams/notifier.js';
import { Metrics } from './registry.js';

export { Metrics, eventClass, EVENT_CLASSES, PREFIX, type EventClass, type ServerCounts } from './registry.js';
export { instrumentHttp, registerMetricsEndpoint } from './http.js';

/** A user counts as online when one of their devices was seen this recently. */
export const ONLINE_WINDOW_MS = 5 * 60_000;

export const VERSION: string = (createRequire(import.meta.url)('../../package.json') as { version: string }).version;

/** The part of the AppContext for metrics. */
export interface MetricsContext {
  readonly metrics: Metrics;
}

/**
 * Builds the metrics registry and wires the one place business events are counted: the
 * notifier's change stream (every persisted event passes there), and the database's query
 * observer.
 */
export function createMetricsServices(config: Config, database: Database, notifier: Notifier): MetricsContext {
  const stats = new StatsStore(database);
  const metrics = new Metrics({
    version: VERSION,
    topRooms: config.metrics.top_rooms,
    counts: () => stats.counts(Date.now() - ONLINE_WINDOW_MS),
    syncWaiting: () => notifier.waiting,
  });
  notifier.on('change', (change) => {
    if (change.stream === 'events') metrics.eventPersisted(change.roomId, change.type, change.stateKey);
  });
  database.observeQueries((kind, ms, ok) => metrics.dbQuery(kind, ms, ok));
  return { metrics };
}

import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics/registry.js';
import { StatsSampler } from './sampler.js';

export { registerStats, STATS_PATH } from './routes.js';
export { StatsSampler, type StatsSample } from './sampler.js';

/** The part of the AppContext for the live stats page: its sampler (idle until someone watches). */
export interface StatsContext {
  readonly stats: StatsSampler;
}

export function createStatsServices(config: Config, metrics: Metrics): StatsContext {
  return { stats: new StatsSampler(metrics, { intervalMs: config.stats.interval_ms, historySize: config.stats.history }) };
}

/** Exponential back-off with jitter, for reconnecting forever without a thundering herd. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** A number in [0, 1); Math.random by default. */
  random?: () => number;
}

/**
 * The delay before retry number `attempt` (0 for the first retry): the ceiling grows as
 * initial × factor^attempt up to maxMs, and the delay is drawn in [ceiling/2, ceiling) so
 * that boxes which lost their link together do not all come back in the same second.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions): number {
  const factor = opts.factor ?? 2;
  const exp = Math.min(Math.max(0, attempt), 60);
  const ceiling = Math.min(opts.maxMs, opts.initialMs * factor ** exp);
  const r = (opts.random ?? Math.random)();
  return Math.max(1, Math.floor(ceiling / 2 + (r * ceiling) / 2));
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration in milliseconds from a number (already ms) or a string such as "90s", "1h", "7d". */
export function parseDuration(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^([0-9]+)\s*(ms|s|m|h|d)$/.exec(v.trim());
  if (!m) throw new Error(`Invalid duration ${JSON.stringify(v)}: use milliseconds or a number with ms, s, m, h or d`);
  return Number(m[1]) * DURATION_UNITS[m[2]!]!;
}

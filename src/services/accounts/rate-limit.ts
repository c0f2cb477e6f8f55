import { MatrixError } from '../../errors.js';

export interface RateLimitConfig {
  /** Tokens added per second. */
  per_second: number;
  /** Bucket size: how many requests may come at once. */
  burst: number;
}

/**
 * Token buckets per key (e.g. client IP), in memory. The map is bounded: when full, the
 * least recently used bucket is dropped (a dropped key starts again with a full bucket).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly cfg: RateLimitConfig,
    private readonly maxKeys = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes one token for `key`, or throws 429 M_LIMIT_EXCEEDED with `retry_after_ms`. */
  take(key: string): void {
    const now = this.now();
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key);
      b.tokens = Math.min(this.cfg.burst, b.tokens + ((now - b.at) / 1000) * this.cfg.per_second);
      b.at = now;
    } else {
      b = { tokens: this.cfg.burst, at: now };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    const retryAfterMs = this.cfg.per_second > 0 ? Math.ceil(((1 - b.tokens) / this.cfg.per_second) * 1000) : 60_000;
    throw new MatrixError('M_LIMIT_EXCEEDED', 429, 'Too many requests', { retry_after_ms: retryAfterMs });
  }

  get size(): number {
    return this.buckets.size;
  }
}

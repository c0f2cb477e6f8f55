/**
 * At most `limit` /sync responses are built at once; the others wait in arrival order.
 *
 * Under load every committed message wakes each member's long-poll. Building all of them at
 * once interleaves hundreds of query chains (each await yields to the others), so every one of
 * them, and every send, takes as long as all of them together. Waiting for a slot instead lets
 * the events that commit meanwhile join the waiting responses, so the number of responses
 * follows what the server can build, not the number of messages. With nothing waiting, a
 * build starts at once.
 */
export class BuildSlots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next waiter (the count stays).
      if (next) next();
      else this.active--;
    }
  }

  /** Responses waiting for a slot (for metrics and tests). */
  get queued(): number {
    return this.waiting.length;
  }
}

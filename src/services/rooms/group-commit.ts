import type { Database, Tx } from '../../storage/db.js';

interface Job {
  write: (tx: Tx) => Promise<unknown>;
  /** Runs alone, outside the shared transactions (it manages its own). */
  exclusive?: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: writes submitted while a commit is in progress are gathered and committed
 * together in the next transaction, so many rooms' events share one disk sync (milliseconds on
 * a small board's storage). The next batch starts once the previous one is durable: the events
 * of many requests then arrive in each batch, and each long-poll they wake finds several.
 *
 * Writes run one after another, in submission order, each seeing the previous ones; positions
 * allocated inside them therefore follow commit order. Post-commit hooks run in order after the
 * shared commit, before the callers' promises resolve. If any write of a batch fails, the batch
 * is rolled back and each of its writes is retried in a transaction of its own, so one bad
 * write fails alone.
 */
export class GroupCommitter {
  private queue: Job[] = [];
  private running = false;

  constructor(
    private readonly database: Database,
    private readonly maxBatch = 100,
  ) {}

  /** Runs `write` in a transaction shared with other writes submitted meanwhile. */
  submit<T>(write: (tx: Tx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ write, resolve: resolve as (v: unknown) => void, reject });
      if (!this.running) void this.drain();
    });
  }

  /**
   * Runs `fn` (which commits its own transactions) between batches, with no shared commit in
   * progress: writers elsewhere get positions in commit order too.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const job: Job = { write: () => Promise.reject(new Error('exclusive job')), exclusive: fn, resolve: resolve as (v: unknown) => void, reject };
      this.queue.push(job);
      if (!this.running) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const first = this.queue[0]!;
        if (first.exclusive) {
          this.queue.shift();
          try {
            first.resolve(await first.exclusive());
          } catch (err) {
            first.reject(err);
          }
          continue;
        }
        let n = 0;
        while (n < this.queue.length && n < this.maxBatch && !this.queue[n]!.exclusive) n++;
        const batch = this.queue.splice(0, n);
        await this.commit(batch);
      }
    } finally {
      this.running = false;
    }
  }

  private async commit(batch: Job[]): Promise<void> {
    if (batch.length > 1) {
      let results: unknown[] | undefined;
      try {
        results = await this.database.transaction(async (tx) => {
          const out: unknown[] = [];
          for (const job of batch) out.push(await job.write(tx));
          return out;
        });
      } catch {
        results = undefined; // retried one by one below
      }
      if (results) {
        batch.forEach((job, i) => job.resolve(results[i]));
        return;
      }
    }
    for (const job of batch) {
      try {
        job.resolve(await this.database.transaction((tx) => job.write(tx)));
      } catch (err) {
        job.reject(err);
      }
    }
  }
}

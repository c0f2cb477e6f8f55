import type { Database, Tx } from '../../storage/db.js';
import type { DeferringTx } from '../../storage/stores/events.js';

interface Job {
  write: (tx: DeferringTx) => Promise<unknown>;
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
 *
 * Writes may leave rows to the end of their transaction (`DeferringTx.deferred`): they are
 * written after the batch's last write, before the commit, with a few multi-row statements.
 * A failure there fails the batch like a failing write (each is then retried alone).
 */
export class GroupCommitter {
  private queue: Job[] = [];
  private running = false;

  constructor(
    private readonly database: Database,
    private readonly maxBatch = 100,
  ) {}

  /** Runs `write` in a transaction shared with other writes submitted meanwhile. */
  submit<T>(write: (tx: DeferringTx) => Promise<T>): Promise<T> {
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
          const batchTx = new BatchTx(tx);
          const out: unknown[] = [];
          for (const job of batch) out.push(await job.write(batchTx));
          await batchTx.flush();
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
        job.resolve(
          await this.database.transaction(async (tx) => {
            const batchTx = new BatchTx(tx);
            const out = await job.write(batchTx);
            await batchTx.flush();
            return out;
          }),
        );
      } catch (err) {
        job.reject(err);
      }
    }
  }
}

/** One attempt at a batch's transaction: the writes' deferred rows, flushed before the commit. */
class BatchTx implements DeferringTx {
  private readonly pending = new Map<object, { state: unknown; flush: (tx: Tx, state: unknown) => Promise<void> }>();

  constructor(private readonly tx: Tx) {}

  get db(): Tx['db'] {
    return this.tx.db;
  }

  onCommit(hook: () => void): void {
    this.tx.onCommit(hook);
  }

  deferred<S>(key: object, init: () => S, flush: (tx: Tx, state: S) => Promise<void>): S {
    let p = this.pending.get(key);
    if (!p) {
      p = { state: init(), flush: flush as (tx: Tx, state: unknown) => Promise<void> };
      this.pending.set(key, p);
    }
    return p.state as S;
  }

  async flush(): Promise<void> {
    for (const [key, p] of this.pending) {
      this.pending.delete(key);
      await p.flush(this.tx, p.state);
    }
  }
}

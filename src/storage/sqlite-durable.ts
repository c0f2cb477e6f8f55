/**
 * SQLite commits made durable off the event loop.
 *
 * With `synchronous = FULL`, SQLite syncs the write-ahead log inside every COMMIT, and
 * better-sqlite3 runs that on the main thread: the whole server stops for the disk (≈ 5 ms a
 * commit on a small board's storage). Here the connection runs with `synchronous = OFF` (SQLite
 * only writes the log to the OS) and the log file is synced by `fdatasync` on libuv's thread pool
 * after each commit. The caller's promise, and so every reply and notification that depends on
 * the write, waits for that sync, so what was acknowledged is on disk exactly as with FULL; the
 * event loop keeps serving other requests meanwhile, and commits made during one sync share the
 * next.
 *
 * Checkpoints (copying the log back into the database file) run every few seconds while commits
 * happen, holding the connection: the log is synced first (off the event loop), so no page of an
 * unsynced commit reaches the database file; SQLite copies the pages without syncing; then the
 * database file is synced off the event loop too, before the connection is released, so the log
 * is never reused from its start (by the next write) while the copies could still be lost.
 * Reads, timers and requests go on meanwhile; only writers wait. Closing checkpoints with
 * SQLite's own syncs (`synchronous = FULL`).
 */
import { closeSync, fdatasync, fsync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { type CompiledQuery, type DatabaseConnection, type Driver, type QueryResult, type TransactionSettings } from 'kysely';
import type { QueryCompiler } from 'kysely';

const WRITE_KINDS = new Set(['InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode', 'MergeQueryNode']);

/** What the driver needs of a better-sqlite3 connection. */
export interface RawSqlite {
  readonly inTransaction: boolean;
  pragma(source: string): unknown;
}

function datasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

function fsyncPath(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      reject(err as Error);
      return;
    }
    fsync(fd, (err) => {
      closeSync(fd);
      if (err) reject(err);
      else resolve();
    });
  });
}

/**
 * Syncs one SQLite database's write-ahead log; calls made while a sync runs share the next one
 * (it starts when the running one ends, so it covers every write made before it was asked for).
 */
export class WalSync {
  private fd: number | undefined;
  private dbFd: number | undefined;
  private inFlight: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly dbPath: string) {}

  get walPath(): string {
    return `${this.dbPath}-wal`;
  }

  sync(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.once().finally(() => {
        this.inFlight = undefined;
      });
      return this.inFlight;
    }
    this.queued ??= this.inFlight
      .catch(() => {})
      .then(() => {
        this.queued = undefined;
        return this.sync();
      });
    return this.queued;
  }

  private async once(): Promise<void> {
    if (this.fd === undefined) {
      try {
        // Kept open while the database is: the log is created once and reused, never unlinked
        // while a connection has it open.
        this.fd = openSync(this.walPath, 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        // No log yet (nothing written through it): the database file holds everything.
        await fsyncPath(this.dbPath);
        return;
      }
      // The log's directory entry must be durable too, once.
      await fsyncPath(dirname(this.dbPath));
    }
    await datasync(this.fd);
  }

  /** Syncs the database file itself (after a checkpoint copied pages into it). */
  async syncDatabase(): Promise<void> {
    this.dbFd ??= openSync(this.dbPath, 'r');
    await datasync(this.dbFd);
  }

  async close(): Promise<void> {
    await this.inFlight?.catch(() => {});
    await this.queued?.catch(() => {});
    if (this.fd !== undefined) closeSync(this.fd);
    if (this.dbFd !== undefined) closeSync(this.dbFd);
    this.fd = undefined;
    this.dbFd = undefined;
  }
}

/**
 * Wraps Kysely's SQLite driver: after a use of the connection that committed something (a COMMIT
 * or a write outside a transaction), the connection is handed to the next user at once and the
 * releasing caller waits for the log sync. Kysely awaits `releaseConnection` before a query's or
 * transaction's promise settles, so no caller learns of a commit before it is durable.
 */
export class DurableSqliteDriver implements Driver {
  private dirty = false;
  private checkpointing = false;
  private checkpointRun: Promise<void> | undefined;
  private closed = false;
  private lastCheckpoint = performance.now();
  private readonly wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();
  private releaseWaiters: Array<() => void> = [];

  constructor(
    private readonly inner: Driver,
    private readonly raw: () => RawSqlite,
    private readonly wal: WalSync,
    private readonly checkpointEveryMs: number,
    private readonly onSyncError: (err: unknown) => void = () => {},
  ) {}

  async init(): Promise<void> {
    await this.inner.init();
    const raw = this.raw();
    raw.pragma('synchronous = OFF');
    // Checkpoints are ours (see checkpointSoon), with the database file synced.
    raw.pragma('wal_autocheckpoint = 0');
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const conn = await this.inner.acquireConnection();
    let w = this.wrapped.get(conn);
    if (!w) {
      w = {
        executeQuery: async <R>(q: CompiledQuery): Promise<QueryResult<R>> => {
          const result = await conn.executeQuery<R>(q);
          // A write (or COMMIT) run outside a transaction or ending one committed something.
          // Statements that return rows are queries, unless they are writes with RETURNING.
          if (!this.raw().inTransaction && (result.numAffectedRows !== undefined || WRITE_KINDS.has(q.query.kind))) this.dirty = true;
          return result;
        },
        streamQuery: <R>(q: CompiledQuery, chunkSize?: number) => conn.streamQuery<R>(q, chunkSize),
      };
      this.wrapped.set(conn, w);
    }
    return w;
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.inner.beginTransaction(connection, settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.commitTransaction(connection);
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.inner.rollbackTransaction(connection);
  }

  savepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.inner.savepoint!(connection, name, compile);
  }

  rollbackToSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.inner.rollbackToSavepoint!(connection, name, compile);
  }

  releaseSavepoint(connection: DatabaseConnection, name: string, compile: QueryCompiler['compileQuery']): Promise<void> {
    return this.inner.releaseSavepoint!(connection, name, compile);
  }

  async releaseConnection(connection: DatabaseConnection): Promise<void> {
    const committed = this.dirty && !this.raw().inTransaction;
    if (committed) this.dirty = false;
    await this.inner.releaseConnection(connection);
    if (this.releaseWaiters.length) for (const w of this.releaseWaiters.splice(0)) w();
    if (!committed) return;
    try {
      await this.wal.sync();
    } catch (err) {
      this.onSyncError(err);
      throw err;
    }
    this.checkpointSoon();
  }

  /**
   * Resolves when the connection is next released, before that use's log sync: a caller that
   * holds the connection learns when its commit is done and the next writer may start.
   */
  nextRelease(): Promise<void> {
    return new Promise((resolve) => this.releaseWaiters.push(resolve));
  }

  /**
   * Copies the log into the database file, with both files synced, at most every
   * `checkpointEveryMs` while commits happen (the log file is reused from its start after a
   * complete checkpoint, so its size says nothing of what is new in it). The event loop is
   * blocked only for SQLite's copying; the syncs run on libuv's thread pool while the
   * connection is held (see the module comment).
   */
  private checkpointSoon(): void {
    if (this.closed || this.checkpointing || performance.now() - this.lastCheckpoint < this.checkpointEveryMs) return;
    this.checkpointing = true;
    this.checkpointRun = (async () => {
      const conn = await this.inner.acquireConnection();
      try {
        // A transaction in progress is left alone (next time).
        if (this.closed || this.raw().inTransaction) return;
        // Every commit's frames are on disk before any page of theirs is copied.
        await this.wal.sync();
        if (this.closed) return;
        this.raw().pragma('wal_checkpoint(PASSIVE)');
        // The copies are on disk before the next write may reuse the log.
        await this.wal.syncDatabase();
      } catch (err) {
        if (!this.closed) this.onSyncError(err);
      } finally {
        this.lastCheckpoint = performance.now();
        this.checkpointing = false;
        await this.inner.releaseConnection(conn);
      }
    })();
  }

  async destroy(): Promise<void> {
    this.closed = true;
    await this.checkpointRun;
    try {
      const raw = this.raw();
      // The checkpoint SQLite runs on close then syncs the database file before removing the log.
      raw.pragma('synchronous = FULL');
      raw.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Closing anyway: the log stays and is replayed at the next start.
    }
    await this.wal.close();
    await this.inner.destroy();
  }
}

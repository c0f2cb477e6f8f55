import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Kysely, PostgresDialect, sql, SqliteAdapter, SqliteDialect, type DialectAdapter, type Driver, type LogEvent, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Dialect } from './dialect.js';
import { migrateToLatest } from './migrate.js';
import { DurableSqliteDriver, WalSync, type RawSqlite } from './sqlite-durable.js';
import { queryKind, runDirectly, type DirectConnection } from './sqlite-direct.js';
import type { Tables } from './schema.js';

export type DatabaseConfig = Config['database'];

/** A write transaction, with hooks that run only after it commits. */
export interface Tx {
  readonly db: Transaction<Tables>;
  onCommit(hook: () => void): void;
}

/** Called after every query with its kind (select, insert, update, delete, raw, other), duration and outcome. */
export type QueryObserver = (kind: string, durationMs: number, ok: boolean) => void;

interface QueryHooks {
  observer?: QueryObserver;
}

function queryLogger(hooks: QueryHooks): (event: LogEvent) => void {
  return (event) => {
    const observer = hooks.observer;
    if (!observer) return;
    observer(queryKind(event.query.query.kind), event.queryDurationMillis, event.level === 'query');
  };
}

/** A transaction waiting to join the next shared SQLite commit. */
interface PendingTransaction {
  fn: (tx: Tx) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** The most transactions that share one SQLite commit. */
const MAX_SHARED_TRANSACTIONS = 200;

// Captured at load: batches are gathered on the real event loop even where timers are faked.
const nextTurn: (fn: () => void) => void = globalThis.setImmediate.bind(globalThis);
const realSetTimeout: (fn: () => void, ms: number) => unknown = globalThis.setTimeout.bind(globalThis);

/** A commit that starts within this long of the previous one's end counts as "under load". */
const BUSY_WITHIN_MS = 20;
/** Under load, a batch smaller than this waits up to `commitGatherMs` for more transactions. */
const GATHER_BELOW = 64;

/** The server's database: a Kysely instance over SQLite or PostgreSQL. */
export class Database {
  private readonly pending: PendingTransaction[] = [];
  private draining = false;
  private lastCommitEnd = 0;

  constructor(
    readonly dialect: Dialect,
    readonly db: Kysely<Tables>,
    private readonly log: Logger,
    private readonly hooks: QueryHooks = {},
    /** SQLite: how long a shared commit may wait for more transactions while commits follow each other. */
    private readonly commitGatherMs = 0,
    /** SQLite with commits synced off the event loop: tells when a commit released the connection. */
    private readonly durable?: DurableSqliteDriver,
    /** SQLite: the connection, for transactions' queries run on it directly (see sqlite-direct.ts). */
    private readonly connection?: () => DirectConnection | undefined,
  ) {}

  /** A transaction's queries run on the SQLite connection directly while it holds it. */
  private directly(trx: Transaction<Tables>): Transaction<Tables> {
    if (this.connection) runDirectly(trx.getExecutor(), this.connection, true, () => this.hooks.observer);
    return trx;
  }

  /** Sets the one observer of query durations (metrics). */
  observeQueries(observer: QueryObserver | undefined): void {
    this.hooks.observer = observer;
  }

  /**
   * Runs `fn` in one transaction. Hooks registered with `tx.onCommit` run after the commit
   * (never if it rolls back), so notifications never announce unwritten data.
   *
   * On SQLite (one connection; with synchronous=FULL each commit is followed by a disk sync,
   * run off the event loop by sqlite-durable.ts) transactions requested in the same turn of the
   * event loop, or while a commit is in progress, share one commit: each runs in order inside its own savepoint, so one that fails is
   * rolled back alone and rejects alone; the others commit together. Each caller's promise
   * resolves (after its hooks ran) only once the shared commit is durable. While commits follow
   * each other (under load), a small batch may wait up to `database.commit_gather_ms` (off by
   * default) for more, so more transactions share each disk sync; an isolated write never waits.
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    if (this.dialect !== 'sqlite') return this.transactionAlone(fn);
    return new Promise<T>((resolve, reject) => {
      this.pending.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.draining) {
        this.draining = true;
        nextTurn(() => void this.drain());
      }
    });
  }

  private async transactionAlone<T>(fn: (tx: Tx) => Promise<T>, released?: () => void): Promise<T> {
    const hooks: Array<() => void> = [];
    const result = await this.db.transaction().execute(async (trx) => {
      const value = await fn({ db: this.directly(trx), onCommit: (h) => hooks.push(h) });
      // The next release of the connection is this transaction's, after its COMMIT.
      if (released) void this.durable!.nextRelease().then(released);
      return value;
    });
    this.runHooks(hooks);
    return result;
  }

  private runHooks(hooks: Array<() => void>): void {
    for (const hook of hooks) {
      try {
        hook();
      } catch (err) {
        this.log.error({ err }, 'post-commit hook failed');
      }
    }
  }

  /**
   * Commits what is pending, one batch per turn of the event loop: waiting for the next turn
   * lets requests whose input arrived meanwhile join the batch, and keeps a chain of writes
   * triggered by commits (each resolving without I/O) from starving everything else.
   */
  private async drain(gathered = false): Promise<void> {
    if (
      !gathered &&
      this.commitGatherMs > 0 &&
      this.pending.length < GATHER_BELOW &&
      performance.now() - this.lastCommitEnd < BUSY_WITHIN_MS
    ) {
      realSetTimeout(() => void this.drain(true), this.commitGatherMs);
      return;
    }
    try {
      const batch = this.pending.splice(0, MAX_SHARED_TRANSACTIONS);
      // With the log synced off the event loop, the next batch may commit while this one's
      // sync runs: wait only until this batch's COMMIT released the connection.
      let released: (() => void) | undefined;
      const connectionFree = this.durable ? new Promise<void>((r) => (released = r)) : undefined;
      let done: Promise<void> | undefined;
      if (batch.length === 1) {
        const job = batch[0]!;
        done = this.transactionAlone(job.fn, released).then(job.resolve, job.reject);
      } else if (batch.length > 1) {
        done = this.commitShared(batch, released);
      }
      if (done) await (connectionFree ? Promise.race([done, connectionFree]) : done);
    } finally {
      this.lastCommitEnd = performance.now();
      if (this.pending.length > 0) nextTurn(() => void this.drain());
      else this.draining = false;
    }
  }

  /** Runs a batch in one transaction, each job in a savepoint; resolves each after the commit. */
  private async commitShared(batch: PendingTransaction[], released?: () => void): Promise<void> {
    type Outcome = { ok: true; value: unknown; hooks: Array<() => void> } | { ok: false; error: unknown };
    let outcomes: Outcome[];
    try {
      outcomes = await this.db.transaction().execute(async (t) => {
        const trx = this.directly(t);
        const out: Outcome[] = [];
        for (const job of batch) {
          // One name for all: each savepoint is released before the next, and the same SQL text
          // keeps using the same prepared statements.
          const name = sql.id('myelin_sp');
          const hooks: Array<() => void> = [];
          await sql`savepoint ${name}`.execute(trx);
          try {
            const value = await job.fn({ db: trx, onCommit: (h) => hooks.push(h) });
            await sql`release ${name}`.execute(trx);
            out.push({ ok: true, value, hooks });
          } catch (error) {
            // Undo this job's writes only; a failure here aborts the whole batch (retried below).
            await sql`rollback to ${name}`.execute(trx);
            await sql`release ${name}`.execute(trx);
            out.push({ ok: false, error });
          }
        }
        if (released) void this.durable!.nextRelease().then(released);
        return out;
      });
    } catch {
      // The shared transaction itself failed: every job gets a transaction of its own.
      for (const job of batch) await this.transactionAlone(job.fn).then(job.resolve, job.reject);
      return;
    }
    batch.forEach((job, i) => {
      const o = outcomes[i]!;
      if (o.ok) {
        this.runHooks(o.hooks);
        job.resolve(o.value);
      } else {
        job.reject(o.error);
      }
    });
  }

  async close(): Promise<void> {
    await this.db.destroy();
  }
}


/** SQLite runs DDL inside transactions, so a failed migration leaves nothing half-applied. */
class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

class MyelinSqliteDialect extends SqliteDialect {
  constructor(
    config: ConstructorParameters<typeof SqliteDialect>[0],
    /** With `synchronous = FULL`: commits synced off the event loop (see sqlite-durable.ts). */
    private readonly durable?: DurableSetup,
  ) {
    super(config);
  }

  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }

  override createDriver(): Driver {
    const inner = super.createDriver();
    const d = this.durable;
    if (!d) return inner;
    d.driver = new DurableSqliteDriver(inner, d.raw, d.wal, d.checkpointEveryMs, d.onSyncError);
    return d.driver;
  }
}

/**
 * The SQLite driver for this Node.js: better-sqlite3 12 on Node 20 (13 crashes there), and the
 * N-API build of better-sqlite3 13 on Node 22 and later (12's object wrappers crash on Node 24).
 */
async function loadBetterSqlite3(): Promise<{ default: typeof import('better-sqlite3') }> {
  const major = Number(process.versions.node.split('.')[0]);
  const name = major >= 22 ? 'better-sqlite3-napi' : 'better-sqlite3';
  return (await import(name)) as { default: typeof import('better-sqlite3') };
}

interface DurableSetup {
  raw: () => RawSqlite;
  wal: WalSync;
  checkpointEveryMs: number;
  onSyncError: (err: unknown) => void;
  /** Set when Kysely creates the driver. */
  driver?: DurableSqliteDriver;
}

/** While commits happen, the write-ahead log is checkpointed into the database file this often. */
const CHECKPOINT_EVERY_MS = 2000;

// Each engine's driver is loaded only when it is used, to keep the resident size small.
async function sqliteDialect(
  cfg: DatabaseConfig,
  log?: Logger,
): Promise<{ dialect: SqliteDialect; durable?: DurableSetup; connection: () => DirectConnection | undefined }> {
  const { default: BetterSqlite3 } = await loadBetterSqlite3();
  mkdirSync(dirname(cfg.path), { recursive: true });
  // FULL: every commit is durable before anyone hears of it, synced on the thread pool (the
  // connection itself runs with OFF). EXTRA: SQLite syncs inside COMMIT, on the event loop.
  // NORMAL: the log is synced only at checkpoints (a power loss may undo the latest commits).
  const background = cfg.synchronous === 'FULL';
  let raw: RawSqlite | undefined;
  let cached: DirectConnection | undefined;
  const durable: DurableSetup | undefined = background
    ? {
        raw: () => raw!,
        wal: new WalSync(cfg.path),
        checkpointEveryMs: CHECKPOINT_EVERY_MS,
        onSyncError: (err: unknown) =>
          log?.error({ err }, 'syncing the SQLite log to disk failed: the last writes may not be durable; check the disk and its free space'),
      }
    : undefined;
  const dialect = new MyelinSqliteDialect(
    {
      database: async () => {
        const conn = new BetterSqlite3(cfg.path, { timeout: cfg.busy_timeout_ms });
        conn.pragma('journal_mode = WAL');
        conn.pragma(`synchronous = ${cfg.synchronous}`);
        conn.pragma(`busy_timeout = ${cfg.busy_timeout_ms}`);
        conn.pragma('foreign_keys = ON');
        conn.pragma(`cache_size = -${cfg.cache_size_kib}`);
        raw = conn;
        const withCache = withStatementCache(conn);
        cached = withCache;
        return withCache;
      },
    },
    durable,
  );
  return { dialect, durable, connection: () => cached };
}

/** Prepared statements kept per connection (by SQL text); the least recently used are dropped. */
const STATEMENT_CACHE_SIZE = 500;

/**
 * Reuses prepared statements: Kysely prepares every query it runs, and compiling the SQL
 * costs as much as running a typical indexed lookup. Statements are only ever used one at
 * a time (the driver holds the connection for the whole query), so sharing them is safe.
 */
export function withStatementCache<S, D extends { prepare(sql: string): S; close(): unknown }>(conn: D, size = STATEMENT_CACHE_SIZE): D {
  const cache = new Map<string, S>();
  const prepare = (sql: string): S => {
    let stmt = cache.get(sql);
    if (stmt !== undefined) {
      cache.delete(sql);
    } else {
      stmt = conn.prepare(sql);
      if (cache.size >= size) cache.delete(cache.keys().next().value!);
    }
    cache.set(sql, stmt);
    return stmt;
  };
  return new Proxy(conn, {
    get(target, prop, receiver) {
      if (prop === 'prepare') return prepare;
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function postgresDialect(cfg: DatabaseConfig, log?: Logger): Promise<PostgresDialect> {
  const { default: pg } = await import('pg');
  // 64-bit integers (stream positions, millisecond timestamps) fit a JS number.
  const int8Parser = (oid: number, format?: string) =>
    oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text');
  const pool = new pg.Pool({
    connectionString: cfg.url,
    max: cfg.pool_size,
    types: { getTypeParser: int8Parser as typeof pg.types.getTypeParser },
  });
  // An idle connection dropped by the server (restart, failover, an administrator) is removed
  // from the pool and replaced on next use; without a listener it would crash the process.
  pool.on('error', (err) => log?.warn({ err: err.message }, 'a PostgreSQL connection was closed by the server; it will be replaced'));
  return new PostgresDialect({ pool });
}

/** Where a database config points, for logs (never prints a password). */
export function describeDatabase(cfg: DatabaseConfig): string {
  if (cfg.engine === 'sqlite') return `sqlite:${cfg.path}`;
  try {
    const u = new URL(cfg.url!);
    return `postgres://${u.username ? `${u.username}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return 'postgres';
  }
}

/** Opens the configured database and applies pending migrations. */
/** Opens the database without applying migrations (for read-only checks such as `myelin doctor`). */
export async function connectDatabase(cfg: DatabaseConfig): Promise<Kysely<Tables>> {
  return new Kysely<Tables>({ dialect: cfg.engine === 'sqlite' ? (await sqliteDialect(cfg)).dialect : await postgresDialect(cfg) });
}

export async function openDatabase(cfg: DatabaseConfig, log: Logger): Promise<Database> {
  const dialect: Dialect = cfg.engine;
  const hooks: QueryHooks = {};
  const sqlite = dialect === 'sqlite' ? await sqliteDialect(cfg, log) : undefined;
  const kysely = new Kysely<Tables>({
    dialect: sqlite ? sqlite.dialect : await postgresDialect(cfg, log),
    log: queryLogger(hooks),
  });
  try {
    await migrateToLatest(kysely as Kysely<unknown>, dialect, log);
  } catch (err) {
    await kysely.destroy().catch(() => {});
    throw err;
  }
  if (sqlite) runDirectly(kysely.getExecutor(), sqlite.connection, false, () => hooks.observer);
  log.info({ database: describeDatabase(cfg) }, 'database ready');
  return new Database(dialect, kysely, log, hooks, dialect === 'sqlite' ? cfg.commit_gather_ms : 0, sqlite?.durable?.driver, sqlite?.connection);
}

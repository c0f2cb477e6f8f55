/**
 * Queries run straight on the SQLite connection, without Kysely's connection plumbing.
 *
 * better-sqlite3 runs a statement synchronously, but a query through Kysely takes the
 * connection's mutex, a connection provider, a logging wrapper and the durable driver's
 * wrapper, each an `await` with its promises: about as much CPU as a small indexed lookup takes
 * in SQLite itself, and a large share of the server's short-lived garbage. Here a query's
 * executor runs it on the connection at once, where that is exactly what Kysely would do:
 *
 * - **In a transaction** (the executor of a `Transaction` this server opened): the transaction
 *   holds the connection, and every query of it runs here, so they still run in call order.
 * - **Outside transactions**: only statements that return rows and write nothing (`SELECT`),
 *   and only while no transaction is open on the connection. A read is atomic and sees what
 *   Kysely's path would see once the connection is free; writes outside transactions keep
 *   Kysely's path, where the durable driver syncs them to disk before they resolve.
 *
 * Anything else (no connection yet, a transaction of someone else open, a write) goes through
 * Kysely as before. Results have the shape Kysely's SQLite driver gives (no plugins are used).
 */
import type { CompiledQuery, QueryResult } from 'kysely';

/** A prepared statement, as better-sqlite3 gives it. */
interface Statement {
  readonly reader: boolean;
  all(params: readonly unknown[]): unknown[];
  run(params: readonly unknown[]): { changes: number; lastInsertRowid: number | bigint };
}

/** The connection, as the statement cache wraps it (see withStatementCache). */
export interface DirectConnection {
  readonly inTransaction: boolean;
  readonly open: boolean;
  prepare(sql: string): Statement;
}

/** The executor method replaced (Kysely's query executors all have it). */
interface Executor {
  executeQuery<R>(query: CompiledQuery, queryId?: unknown): Promise<QueryResult<R>>;
}

export type QueryReport = (kind: string, durationMs: number, ok: boolean) => void;

/** What a query reports for metrics: its kind, as Kysely's query log names it. */
const QUERY_KINDS: Record<string, string> = {
  SelectQueryNode: 'select',
  InsertQueryNode: 'insert',
  UpdateQueryNode: 'update',
  DeleteQueryNode: 'delete',
  RawNode: 'raw',
};

export function queryKind(nodeKind: string): string {
  return QUERY_KINDS[nodeKind] ?? 'other';
}

/**
 * Makes `executor` run queries on the connection directly where it can (see above). `inTransaction`
 * says whether the executor belongs to a transaction holding the connection.
 */
export function runDirectly(
  executor: object,
  connection: () => DirectConnection | undefined,
  inTransaction: boolean,
  report: () => QueryReport | undefined,
): void {
  const ex = executor as Executor;
  const viaKysely = ex.executeQuery.bind(ex);
  ex.executeQuery = <R>(query: CompiledQuery, queryId?: unknown): Promise<QueryResult<R>> => {
    const conn = connection();
    if (!conn || !conn.open || conn.inTransaction !== inTransaction) return viaKysely<R>(query, queryId);
    if (!inTransaction && query.query.kind !== 'SelectQueryNode') return viaKysely<R>(query, queryId);
    const observer = report();
    const start = observer ? performance.now() : 0;
    let result: QueryResult<R>;
    try {
      const stmt = conn.prepare(query.sql);
      if (stmt.reader) {
        result = { rows: stmt.all(query.parameters) as R[] };
      } else if (!inTransaction) {
        // A SELECT that is not a reader cannot happen; were it to, Kysely's path decides.
        return viaKysely<R>(query, queryId);
      } else {
        const { changes, lastInsertRowid } = stmt.run(query.parameters);
        result = { numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid), rows: [] };
      }
    } catch (err) {
      observer?.(queryKind(query.query.kind), performance.now() - start, false);
      return Promise.reject(err);
    }
    observer?.(queryKind(query.query.kind), performance.now() - start, true);
    return Promise.resolve(result);
  };
}

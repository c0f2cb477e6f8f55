/**
 * Queries built and compiled once, run many times with new arguments.
 *
 * Building a Kysely query (an immutable tree of nodes) and compiling it to SQL costs as much as
 * SQLite takes to run a small indexed lookup, on every call. For the hottest queries,
 * `prepared()` builds the query once per database engine with a marker in place of each
 * argument, keeps the SQL text, and on each call only puts the arguments where the markers
 * were. The builder must use each argument as a plain value (no arithmetic or conditions on
 * it, no arrays: `in` lists vary in length); anything else is caught when the query is
 * prepared.
 */
import type { Compilable, CompiledQuery, Kysely, QueryResult, Transaction } from 'kysely';
import type { Tables } from './schema.js';

type Db = Kysely<Tables> | Transaction<Tables>;

const MARKER = '\u0000myelin-argument-';

/** Where each compiled parameter comes from: an argument (by index) or a constant of the query. */
type Slot = { arg: number } | { value: unknown };

interface Template {
  compiled: CompiledQuery;
  slots: Slot[];
  /** The slots are exactly the arguments in order, with no constants: the arguments are the parameters. */
  direct: boolean;
}

export interface Prepared<A extends unknown[], R> {
  /** Runs the query with these arguments; its rows. */
  rows(db: Db, ...args: A): Promise<R[]>;
  /** Runs the query with these arguments; its first row. */
  first(db: Db, ...args: A): Promise<R | undefined>;
  /** Runs a write with these arguments; the rows it changed. */
  run(db: Db, ...args: A): Promise<QueryResult<R>>;
}

export function prepared<A extends unknown[], R>(arity: A['length'], build: (db: Kysely<Tables>, ...args: A) => Compilable<R>): Prepared<A, R> {
  // One template per engine (the SQL differs); transactions share their database's adapter.
  const templates = new WeakMap<object, Template>();
  const template = (db: Db): Template => {
    const adapter = db.getExecutor().adapter;
    let t = templates.get(adapter);
    if (!t) {
      const markers = Array.from({ length: arity }, (_, i) => `${MARKER}${i}\u0000`);
      const index = new Map(markers.map((m, i) => [m, i]));
      const compiled = build(db as Kysely<Tables>, ...(markers as unknown as A)).compile();
      const seen = new Set<number>();
      const slots: Slot[] = compiled.parameters.map((p) => {
        const arg = typeof p === 'string' ? index.get(p) : undefined;
        if (arg !== undefined) {
          seen.add(arg);
          return { arg };
        }
        if (typeof p === 'string' && p.includes(MARKER)) throw new Error(`prepared query uses an argument inside a larger value: ${compiled.sql}`);
        return { value: p };
      });
      if (seen.size !== arity) throw new Error(`prepared query does not use each of its ${arity} arguments as a plain value: ${compiled.sql}`);
      const direct = slots.length === arity && slots.every((s, i) => 'arg' in s && s.arg === i);
      t = { compiled, slots, direct };
      templates.set(adapter, t);
    }
    return t;
  };
  const execute = (db: Db, args: A): Promise<QueryResult<R>> => {
    const t = template(db);
    const parameters = t.direct ? args : t.slots.map((s) => ('arg' in s ? args[s.arg] : s.value));
    return db.executeQuery<R>({ ...t.compiled, parameters });
  };
  return {
    rows: async (db, ...args) => (await execute(db, args)).rows,
    first: async (db, ...args) => (await execute(db, args)).rows[0],
    run: (db, ...args) => execute(db, args),
  };
}

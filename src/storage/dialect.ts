export type Dialect = 'sqlite' | 'postgres';

/** Column types that differ between the dialects, for migrations. */
export function columnTypes(dialect: Dialect) {
  return {
    /** 64-bit integer (stream positions, timestamps in ms). */
    bigint: 'bigint' as const,
    /** Binary data. */
    bytes: dialect === 'sqlite' ? ('blob' as const) : ('bytea' as const),
    /** Auto-incrementing 64-bit primary key column type. */
    autoId: dialect === 'sqlite' ? ('integer' as const) : ('bigserial' as const),
  };
}

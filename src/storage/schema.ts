import type { AccountTables } from './schema-accounts.js';

/**
 * Table types for Kysely. Each migration that adds a table adds its row type here.
 * Column types are those both dialects agree on: integers as number, text as string.
 */
export interface ServerMetaTable {
  key: string;
  value: string;
}

export interface Tables extends AccountTables {
  server_meta: ServerMetaTable;
}

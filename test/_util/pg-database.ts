/**
 * Per-test PostgreSQL databases on the server provided by ./postgres.ts.
 *
 *   const db = await createTestDatabase(inject('postgresUrl'));
 *   try { ...use db.url... } finally { await db.drop(); }
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export interface TestDatabase {
  /** Connection URL of the fresh database (same server and credentials as the admin URL). */
  url: string;
  /** Name of the database. */
  name: string;
  /** Drops the database, disconnecting any remaining sessions. Idempotent. */
  drop(): Promise<void>;
}

/** PostgreSQL error codes worth a retry when several workers create databases at once. */
const RETRYABLE = new Set(['55006' /* object_in_use */, '40001' /* serialization_failure */, '40P01' /* deadlock */]);

async function withAdmin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export async function createTestDatabase(adminUrl: string): Promise<TestDatabase> {
  const name = `myelin_test_${process.pid}_${randomBytes(6).toString('hex')}`;
  for (let attempt = 1; ; attempt++) {
    try {
      await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE ${quoteIdent(name)}`));
      break;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (attempt >= 5 || code === undefined || !RETRYABLE.has(code)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
  const url = new URL(adminUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    async drop() {
      if (dropped) return;
      await withAdmin(adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
      dropped = true;
    },
  };
}

import { Migrator, sql, type Kysely, type Migration, type MigrationProvider } from 'kysely';
import type { Logger } from 'pino';
import type { Dialect } from './dialect.js';
import { MIGRATIONS } from './migrations/index.js';
import type { MigrationStep } from './migrations/types.js';

export const MIGRATION_TABLE = 'myelin_migration';
export const MIGRATION_LOCK_TABLE = 'myelin_migration_lock';

export class SchemaTooNewError extends Error {
  constructor(unknown: string[], latest: string) {
    super(
      `The database schema is newer than this version of Myelin: it has migration(s) ${unknown.join(', ')}, ` +
        `but this Myelin only knows up to ${latest}. Upgrade Myelin, or restore a backup made with this version.`,
    );
    this.name = 'SchemaTooNewError';
  }
}

function provider(steps: readonly MigrationStep[], dialect: Dialect): MigrationProvider {
  return {
    async getMigrations() {
      const out: Record<string, Migration> = {};
      for (const step of steps) out[step.name] = { up: (db) => step.up(db, dialect) };
      return out;
    },
  };
}

async function appliedMigrations(db: Kysely<unknown>): Promise<string[]> {
  const tables = await db.introspection.getTables();
  if (!tables.some((t) => t.name === MIGRATION_TABLE)) return [];
  const rows = await sql<{ name: string }>`select name from ${sql.table(MIGRATION_TABLE)} order by name`.execute(db);
  return rows.rows.map((r) => r.name);
}

/**
 * Applies pending migrations. Refuses a database that has migrations this code does not know
 * (written by a newer Myelin), before changing anything.
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  dialect: Dialect,
  log: Logger,
  steps: readonly MigrationStep[] = MIGRATIONS,
): Promise<{ applied: string[] }> {
  const known = new Set(steps.map((s) => s.name));
  const unknown = (await appliedMigrations(db)).filter((n) => !known.has(n));
  if (unknown.length > 0) throw new SchemaTooNewError(unknown, steps[steps.length - 1]?.name ?? '(none)');

  const migrator = new Migrator({
    db,
    provider: provider(steps, dialect),
    migrationTableName: MIGRATION_TABLE,
    migrationLockTableName: MIGRATION_LOCK_TABLE,
  });
  const { error, results } = await migrator.migrateToLatest();
  const applied = (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
  for (const name of applied) log.info({ migration: name }, 'applied database migration');
  const failed = (results ?? []).find((r) => r.status === 'Error');
  if (error) {
    const what = failed ? `migration ${failed.migrationName}` : 'migrations';
    throw new Error(`Database ${what} failed: ${(error as Error).message ?? String(error)}. Nothing of that step was applied.`, {
      cause: error,
    });
  }
  return { applied };
}

/** Which migrations a database has applied, which are pending, and which this code does not know. */
export async function migrationStatus(
  db: Kysely<unknown>,
  steps: readonly MigrationStep[] = MIGRATIONS,
): Promise<{ applied: string[]; pending: string[]; unknown: string[] }> {
  const applied = await appliedMigrations(db);
  const known = new Set(steps.map((s) => s.name));
  const done = new Set(applied);
  return {
    applied,
    pending: steps.map((s) => s.name).filter((n) => !done.has(n)),
    unknown: applied.filter((n) => !known.has(n)),
  };
}

import type { Kysely } from 'kysely';
import type { Dialect } from '../dialect.js';

/** A versioned schema change, written once for both dialects (it receives the dialect). */
export interface MigrationStep {
  /** `NNNN-name`, ordered by the number. */
  name: string;
  up(db: Kysely<unknown>, dialect: Dialect): Promise<void>;
}

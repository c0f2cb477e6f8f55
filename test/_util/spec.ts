import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/**
 * The Matrix specification checkout next to the project (../shared/matrix-spec), or
 * MATRIX_SPEC_DIR; undefined when neither exists (tests then use their fixtures).
 */
export function findSpecDir(): string | undefined {
  if (process.env.MATRIX_SPEC_DIR && existsSync(process.env.MATRIX_SPEC_DIR)) return process.env.MATRIX_SPEC_DIR;
  let dir = resolve(import.meta.dirname, '../..');
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'shared', 'matrix-spec');
    if (existsSync(join(candidate, 'content'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

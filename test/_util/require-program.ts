import { existsSync } from 'node:fs';

/**
 * Fails the test file at once, saying what to install, when a system program it drives is
 * missing. `npm test` installs them first (scripts/test-system-deps.sh), so this only trips
 * when vitest is run directly on a machine without them.
 */
export function requireProgram(path: string, debianPackage: string): void {
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: install the Debian package ${debianPackage} (npm test does it through scripts/test-system-deps.sh)`);
  }
}

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERRCODES, MatrixError, UNSTABLE_ERRCODES } from '../../src/errors.js';
import { findSpecDir } from '../_util/spec.js';

function specText(dir: string): string {
  let out = '';
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out += specText(p);
    else if (/\.(md|ya?ml|json)$/.test(name)) out += readFileSync(p, 'utf8');
  }
  return out;
}

const fixture = readFileSync(join(import.meta.dirname, '../fixtures/matrix-spec-errcodes.txt'), 'utf8')
  .split('\n')
  .filter((l) => l && !l.startsWith('#'));

describe('errors', () => {
  it('every errcode the server uses is documented in the Matrix specification', () => {
    const undocumented = ERRCODES.filter((code) => !fixture.includes(code));
    expect(undocumented).toEqual([]);
  });

  it('errcodes of unstable proposals are not in the specification yet (else they belong in ERRCODES)', () => {
    for (const [code, msc] of Object.entries(UNSTABLE_ERRCODES)) {
      expect(msc).toMatch(/^MSC\d+$/);
      expect(fixture).not.toContain(code);
      expect(ERRCODES as readonly string[]).not.toContain(code);
    }
  });

  it('the errcode list matches the specification checkout when it is present', () => {
    const spec = findSpecDir();
    if (!spec) return; // the fixture above was extracted from it
    const text = specText(join(spec, 'content')) + specText(join(spec, 'data'));
    const missing = fixture.filter((code) => !new RegExp(`\\b${code}\\b`).test(text));
    expect(missing).toEqual([]);
  });

  it('serialises to the standard error body, keeping extra fields', () => {
    const e = new MatrixError('M_LIMIT_EXCEEDED', 429, 'Too many requests', { retry_after_ms: 2000 });
    expect(e.toJSON()).toEqual({ errcode: 'M_LIMIT_EXCEEDED', error: 'Too many requests', retry_after_ms: 2000 });
    expect(e.status).toBe(429);
  });
});

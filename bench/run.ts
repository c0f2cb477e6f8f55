/**
 * `npm run bench [suite ...]`: runs every suite in bench/suites (or the named ones),
 * each in a fresh Node process, and prints a table of figures.
 */
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Figure } from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2);
const suites = readdirSync(join(here, 'suites'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.replace(/\.ts$/, ''))
  .filter((s) => wanted.length === 0 || wanted.includes(s))
  .sort();

function runSuite(suite: string): Promise<Figure[]> {
  return new Promise((resolve, reject) => {
    const figures: Figure[] = [];
    const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(here, 'suites', `${suite}.ts`)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buf = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.startsWith('BENCH ')) {
          const f = JSON.parse(line.slice(6)) as Figure;
          figures.push(f);
          console.log(`${f.suite.padEnd(14)} ${f.name.padEnd(52)} ${String(f.value).padStart(12)} ${f.unit}`);
        } else if (line.trim()) {
          console.error(`[${suite}] ${line}`);
        }
      }
    });
    child.on('exit', (code) => (code === 0 ? resolve(figures) : reject(new Error(`suite ${suite} exited with ${code}`))));
  });
}

let failed = false;
for (const suite of suites) {
  console.error(`running ${suite} …`);
  try {
    await runSuite(suite);
  } catch (err) {
    failed = true;
    console.error(String(err));
  }
}
process.exitCode = failed ? 1 : 0;

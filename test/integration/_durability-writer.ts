/**
 * Writes numbered rows into a SQLite database through the server's storage layer and prints
 * "ack <n>" once each transaction has resolved (i.e. the server would have acknowledged it).
 * Used by sqlite-durability.test.ts, which kills this process at a random moment.
 * argv: <data dir> <first n> <payload bytes>
 */
import pino from 'pino';
import { sql } from 'kysely';
import { validateConfig } from '../../src/config/load.js';
import { openDatabase } from '../../src/storage/db.js';

const [dir, firstArg, payloadArg] = process.argv.slice(2);
const config = validateConfig({ server_name: 'localhost', database: { engine: 'sqlite' } }, dir!).database;
const db = await openDatabase(config, pino({ level: 'silent' }));
await sql`create table if not exists durability_rows (n integer primary key, payload text not null)`.execute(db.db);
const payload = 'x'.repeat(Number(payloadArg));
process.stdout.write('ready\n');
// Bounded: the test kills the process long before this ends.
for (let n = Number(firstArg), end = n + 99_996; n < end; n += 4) {
  // Four transactions at once share commits, as under load.
  const batch = [n, n + 1, n + 2, n + 3].map((i) =>
    db.transaction(async (tx) => {
      await sql`insert into durability_rows (n, payload) values (${i}, ${payload})`.execute(tx.db);
      return i;
    }),
  );
  for (const p of batch) process.stdout.write(`ack ${await p}\n`);
}
await db.close();

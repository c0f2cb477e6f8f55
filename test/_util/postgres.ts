/**
 * Vitest global setup: provides a real PostgreSQL server to the test suite.
 *
 * - If MYELIN_TEST_POSTGRES_URL is set, that server is used as is (after
 *   checking that it answers).
 * - Otherwise a throwaway cluster is created in a fresh temporary directory
 *   (initdb), started on 127.0.0.1 with a free port, and stopped and removed
 *   again in teardown. When running as root the cluster runs as an
 *   unprivileged user, because PostgreSQL refuses to run as root.
 *
 * The admin URL (superuser, database `postgres`) reaches the tests through
 * `inject('postgresUrl')` and child processes through
 * `process.env.MYELIN_TEST_POSTGRES_URL`. Tests create their own databases
 * with `createTestDatabase()` from ./pg-database.js.
 *
 * Binaries are looked up in $MYELIN_TEST_POSTGRES_BINDIR, then
 * /usr/lib/postgresql/15/bin, then any other /usr/lib/postgresql/<n>/bin
 * (newest first), then $PATH. If none is found the run fails: the suite never
 * silently skips its PostgreSQL tests.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, chownSync, constants, mkdirSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}

export const POSTGRES_URL_ENV = 'MYELIN_TEST_POSTGRES_URL';
const NOT_FOUND_MESSAGE =
  'PostgreSQL 15 server binaries not found; install the Debian package postgresql (see README)';
const PREFERRED_MAJOR = 15;
const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const SUPERUSER = 'postgres';

function log(message: string): void {
  process.stderr.write(`[postgres-harness] ${message}\n`);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function hasServerBinaries(dir: string): boolean {
  return isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'));
}

/** Finds a directory holding `initdb` and `postgres`, or throws. */
export function findPostgresBinDir(): string {
  const candidates: string[] = [];
  const fromEnv = process.env.MYELIN_TEST_POSTGRES_BINDIR;
  if (fromEnv) {
    if (!hasServerBinaries(fromEnv)) {
      throw new Error(`MYELIN_TEST_POSTGRES_BINDIR=${fromEnv} holds no initdb/postgres. ${NOT_FOUND_MESSAGE}`);
    }
    return fromEnv;
  }
  candidates.push(`/usr/lib/postgresql/${PREFERRED_MAJOR}/bin`);
  try {
    const majors = readdirSync('/usr/lib/postgresql')
      .filter((name) => /^\d+$/.test(name))
      .map(Number)
      .sort((a, b) => b - a);
    for (const major of majors) candidates.push(`/usr/lib/postgresql/${major}/bin`);
  } catch {
    // no Debian-style install
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir) candidates.push(dir);
  const found = candidates.find(hasServerBinaries);
  if (!found) {
    log(NOT_FOUND_MESSAGE);
    throw new Error(NOT_FOUND_MESSAGE);
  }
  return found;
}

interface RunAs {
  name: string;
  uid: number;
  gid: number;
}

function lookupUser(name: string): RunAs | undefined {
  try {
    const line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
    const fields = line.split(':');
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid) || uid === 0) return undefined;
    return { name, uid, gid };
  } catch {
    return undefined;
  }
}

/** PostgreSQL refuses to run as root: pick (or create) an unprivileged user. */
function unprivilegedUser(): RunAs {
  const wanted = process.env.MYELIN_TEST_POSTGRES_USER;
  if (wanted) {
    const user = lookupUser(wanted);
    if (!user) throw new Error(`MYELIN_TEST_POSTGRES_USER=${wanted} is not an existing non-root user`);
    return user;
  }
  for (const name of ['myelin-test', 'postgres', 'nobody']) {
    const user = lookupUser(name);
    if (user) return user;
  }
  log('creating system user myelin-test to run PostgreSQL');
  execFileSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', 'myelin-test'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const user = lookupUser('myelin-test');
  if (!user) throw new Error('could not create the unprivileged user myelin-test for PostgreSQL');
  return user;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('could not pick a free TCP port');
  return address.port;
}

function readTail(path: string, bytes = 4000): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.slice(-bytes);
  } catch {
    return '(no log)';
  }
}

async function run(command: string, args: string[], runAs: RunAs | undefined, logFile: string): Promise<void> {
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(command, args, {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
      ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    });
    const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
    if (code !== 0) {
      throw new Error(`${command} failed (${signal ?? `exit ${code}`}):\n${readTail(logFile)}`);
    }
  } finally {
    closeSync(fd);
  }
}

async function waitUntilReady(url: string, child: ChildProcess | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`postgres exited early (code ${child.exitCode})`);
    if (child && child.signalCode !== null) throw new Error(`postgres was killed early (${child.signalCode})`);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    try {
      await client.connect();
      await client.query('select 1');
      await client.end();
      return;
    } catch (error) {
      lastError = error;
      await client.end().catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`PostgreSQL did not accept connections within ${timeoutMs} ms: ${String(lastError)}`);
}

/**
 * A detached process that removes the cluster if this process dies without
 * running teardown (e.g. SIGKILL): it waits for its stdin to close, and unless
 * it was told "done" first, stops postgres and removes the directory.
 */
function startWatchdog(pid: number, dir: string): ChildProcess {
  const script = `
const fs = require('node:fs');
const [pid, dir] = [Number(process.argv[1]), process.argv[2]];
let done = false;
process.stdin.on('data', (d) => { if (String(d).includes('done')) done = true; });
process.stdin.on('close', () => {
  if (done) process.exit(0);
  const alive = () => {
    try { process.kill(pid, 0); } catch { return false; }
    try { return !/^\\d+ \\(.*\\) Z/.test(fs.readFileSync('/proc/' + pid + '/stat', 'utf8')); } catch { return true; }
  };
  try { process.kill(pid, 'SIGINT'); } catch {}
  const start = Date.now();
  const timer = setInterval(() => {
    const elapsed = Date.now() - start;
    if (alive() && elapsed < ${STOP_TIMEOUT_MS}) {
      if (elapsed > ${STOP_TIMEOUT_MS / 2}) { try { process.kill(pid, 'SIGQUIT'); } catch {} }
      return;
    }
    if (alive()) { try { process.kill(pid, 'SIGKILL'); } catch {} }
    clearInterval(timer);
    try { fs.rmSync(dir, { recursive: true, force: true }); } catch {}
    process.exit(0);
  }, 100);
});
`;
  const watchdog = spawn(process.execPath, ['-e', script, String(pid), dir], {
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  watchdog.stdin?.on('error', () => undefined);
  return watchdog;
}

interface Cluster {
  url: string;
  stop(): Promise<void>;
}

async function startCluster(): Promise<Cluster> {
  const started = Date.now();
  const binDir = findPostgresBinDir();
  const runAs = process.getuid?.() === 0 ? unprivilegedUser() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'myelin-pg-'));
  const dataDir = join(dir, 'data');
  const socketDir = join(dir, 'sock');
  const logFile = join(dir, 'postgres.log');
  mkdirSync(socketDir, { mode: 0o700 });
  closeSync(openSync(logFile, 'a'));
  if (runAs) {
    for (const path of [dir, socketDir, logFile]) chownSync(path, runAs.uid, runAs.gid);
  }
  log(`initdb in ${dir} (${binDir}${runAs ? `, as ${runAs.name}` : ''})`);

  let child: ChildProcess | undefined;
  let watchdog: ChildProcess | undefined;
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  try {
    await run(
      join(binDir, 'initdb'),
      ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'],
      runAs,
      logFile,
    );

    // The port is free when chosen; another process could take it before
    // postgres binds it, so a failed start is retried on a new port.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const fd = openSync(logFile, 'a');
      child = spawn(
        join(binDir, 'postgres'),
        [
          '-D', dataDir,
          '-k', socketDir,
          '-p', String(port),
          '-c', 'listen_addresses=127.0.0.1',
          '-c', 'fsync=off',
          '-c', 'synchronous_commit=off',
          '-c', 'full_page_writes=off',
          '-c', 'max_connections=300',
        ],
        {
          stdio: ['ignore', fd, fd],
          env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
          ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
        },
      );
      closeSync(fd);
      const pid = child.pid;
      if (pid === undefined) throw new Error('could not spawn postgres');
      watchdog = startWatchdog(pid, dir);
      const url = `postgres://${SUPERUSER}@127.0.0.1:${port}/postgres`;
      try {
        await waitUntilReady(url, child, READY_TIMEOUT_MS);
      } catch (error) {
        await stopProcess(child);
        watchdog.stdin?.end('done\n');
        if (attempt < 3 && /could not bind|already in use/i.test(readTail(logFile))) {
          log(`port ${port} was taken, retrying`);
          continue;
        }
        throw new Error(`${error instanceof Error ? error.message : String(error)}\npostgres log:\n${readTail(logFile)}`);
      }
      log(`PostgreSQL ready at ${url} in ${Date.now() - started} ms`);

      const running = child;
      const runningWatchdog = watchdog;
      const onExit = () => {
        // Synchronous last resort; the watchdog removes the directory.
        if (running.exitCode === null && running.signalCode === null) {
          try {
            running.kill('SIGQUIT');
          } catch {
            // already gone
          }
        }
      };
      const onSignal = (signal: NodeJS.Signals) => {
        onExit();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        // Re-raise when nothing else handles the signal, so the runner dies.
        if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
      };
      // Prepended: the runner's own handlers call process.exit(), after which
      // later listeners never run.
      process.prependListener('exit', onExit);
      process.prependListener('SIGINT', onSignal);
      process.prependListener('SIGTERM', onSignal);

      return {
        url,
        async stop() {
          process.off('exit', onExit);
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          const stopping = Date.now();
          await stopProcess(running);
          removeDir();
          runningWatchdog.stdin?.end('done\n');
          log(`PostgreSQL stopped and ${dir} removed in ${Date.now() - stopping} ms`);
        },
      };
    }
  } catch (error) {
    if (child) await stopProcess(child);
    watchdog?.stdin?.end('done\n');
    removeDir();
    throw error;
  }
}

/** Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  const steps: [NodeJS.Signals, number][] = [
    ['SIGINT', STOP_TIMEOUT_MS / 2],
    ['SIGQUIT', STOP_TIMEOUT_MS / 2],
    ['SIGKILL', STOP_TIMEOUT_MS],
  ];
  for (const [signal, waitMs] of steps) {
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), waitMs);
      }),
    ]);
    clearTimeout(timer);
    if (!timedOut) return;
    log(`postgres did not stop after ${signal}`);
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env[POSTGRES_URL_ENV];
  if (external) {
    log(`using ${POSTGRES_URL_ENV}`);
    await waitUntilReady(external, undefined, READY_TIMEOUT_MS);
    project.provide('postgresUrl', external);
    return async () => undefined;
  }
  const cluster = await startCluster();
  process.env[POSTGRES_URL_ENV] = cluster.url;
  project.provide('postgresUrl', cluster.url);
  return async () => {
    delete process.env[POSTGRES_URL_ENV];
    await cluster.stop();
  };
}

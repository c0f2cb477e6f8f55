#!/usr/bin/env node
// Only Node's own modules (and ConfigError) are imported statically: the server and each
// command are loaded when chosen, after the compile cache is on (Node 22.1+: V8 code for every
// module is kept on disk, in NODE_COMPILE_CACHE or the system's temporary directory, so later
// starts skip compiling).
import * as nodeModule from 'node:module';
import { parseArgs } from 'node:util';
import { ConfigError } from '../config/error.js';

type CompileCacheApi = { enableCompileCache?: (dir?: string) => unknown; flushCompileCache?: () => void };
const compileCache = nodeModule as unknown as CompileCacheApi;
if (process.env.NODE_DISABLE_COMPILE_CACHE === undefined) {
  try {
    compileCache.enableCompileCache?.();
  } catch {
    /* an unwritable cache directory only costs start-up time */
  }
}

const require = nodeModule.createRequire(import.meta.url);
const VERSION = (require('../../package.json') as { version: string }).version;

const USAGE = `Usage: myelin <command> [options]

Commands:
  start                      run the server (creates the data directory on first run)
  init --server-name NAME    create the data directory: myelin.yaml, signing key, database
  version                    print the version
  doctor [--offline]         check the data directory, configuration, database, ports, certificates,
                             and (unless --offline) DNS, well-known, TLS and federation as others see them
  register-user NAME [--admin] [--password P]
                             create a user (prompts for the password, or generates one)
  registration-token create [--uses N] [--expires-in 7d] [--token T]
  registration-token list | delete TOKEN
                             manage tokens for registration: token
  media delete mxc://SERVER/ID
                             delete a media item (local or cached remote) and its thumbnails
  media purge-remote --older-than 30d
                             delete cached remote media not accessed for that long

Options:
  --data-dir DIR             data directory (default ./data, or MYELIN_DATA_DIR)
  --config FILE              configuration file (default <data-dir>/myelin.yaml, or MYELIN_CONFIG)
  --server-name NAME         server name for a new data directory (default localhost)
  --admin                    register-user: make the user a server administrator
`;

/** Expected failures of account commands (bad input, taken names) print just their message. */
function cliError(err: unknown): never {
  if (err instanceof ConfigError) throw err;
  const e = err as { message?: string; errcode?: string };
  fail(e.errcode ? `${e.errcode}: ${e.message}` : (e.message ?? String(err)));
}

function fail(message: string, code = 1): never {
  process.stderr.write(`myelin: ${message}\n`);
  process.exit(code);
}

async function start(dataDir: string | undefined, configPath: string | undefined, serverName: string | undefined) {
  // While allocation is fast V8 lets the old generation grow to several times the live heap
  // before collecting it (under the load benchmark ≈ 200–300 MiB of heap for ≈ 50 MiB live);
  // a fixed 20 % growth keeps it near the live size, for some more GC time
  // (docs/PERFORMANCE.md, client API load). A value given to node explicitly wins.
  if (!process.execArgv.some((a) => /^--heap[-_]growing[-_]percent/.test(a))) {
    (await import('node:v8')).setFlagsFromString('--heap-growing-percent=20');
  }
  const { Myelin } = await import('../app.js');
  const server = await Myelin.create({
    dataDir,
    configPath,
    overrides: serverName ? { server_name: serverName } : undefined,
  });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals += 1;
    if (signals > 1) {
      server.log.warn({ signal: sig }, 'second signal: exiting now');
      process.exit(130);
    }
    server.log.info({ signal: sig }, 'received signal, shutting down gracefully');
    server.stop().then(
      () => process.exit(0),
      (err) => {
        server.log.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const urls = await server.start();
  // Node 23+: write the compile cache now rather than at exit (a crash would lose it).
  try {
    compileCache.flushCompileCache?.();
  } catch {
    /* best effort */
  }
  const c = server.config;
  server.log.info(
    {
      server_name: c.server_name,
      client: urls.client,
      federation: urls.federation,
      public_baseurl: c.public_baseurl,
      data_dir: c.data_dir,
      registration: c.registration,
    },
    `Myelin ${VERSION} is running as ${c.server_name}. Clients connect to ${c.public_baseurl}` +
      ` — check it with: curl ${urls.client ?? c.public_baseurl}/_matrix/client/versions`,
  );
  if ((await server.ctx.accounts.store.countUsers()) === 0) {
    server.log.info(
      `No users yet. Create the first (administrator) account with: myelin register-user <name> --admin --data-dir ${c.data_dir}`,
    );
  }
}

async function main(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      'data-dir': { type: 'string' },
      config: { type: 'string' },
      'server-name': { type: 'string' },
      admin: { type: 'boolean' },
      password: { type: 'string' },
      uses: { type: 'string' },
      'expires-in': { type: 'string' },
      token: { type: 'string' },
      'older-than': { type: 'string' },
      offline: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const command = positionals[0] ?? 'start';
  if (values.help || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const dataDir = values['data-dir'] ?? process.env.MYELIN_DATA_DIR;
  const configPath = values.config ?? process.env.MYELIN_CONFIG;
  switch (command) {
    case 'version':
      process.stdout.write(`myelin ${VERSION}\n`);
      return;
    case 'doctor': {
      const { formatChecks, runDoctor } = await import('./doctor.js');
      const checks = await runDoctor({ dataDir: dataDir ?? './data', configPath, network: !values.offline });
      process.exitCode = formatChecks(checks, (t) => process.stdout.write(t));
      return;
    }
    case 'start':
      await start(dataDir, configPath, values['server-name']);
      return;
    case 'init': {
      const serverName = values['server-name'] ?? process.env.MYELIN_SERVER_NAME;
      if (!serverName) fail('init needs --server-name, e.g. myelin init --server-name example.org', 2);
      const [{ Myelin }, { dataDirPaths, ensureDataDir }, { loadConfig }] = await Promise.all([
        import('../app.js'),
        import('../config/first-run.js'),
        import('../config/load.js'),
      ]);
      const paths = dataDirPaths(dataDir ?? './data', configPath);
      const res = ensureDataDir(paths, serverName);
      // Validate what is there and create the database with its schema.
      const server = await Myelin.create({ dataDir: paths.dataDir, configPath: paths.configPath, env: process.env });
      await server.stop();
      const config = loadConfig({ dataDir: paths.dataDir, configPath: paths.configPath });
      process.stdout.write(
        `${res.createdConfig ? 'Created' : 'Kept existing'} ${paths.configPath}\n` +
          `${res.createdSigningKey ? 'Created' : 'Kept existing'} ${paths.signingKeyPath}\n` +
          `Database ready (${config.database.engine}). Server name: ${config.server_name}\n` +
          `Start the server with: myelin start --data-dir ${paths.dataDir}\n`,
      );
      return;
    }
    case 'register-user': {
      const { registerUserCommand } = await import('./accounts.js');
      await registerUserCommand(
        { localpart: positionals[1], password: values.password, admin: values.admin === true, dataDir, configPath },
        { out: (t) => process.stdout.write(t) },
      ).catch(cliError);
      return;
    }
    case 'registration-token': {
      const { registrationTokenCommand } = await import('./accounts.js');
      await registrationTokenCommand(
        { action: positionals[1], token: values.token ?? positionals[2], uses: values.uses, expiresIn: values['expires-in'], dataDir, configPath },
        { out: (t) => process.stdout.write(t) },
      ).catch(cliError);
      return;
    }
    case 'media': {
      const { mediaCommand } = await import('./media.js');
      await mediaCommand(
        { action: positionals[1], target: positionals[2], olderThan: values['older-than'], dataDir, configPath },
        { out: (t) => process.stdout.write(t) },
      ).catch(cliError);
      return;
    }
    default:
      fail(`unknown command "${command}"\n\n${USAGE}`, 2);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError) fail(err.message, 78);
  const e = err as Error;
  fail(e.stack ?? String(err));
});

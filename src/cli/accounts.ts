import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { Myelin } from '../app.js';
import { randomString } from '../services/accounts/secrets.js';

/** `7d`, `12h`, `30m`, `45s`, `2w` → milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+)\s*([smhdw])$/.exec(s.trim());
  if (!m) throw new Error(`invalid duration "${s}": use a number with s, m, h, d or w (e.g. 7d)`);
  const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2] as 's'];
  return Number(m[1]) * unit;
}

async function prompt(question: string): Promise<string> {
  let muted = false;
  const output = new Writable({
    write(chunk: Buffer, _enc, cb) {
      if (!muted) process.stderr.write(chunk);
      cb();
    },
  });
  const rl = createInterface({ input: process.stdin, output, terminal: true });
  return new Promise((resolve) => {
    rl.question(question, (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
    muted = true;
  });
}

async function readPassword(): Promise<{ password: string; generated: boolean }> {
  if (!process.stdin.isTTY) return { password: randomString(18), generated: true };
  const first = await prompt('Password (empty: generate one): ');
  if (first === '') return { password: randomString(18), generated: true };
  const again = await prompt('Password again: ');
  if (again !== first) throw new Error('the passwords do not match');
  return { password: first, generated: false };
}

/** Opens the server's database (no listeners) through the same services the server uses. */
async function withServer<T>(dataDir: string | undefined, configPath: string | undefined, fn: (server: Myelin) => Promise<T>): Promise<T> {
  const server = await Myelin.create({ dataDir, configPath, overrides: { log_level: 'warn' }, logDestination: process.stderr });
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

export interface CliIo {
  out: (s: string) => void;
}

/** myelin register-user <localpart> [--password P] [--admin] */
export async function registerUserCommand(
  args: { localpart: string | undefined; password?: string; admin: boolean; dataDir?: string; configPath?: string },
  io: CliIo,
): Promise<void> {
  if (!args.localpart) throw new Error('register-user needs a user name, e.g. myelin register-user alice --admin');
  const { password, generated } = args.password !== undefined ? { password: args.password, generated: false } : await readPassword();
  if (password === '') throw new Error('the password must not be empty');
  await withServer(args.dataDir, args.configPath, async (server) => {
    const userId = await server.ctx.accounts.createAccount({ localpart: args.localpart!, password, admin: args.admin });
    io.out(`Created ${args.admin ? 'administrator ' : ''}${userId}\n`);
    if (generated) io.out(`Password: ${password}\n`);
  });
}

/** myelin registration-token create|list|delete */
export async function registrationTokenCommand(
  args: { action: string | undefined; token?: string; uses?: string; expiresIn?: string; dataDir?: string; configPath?: string },
  io: CliIo,
): Promise<void> {
  await withServer(args.dataDir, args.configPath, async (server) => {
    const accounts = server.ctx.accounts;
    switch (args.action) {
      case 'create': {
        let uses: number | null = null;
        if (args.uses !== undefined) {
          if (!/^\d+$/.test(args.uses) || Number(args.uses) < 1) throw new Error('--uses must be a positive integer');
          uses = Number(args.uses);
        }
        const expiry = args.expiresIn !== undefined ? Date.now() + parseDuration(args.expiresIn) : null;
        const row = await accounts.createRegistrationToken({ token: args.token, usesAllowed: uses, expiryTime: expiry });
        io.out(`${row.token}\n`);
        if (server.config.registration !== 'token') {
          process.stderr.write(`note: registration is "${server.config.registration}"; set registration: token in myelin.yaml for tokens to be asked for\n`);
        }
        return;
      }
      case 'list': {
        const rows = await accounts.listRegistrationTokens();
        if (rows.length === 0) io.out('No registration tokens.\n');
        for (const r of rows) {
          const uses = r.uses_allowed === null ? 'unlimited' : String(r.uses_allowed);
          const expires = r.expiry_time === null ? 'never' : new Date(r.expiry_time).toISOString();
          const state = accounts.tokenUsable(r) ? 'valid' : 'invalid';
          io.out(`${r.token}\tuses_allowed=${uses}\tcompleted=${r.completed}\tpending=${r.pending}\texpires=${expires}\t${state}\n`);
        }
        return;
      }
      case 'delete': {
        if (!args.token) throw new Error('registration-token delete needs the token, e.g. myelin registration-token delete abc123');
        if (!(await accounts.deleteRegistrationToken(args.token))) throw new Error(`no registration token ${args.token}`);
        io.out(`Deleted ${args.token}\n`);
        return;
      }
      default:
        throw new Error('registration-token needs create, list or delete');
    }
  });
}

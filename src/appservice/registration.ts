import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../config/load.js';
import { localpartAllowed } from '../protocol/identifiers.js';

/** One namespace entry of a registration: a regular expression and whether it is exclusive. */
export interface Namespace {
  readonly regex: RegExp;
  readonly source: string;
  readonly exclusive: boolean;
}

/** A validated application-service registration (application-service-api "Registration"). */
export interface RegistrationData {
  readonly id: string;
  readonly url: string | null;
  readonly asToken: string;
  readonly hsToken: string;
  readonly senderLocalpart: string;
  readonly namespaces: { readonly users: Namespace[]; readonly aliases: Namespace[]; readonly rooms: Namespace[] };
  /** Whether masqueraded users are rate-limited (the sender never is). Default true. */
  readonly rateLimited: boolean;
  readonly protocols: string[];
  /** receive_ephemeral, or the unstable de.sorunome.msc2409.push_ephemeral. */
  readonly receiveEphemeral: boolean;
  /** Where the registration came from (for error messages). */
  readonly file: string;
}

/** A registration file is missing or invalid (a configuration error: the server does not start). */
export class RegistrationError extends ConfigError {
  constructor(message: string) {
    super(message);
    this.name = 'RegistrationError';
  }
}

/**
 * A namespace regex. Matching is anchored at the start of the ID only, as in the homeservers
 * bridges are written against: `@_irc_.*` covers `@_irc_alice:example.org`, and a bare prefix
 * such as `@_irc_` covers it too. No `u` flag, so PCRE-style escapes like `\:` stay valid.
 */
function compileNamespace(raw: unknown, where: string): Namespace {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RegistrationError(`${where} must be a mapping with "regex" and "exclusive"`);
  const r = raw as Record<string, unknown>;
  if (typeof r.regex !== 'string' || r.regex === '') throw new RegistrationError(`${where}.regex must be a non-empty string`);
  if (r.exclusive !== undefined && typeof r.exclusive !== 'boolean') throw new RegistrationError(`${where}.exclusive must be true or false`);
  let regex: RegExp;
  try {
    regex = new RegExp(`^(?:${r.regex})`);
  } catch (err) {
    throw new RegistrationError(`${where}.regex "${r.regex}" is not a valid regular expression: ${(err as Error).message}`);
  }
  return { regex, source: r.regex, exclusive: r.exclusive === true };
}

function namespaceList(raw: unknown, where: string): Namespace[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new RegistrationError(`${where} must be a list`);
  return raw.map((n, i) => compileNamespace(n, `${where}[${i}]`));
}

/** Validates a parsed registration document. Throws RegistrationError naming the file and field. */
export function parseRegistration(doc: unknown, file: string, serverName: string): RegistrationData {
  const fail = (msg: string): never => {
    throw new RegistrationError(`Application service registration ${file}: ${msg}`);
  };
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail('the file must contain a YAML mapping');
  const d = doc as Record<string, unknown>;
  const str = (key: string): string => {
    const v = d[key];
    if (typeof v !== 'string' || v === '') fail(`"${key}" is required and must be a non-empty string`);
    return v as string;
  };
  const id = str('id');
  const asToken = str('as_token');
  const hsToken = str('hs_token');
  const senderLocalpart = str('sender_localpart');
  if (!localpartAllowed(senderLocalpart, serverName) || senderLocalpart !== senderLocalpart.toLowerCase()) {
    fail(`"sender_localpart" ${JSON.stringify(senderLocalpart)} is not a valid lower-case user ID localpart`);
  }
  if (!('url' in d)) fail('"url" is required (use null for a service that receives no traffic)');
  let url: string | null = null;
  if (d.url !== null && d.url !== undefined) {
    if (typeof d.url !== 'string') fail('"url" must be a string or null');
    let parsed: URL | undefined;
    try {
      parsed = new URL(d.url as string);
    } catch {
      fail(`"url" ${JSON.stringify(d.url)} is not a URL`);
    }
    if (parsed!.protocol !== 'http:' && parsed!.protocol !== 'https:') fail('"url" must be an http:// or https:// URL');
    url = (d.url as string).replace(/\/+$/, '');
  }
  const nsRaw = d.namespaces;
  if (typeof nsRaw !== 'object' || nsRaw === null || Array.isArray(nsRaw)) fail('"namespaces" is required and must be a mapping');
  const ns = nsRaw as Record<string, unknown>;
  let namespaces: RegistrationData['namespaces'];
  try {
    namespaces = {
      users: namespaceList(ns.users, 'namespaces.users'),
      aliases: namespaceList(ns.aliases, 'namespaces.aliases'),
      rooms: namespaceList(ns.rooms, 'namespaces.rooms'),
    };
  } catch (err) {
    return fail((err as Error).message);
  }
  const bool = (key: string, dflt: boolean): boolean => {
    const v = d[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') fail(`"${key}" must be true or false`);
    return v as boolean;
  };
  const protocols = d.protocols ?? [];
  if (!Array.isArray(protocols) || protocols.some((p) => typeof p !== 'string' || p === '')) fail('"protocols" must be a list of strings');
  return {
    id,
    url,
    asToken,
    hsToken,
    senderLocalpart,
    namespaces,
    rateLimited: bool('rate_limited', true),
    protocols: protocols as string[],
    receiveEphemeral: bool('receive_ephemeral', false) || bool('de.sorunome.msc2409.push_ephemeral', false) || bool('push_ephemeral', false),
    file,
  };
}

/** Reads and validates every registration file (paths relative to the data directory). */
export function loadRegistrations(paths: readonly string[], dataDir: string, serverName: string): RegistrationData[] {
  const out: RegistrationData[] = [];
  for (const p of paths) {
    const file = isAbsolute(p) ? p : resolve(dataDir, p);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new RegistrationError(`Application service registration ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new RegistrationError(`Application service registration ${file} is not valid YAML: ${(err as Error).message}`);
    }
    out.push(parseRegistration(doc, file, serverName));
  }
  checkUnique(out);
  return out;
}

/** The spec requires `id` and `as_token` to be unique; tokens must also not be reused across roles. */
export function checkUnique(regs: readonly RegistrationData[]): void {
  const ids = new Map<string, string>();
  const tokens = new Map<string, string>();
  const senders = new Map<string, string>();
  for (const r of regs) {
    const prevId = ids.get(r.id);
    if (prevId) throw new RegistrationError(`Application service id "${r.id}" is used by both ${prevId} and ${r.file}`);
    ids.set(r.id, r.file);
    if (r.asToken === r.hsToken) throw new RegistrationError(`Application service registration ${r.file}: as_token and hs_token must differ`);
    for (const [kind, tok] of [['as_token', r.asToken], ['hs_token', r.hsToken]] as const) {
      const prev = tokens.get(tok);
      if (prev) throw new RegistrationError(`Application service registration ${r.file}: its ${kind} is already used by ${prev}`);
      tokens.set(tok, `${r.file} (${kind})`);
    }
    const prevSender = senders.get(r.senderLocalpart);
    if (prevSender) throw new RegistrationError(`Application service registration ${r.file}: sender_localpart "${r.senderLocalpart}" is already used by ${prevSender}`);
    senders.set(r.senderLocalpart, r.file);
  }
}

/** A registered application service and its namespace rules. */
export class AppService {
  readonly senderUserId: string;

  constructor(
    readonly reg: RegistrationData,
    private readonly serverName: string,
  ) {
    this.senderUserId = `@${reg.senderLocalpart}:${serverName}`;
  }

  get id(): string {
    return this.reg.id;
  }

  private isLocal(userId: string): boolean {
    return userId.startsWith('@') && userId.endsWith(`:${this.serverName}`);
  }

  /** The user is the sender or a local user matching a user namespace. */
  isInterestedInUser(userId: string): boolean {
    if (userId === this.senderUserId) return true;
    return this.isLocal(userId) && this.reg.namespaces.users.some((n) => n.regex.test(userId));
  }

  /** The user is in one of this service's user namespaces (exclusive ones only if asked). */
  userInNamespace(userId: string, exclusiveOnly = false): boolean {
    return this.isLocal(userId) && this.reg.namespaces.users.some((n) => (!exclusiveOnly || n.exclusive) && n.regex.test(userId));
  }

  aliasInNamespace(alias: string, exclusiveOnly = false): boolean {
    return this.reg.namespaces.aliases.some((n) => (!exclusiveOnly || n.exclusive) && n.regex.test(alias));
  }

  roomInNamespace(roomId: string): boolean {
    return this.reg.namespaces.rooms.some((n) => n.regex.test(roomId));
  }
}

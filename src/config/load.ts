import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { Kind, KindGuard, type TLiteral, type TSchema } from '@sinclair/typebox';
import { parseDocument } from 'yaml';
import { ConfigSchema, type Config, type RawConfig } from './schema.js';

import { ConfigError } from './error.js';

export { ConfigError };

/** Environment variables with the MYELIN_ prefix that are not configuration keys. */
const RESERVED_ENV = new Set(['MYELIN_DATA_DIR', 'MYELIN_CONFIG']);
const RESERVED_ENV_PREFIXES = ['MYELIN_TEST_', 'MYELIN_BENCH_'];

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function childSchema(schema: TSchema, key: string): TSchema | undefined {
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  return props?.[key];
}

/** A short description of what a schema allows, for error messages. */
export function describeAllowed(schema: TSchema): string {
  if (KindGuard.IsUnion(schema)) {
    const members = schema.anyOf;
    if (members.every((m) => KindGuard.IsLiteral(m))) {
      return `one of ${members.map((m) => JSON.stringify((m as TLiteral).const)).join(', ')}`;
    }
    return members.map(describeAllowed).join(', or ');
  }
  if (KindGuard.IsInteger(schema) || KindGuard.IsNumber(schema)) {
    const what = KindGuard.IsInteger(schema) ? 'an integer' : 'a number';
    if (schema.minimum !== undefined && schema.maximum !== undefined) return `${what} from ${schema.minimum} to ${schema.maximum}`;
    if (schema.minimum !== undefined) return `${what} >= ${schema.minimum}`;
    return what;
  }
  if (KindGuard.IsBoolean(schema)) return 'true or false';
  if (KindGuard.IsString(schema)) {
    const parts = ['a string'];
    if (schema.description) parts.push(`(${schema.description})`);
    if (schema.pattern) parts.push(`matching /${schema.pattern}/`);
    if (schema.minLength) parts.push(`of at least ${schema.minLength} characters`);
    return parts.join(' ');
  }
  if (KindGuard.IsObject(schema)) return `a mapping with keys ${Object.keys(schema.properties).join(', ')}`;
  return 'a valid value';
}

function show(v: unknown): string {
  return v === undefined ? '(missing)' : JSON.stringify(v);
}

/** Rejects keys the schema does not know, naming the nearest allowed ones. */
function checkUnknownKeys(value: unknown, schema: TSchema, path: string[], source: string): void {
  if (!isObj(value)) return;
  const props = (schema as { properties?: Record<string, TSchema> }).properties;
  if (!props) return;
  for (const [key, v] of Object.entries(value)) {
    const sub = props[key];
    const name = [...path, key].join('.');
    if (!sub) {
      throw new ConfigError(
        `Unknown configuration key "${name}" (value ${show(v)}) in ${source}. ` +
          `Allowed keys${path.length ? ` under "${path.join('.')}"` : ''}: ${Object.keys(props).join(', ')}.`,
      );
    }
    checkUnknownKeys(v, sub, [...path, key], source);
  }
}

function schemaAt(path: string[]): TSchema | undefined {
  let s: TSchema | undefined = ConfigSchema;
  for (const key of path) {
    if (!s) return undefined;
    s = childSchema(s, key);
  }
  return s;
}

/** Converts an environment string to the type the schema expects at that place. */
function coerceEnv(raw: string, schema: TSchema): unknown {
  const kinds = new Set<string>();
  const collect = (s: TSchema) => {
    if (KindGuard.IsUnion(s)) s.anyOf.forEach(collect);
    else kinds.add(s[Kind]);
  };
  collect(schema);
  if ((kinds.has('Integer') || kinds.has('Number')) && /^-?[0-9]+(\.[0-9]+)?$/.test(raw.trim())) return Number(raw);
  if (kinds.has('Boolean') && /^(true|false)$/i.test(raw.trim())) return raw.trim().toLowerCase() === 'true';
  if (kinds.has('Object')) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

/** Applies MYELIN_A__B=value overrides (nesting by double underscore) onto a raw config object. */
export function applyEnvOverrides(raw: Obj, env: NodeJS.ProcessEnv): Obj {
  const out = structuredClone(raw);
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('MYELIN_') || value === undefined) continue;
    if (RESERVED_ENV.has(name) || RESERVED_ENV_PREFIXES.some((p) => name.startsWith(p))) continue;
    const path = name.slice('MYELIN_'.length).toLowerCase().split('__');
    const schema = schemaAt(path);
    if (!schema) {
      throw new ConfigError(
        `Unknown configuration key "${path.join('.')}" from environment variable ${name}=${JSON.stringify(value)}. ` +
          `Environment overrides are MYELIN_ followed by the key path in capitals with __ between levels, ` +
          `e.g. MYELIN_SERVER_NAME or MYELIN_LISTENERS__CLIENT__PORT.`,
      );
    }
    let target = out;
    for (const key of path.slice(0, -1)) {
      if (!isObj(target[key])) target[key] = {};
      target = target[key] as Obj;
    }
    target[path[path.length - 1]!] = coerceEnv(value, schema);
  }
  return out;
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

export function parseByteSize(v: number | string): number {
  if (typeof v === 'number') return v;
  const m = /^([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)i?[bB]?$/.exec(v.trim());
  if (!m) throw new ConfigError(`Invalid size ${JSON.stringify(v)}: use a number of bytes or a size like 512k, 50M, 1G.`);
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
}

function hostOf(serverName: string): string {
  return serverName.startsWith('[') ? serverName.slice(0, serverName.indexOf(']') + 1) : serverName.split(':')[0]!;
}

function isLocalName(host: string): boolean {
  return host === 'localhost' || /^[0-9.]+$/.test(host) || host.startsWith('[');
}

/**
 * Validates a raw configuration object (already merged from file, environment and overrides)
 * and resolves derived values. Throws ConfigError naming the key, value and what is allowed.
 */
export function validateConfig(raw: unknown, dataDir: string, source = 'the configuration'): Config {
  if (!isObj(raw)) throw new ConfigError(`${source} must be a YAML mapping of keys to values, got ${show(raw)}.`);
  checkUnknownKeys(raw, ConfigSchema, [], source);
  const withDefaults = Value.Default(ConfigSchema, structuredClone(raw)) as Obj;
  const first = Value.Errors(ConfigSchema, withDefaults).First();
  if (first) {
    const path = first.path.split('/').filter(Boolean);
    const key = path.join('.') || '(top level)';
    const schema = schemaAt(path) ?? first.schema;
    if (first.value === undefined) {
      throw new ConfigError(`Missing required configuration key "${key}" in ${source}: expected ${describeAllowed(schema)}.`);
    }
    throw new ConfigError(
      `Invalid value for configuration key "${key}" in ${source}: got ${show(first.value)}, expected ${describeAllowed(schema)}.`,
    );
  }
  const c = withDefaults as unknown as RawConfig;
  if (c.database.engine === 'postgres' && !c.database.url) {
    throw new ConfigError(`Configuration key "database.url" is required when database.engine is "postgres" (in ${source}).`);
  }
  if (Object.hasOwn(c.well_known.client_extra, 'm.homeserver')) {
    throw new ConfigError(`Configuration key "well_known.client_extra" cannot set "m.homeserver": use well_known.client (in ${source}).`);
  }
  const support = c.well_known.support;
  if (support) {
    if (!support.contacts && !support.support_page) {
      throw new ConfigError(`Configuration key "well_known.support" needs "contacts" or "support_page" (in ${source}).`);
    }
    support.contacts?.forEach((contact, i) => {
      if (!contact.matrix_id && !contact.email_address) {
        throw new ConfigError(`Configuration key "well_known.support.contacts.${i}" needs "matrix_id" or "email_address" (in ${source}).`);
      }
    });
  }
  const host = hostOf(c.server_name);
  const public_baseurl =
    c.public_baseurl ??
    (isLocalName(host) ? `http://${host}:${c.listeners.client.port}/` : `https://${c.server_name}/`);
  const absDataDir = resolve(dataDir);
  return {
    ...c,
    public_baseurl: public_baseurl.endsWith('/') ? public_baseurl : `${public_baseurl}/`,
    max_request_body: parseByteSize(c.max_request_body),
    listeners: resolveListenerFiles(c.listeners, absDataDir),
    federation: {
      ...c.federation,
      ca_files: c.federation.ca_files.map((f) => (isAbsolute(f) ? f : resolve(absDataDir, f))),
      max_response_size: parseByteSize(c.federation.max_response_size),
    },
    media: resolveMedia(c.media, absDataDir),
    data_dir: absDataDir,
    database: {
      ...c.database,
      path: isAbsolute(c.database.path) ? c.database.path : resolve(absDataDir, c.database.path),
    },
  };
}

/** Media settings: sizes in bytes, the store path absolute. */
function resolveMedia(m: RawConfig['media'], dataDir: string): Config['media'] {
  return {
    ...m,
    store_path: isAbsolute(m.store_path) ? m.store_path : resolve(dataDir, m.store_path),
    max_upload_size: parseByteSize(m.max_upload_size),
    max_user_storage: m.max_user_storage === undefined ? undefined : parseByteSize(m.max_user_storage),
    max_thumbnail_source_size: parseByteSize(m.max_thumbnail_source_size),
    url_preview: { ...m.url_preview, max_size: parseByteSize(m.url_preview.max_size) },
  };
}

/** TLS certificate and key paths of listeners, made absolute against the data directory. */
function resolveListenerFiles(listeners: RawConfig['listeners'], dataDir: string): RawConfig['listeners'] {
  const abs = (f: string) => (isAbsolute(f) ? f : resolve(dataDir, f));
  const out = { ...listeners };
  for (const name of Object.keys(out) as (keyof typeof out)[]) {
    const tls = out[name].tls;
    if (tls) out[name] = { ...out[name], tls: { cert_file: abs(tls.cert_file), key_file: abs(tls.key_file) } };
  }
  return out;
}

/** Reads a YAML file into a plain object, with a clear error for syntax problems. */
export function readConfigFile(path: string): Obj {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`Cannot read configuration file ${path}: ${(err as Error).message}. Run "myelin init" to create one.`);
  }
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(`Configuration file ${path} is not valid YAML: ${e.message}`);
  }
  const value = doc.toJS() as unknown;
  if (value === null || value === undefined) return {};
  if (!isObj(value)) throw new ConfigError(`Configuration file ${path} must be a mapping of keys to values.`);
  return value;
}

function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Obj, v) : v;
  }
  return out;
}

export interface LoadOptions {
  dataDir: string;
  configPath: string;
  env?: NodeJS.ProcessEnv;
  /** Programmatic overrides, applied last (tests, CLI flags). */
  overrides?: Obj;
}

/** Loads myelin.yaml, applies MYELIN_* environment overrides and explicit overrides, validates. */
export function loadConfig(opts: LoadOptions): Config {
  const fromFile = readConfigFile(opts.configPath);
  checkUnknownKeys(fromFile, ConfigSchema, [], opts.configPath);
  const withEnv = applyEnvOverrides(fromFile, opts.env ?? process.env);
  const merged = deepMerge(withEnv, opts.overrides ?? {});
  return validateConfig(merged, opts.dataDir, opts.configPath);
}

/**
 * Validates HTTP responses against the Matrix specification's OpenAPI definitions of the
 * client-server and server-server APIs (vendored in test/fixtures/matrix-spec, so a clean clone
 * can run it).
 *
 *   expectMatchesSpec('GET', '/_matrix/client/v3/rooms/{roomId}/messages', 200, body)
 *   expectMatchesSpec('GET', '/_matrix/client/v3/rooms/!a%3Ab/messages', 200, body)  // concrete paths work too
 *
 * `$ref`s are resolved across files (definitions/, ../../event-schemas/…); the OpenAPI 3.1
 * schemas are JSON Schema 2020-12 and are compiled with ajv. The spec's string formats
 * (mx-user-id, mx-room-id, …) are checked loosely by their leading sigil.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

export const SPEC_DATA_DIR = resolve(import.meta.dirname, '../fixtures/matrix-spec/data');
const CLIENT_SERVER_DIR = join(SPEC_DATA_DIR, 'api/client-server');
const SERVER_SERVER_DIR = join(SPEC_DATA_DIR, 'api/server-server');
/** The APIs a homeserver serves (the application-service and push-gateway APIs are served by others). */
const API_DIRS = [CLIENT_SERVER_DIR, SERVER_SERVER_DIR];

type Json = any;

export interface SpecOperation {
  method: string;
  /** Full path template, e.g. /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey} */
  template: string;
  operationId: string;
  file: string;
  responses: Record<string, Json>;
  regex: RegExp;
  /** Literal (non-parameter) segments, for preferring the most specific template. */
  literalSegments: number;
}

const fileCache = new Map<string, Json>();

/**
 * Known inconsistencies of the spec's definitions, corrected as the files are loaded (each
 * with the reason). The rest of the spec is the authority for these.
 */
const ERRATA: Array<{ file: string; why: string; fix: (doc: Json) => void }> = [
  {
    file: 'api/server-server/definitions/invite_event.yaml',
    why:
      'PDUs have no top-level `origin` (definitions/components/pdu_base.yaml; room version 11 stopped protecting it from ' +
      'redaction), yet the invite event still requires it; /invite answers with the PDU as signed, which cannot gain fields',
    fix: (doc) => {
      const part = doc.allOf[0];
      part.required = part.required.filter((k: string) => k !== 'origin');
    },
  },
];

function loadYaml(file: string): Json {
  let doc = fileCache.get(file);
  if (doc === undefined) {
    doc = parse(readFileSync(file, 'utf8'));
    for (const e of ERRATA) if (file === join(SPEC_DATA_DIR, e.file)) e.fix(doc);
    fileCache.set(file, doc);
  }
  return doc;
}

function pointer(doc: Json, ptr: string): Json {
  if (!ptr || ptr === '/') return doc;
  let cur = doc;
  for (const raw of ptr.replace(/^\//, '').split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === undefined || cur === null) break;
    cur = cur[key];
  }
  if (cur === undefined) throw new Error(`unresolvable JSON pointer ${ptr}`);
  return cur;
}

/**
 * Returns a copy of `node` with every `$ref` inlined. A reference already being expanded
 * (a recursive schema) becomes `{}`, which accepts anything at that depth.
 */
export function resolveRefs(node: Json, file: string, stack: string[] = []): Json {
  if (Array.isArray(node)) return node.map((n) => resolveRefs(n, file, stack));
  if (node === null || typeof node !== 'object') return node;
  if (typeof node.$ref === 'string') {
    const [target, ptr = ''] = node.$ref.split('#');
    const targetFile = target ? resolve(dirname(file), target) : file;
    const key = `${targetFile}#${ptr}`;
    if (stack.includes(key)) return {};
    const resolved = resolveRefs(pointer(loadYaml(targetFile), ptr), targetFile, [...stack, key]);
    // Sibling keywords next to $ref (allowed in 3.1) apply as well.
    const { $ref: _r, ...siblings } = node;
    if (Object.keys(siblings).length === 0) return resolved;
    return { allOf: [resolved, resolveRefs(siblings, file, stack)] };
  }
  const out: Json = {};
  // Spec erratum: `oneOf: [{type: object}, <state event>]` (GET /rooms/{roomId}/state/…)
  // can never pass for an event, which is an object too; the intent is anyOf.
  if (Array.isArray(node.oneOf) && node.oneOf.some((s: Json) => isBareObjectSchema(s))) {
    const { oneOf, ...rest } = node;
    return resolveRefs({ ...rest, anyOf: oneOf }, file, stack);
  }
  for (const [k, v] of Object.entries(node)) {
    // Examples are documentation (and $ref example files we do not vendor).
    if (k === 'example' || k === 'examples') continue;
    out[k] = resolveRefs(v, file, stack);
  }
  return out;
}

function isBareObjectSchema(s: Json): boolean {
  return s && typeof s === 'object' && s.type === 'object' && Object.keys(s).every((k) => k === 'type' || k === 'description');
}

function templateRegex(template: string): RegExp {
  const src = template
    .split(/(\{[^}]+\})/)
    .map((part) => (part.startsWith('{') ? '[^/]*' : part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${src}$`);
}

let operations: SpecOperation[] | undefined;

/** Every operation of the client-server and server-server APIs, from all YAML files. */
export function specOperations(): SpecOperation[] {
  if (operations) return operations;
  operations = [];
  for (const dir of API_DIRS) {
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.yaml')) continue;
      const file = join(dir, name);
      const doc = loadYaml(file);
      if (!doc?.paths) continue;
      const basePath: string = doc.servers?.[0]?.variables?.basePath?.default ?? '';
      for (const [path, item] of Object.entries<Json>(doc.paths)) {
        for (const method of ['get', 'put', 'post', 'delete', 'patch']) {
          const op = item[method];
          if (!op) continue;
          const template = basePath + path;
          operations.push({
            method: method.toUpperCase(),
            template,
            operationId: op.operationId,
            file,
            responses: op.responses ?? {},
            regex: templateRegex(template),
            literalSegments: template.split('/').filter((s) => s && !s.startsWith('{')).length,
          });
        }
      }
    }
  }
  return operations;
}

/** Maps r0 paths to their v3 equivalents (the spec only documents v3). */
function normalisePath(path: string): string {
  return path.split('?')[0]!.replace(/^\/_matrix\/(client|media)\/r0\//, '/_matrix/$1/v3/');
}

/**
 * The operation a Fastify route (`/rooms/:roomId/state/:eventType`, wildcards `*`) serves, or
 * undefined when the spec has none. Parameters are replaced by a placeholder value so the
 * concrete-path matching of findOperation applies.
 */
export function operationOfRoute(method: string, url: string): SpecOperation | undefined {
  const concrete = url.replace(/:[A-Za-z0-9_]+/g, 'x').replace(/\*/g, 'x');
  try {
    return findOperation(method, concrete);
  } catch {
    return undefined;
  }
}

/** The operation for a method and a path template or concrete path. */
export function findOperation(method: string, path: string): SpecOperation {
  const m = method.toUpperCase();
  const p = normalisePath(path);
  const ops = specOperations().filter((o) => o.method === m);
  const exact = ops.find((o) => o.template === p);
  if (exact) return exact;
  let matches = ops.filter((o) => o.regex.test(p));
  // "When an empty string, the trailing slash on this endpoint is optional" (state keys).
  if (matches.length === 0) matches = ops.filter((o) => o.regex.test(`${p}/`));
  if (matches.length === 0) throw new Error(`the spec has no operation ${m} ${p}`);
  matches.sort((a, b) => b.literalSegments - a.literalSegments || b.template.split('/').length - a.template.split('/').length);
  // With an empty trailing parameter (".../state/m.room.name/") the longer template wins.
  return matches[0]!;
}

function createAjv() {
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateSchema: false, logger: false });
  const sigil = (s: RegExp) => ({ type: 'string' as const, validate: (v: string) => s.test(v) });
  ajv.addFormat('mx-user-id', sigil(/^@[^:]*:.+$/));
  ajv.addFormat('mx-room-id', sigil(/^!.+$/));
  ajv.addFormat('mx-event-id', sigil(/^\$.+$/));
  ajv.addFormat('mx-room-alias', sigil(/^#[^:]*:.+$/));
  ajv.addFormat('mx-mxc-uri', sigil(/^mxc:\/\/.+$/));
  ajv.addFormat('mx-server-name', sigil(/^\S+$/));
  ajv.addFormat('mx-unpadded-base64', sigil(/^[A-Za-z0-9+/]*$/));
  ajv.addFormat('mx-urlsafe-unpadded-base64', sigil(/^[A-Za-z0-9_-]*$/));
  ajv.addFormat('uri', sigil(/^[A-Za-z][A-Za-z0-9+.-]*:\S*$/));
  ajv.addFormat('email', sigil(/^[^@\s]+@[^@\s]+$/));
  ajv.addFormat('int64', { type: 'number', validate: (n: number) => Number.isSafeInteger(n) });
  ajv.addFormat('float', { type: 'number', validate: () => true });
  return ajv;
}

let ajv: ReturnType<typeof createAjv> | undefined;
const validators = new Map<string, ValidateFunction>();

function compile(key: string, schema: Json): ValidateFunction {
  const hit = validators.get(key);
  if (hit) return hit;
  ajv ??= createAjv();
  const v = ajv.compile(schema);
  validators.set(key, v);
  return v;
}

/** The spec's standard error body ({ errcode, error }), for error statuses an operation does not list. */
function standardErrorValidator(): ValidateFunction {
  const file = join(CLIENT_SERVER_DIR, 'definitions/errors/error.yaml');
  return compile('#standard-error', resolveRefs(loadYaml(file), file));
}

/**
 * 401 has two documented shapes whatever the operation lists: the user-interactive
 * authentication response (with `flows`) of any endpoint that uses it ("User-interactive
 * authentication API"), and the standard error of a missing or unknown access token ("Using
 * access tokens"). The body's shape picks the schema; either must then match fully.
 */
function unauthorizedValidator(body: unknown): ValidateFunction {
  if (body !== null && typeof body === 'object' && 'flows' in body) {
    const file = join(CLIENT_SERVER_DIR, 'definitions/auth_response.yaml');
    return compile('#auth-response', resolveRefs(loadYaml(file), file));
  }
  return standardErrorValidator();
}

/**
 * The validator of an operation's response body for a status; undefined when the spec gives
 * that response no JSON body. Throws if the status is not a documented success status.
 */
export function responseValidator(method: string, path: string, status: number): ValidateFunction | undefined {
  const op = findOperation(method, path);
  const response = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`];
  if (!response) {
    if (status >= 400) return standardErrorValidator();
    throw new Error(`${op.method} ${op.template} does not document status ${status} (documented: ${Object.keys(op.responses).join(', ')})`);
  }
  const resolved = resolveRefs(response, op.file);
  const schema = resolved.content?.['application/json']?.schema;
  if (!schema) return undefined;
  return compile(`${op.method} ${op.template} ${status}`, schema);
}

/**
 * The media types the spec documents for an operation's response with this status (e.g.
 * ['image/jpeg', 'image/png', …] for a thumbnail), [] when it documents no body.
 */
export function responseContentTypes(method: string, path: string, status: number): string[] {
  const op = findOperation(method, path);
  const response = op.responses[String(status)] ?? op.responses[`${String(status)[0]}XX`];
  if (!response) return [];
  return Object.keys(resolveRefs(response, op.file).content ?? {});
}

/**
 * Checks a response that is not JSON (media, multipart) against the spec: its media type must
 * be one the operation documents for the status (`application/octet-stream` stands for any
 * type, as downloads answer with the uploaded file's type), and the operation must document
 * no JSON body for it. Records the operation as validated.
 */
export function expectContentTypeMatchesSpec(method: string, path: string, status: number, contentType: string | null): void {
  const op = findOperation(method, path);
  recordValidated(op, status);
  const documented = responseContentTypes(method, path, status);
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (documented.includes('application/octet-stream') && type !== '') return;
  if (!documented.includes(type)) {
    throw new Error(`${op.method} ${op.template} → ${status}: content type "${type}" is not documented (${documented.join(', ') || 'no body'})`);
  }
}

/** Every operation a test validated a response of (for coverage checks). */
export const validatedOperations = new Set<string>();
/** The statuses validated per operation ("METHOD template" → statuses), for coverage checks. */
export const validatedStatuses = new Map<string, Set<number>>();

function recordValidated(op: SpecOperation, status: number): void {
  const key = `${op.method} ${op.template}`;
  validatedOperations.add(key);
  let set = validatedStatuses.get(key);
  if (!set) validatedStatuses.set(key, (set = new Set()));
  set.add(status);
}

/** Throws with the ajv errors if `body` does not match the spec's response schema. */
export function expectMatchesSpec(method: string, path: string, status: number, body: unknown): void {
  const op = findOperation(method, path);
  recordValidated(op, status);
  const validate = status === 401 ? unauthorizedValidator(body) : responseValidator(method, path, status);
  if (!validate) return;
  if (!validate(body)) {
    const errs = (validate.errors ?? [])
      .slice(0, 10)
      .map((e) => `  ${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`)
      .join('\n');
    throw new Error(`${op.method} ${op.template} → ${status}: response does not match the spec (${op.operationId})\n${errs}\nbody: ${JSON.stringify(body).slice(0, 2000)}`);
  }
}

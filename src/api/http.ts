import { randomBytes } from 'node:crypto';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv, type ErrorObject, type Options as AjvOptions, type ValidateFunction } from 'ajv';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import FindMyWay from 'find-my-way';
import sjson from 'secure-json-parse';
import type { Logger } from 'pino';
import { errors, MatrixError } from '../errors.js';
import { safeUrl } from '../logger.js';

export type HttpApp = FastifyInstance<any, any, any, Logger, TypeBoxTypeProvider>;

const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'GET, POST, PUT, DELETE, OPTIONS',
  'access-control-allow-headers': 'X-Requested-With, Content-Type, Authorization',
} as const;

/** Request bodies are validated as sent: no type coercion, nothing removed, no defaults injected. */
const BODY_AJV: AjvOptions = { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, strict: false };
/** Query strings and path parameters arrive as strings: numbers and booleans are coerced. */
const PARAMS_AJV: AjvOptions = { coerceTypes: 'array', removeAdditional: false, useDefaults: true, allErrors: false, strict: false };

export interface HttpAppOptions {
  log: Logger;
  bodyLimit: number;
  /** Graceful shutdown: how long in-flight requests may take once closing starts. */
  requestTimeoutMs?: number;
  /** Serve HTTPS with this certificate chain and key (PEM), or per connection from SNICallback. */
  https?: { cert?: Buffer | string; key?: Buffer | string; SNICallback?: import('node:tls').TlsOptions['SNICallback'] };
}

/** Every method and path registered on an app (OPTIONS excluded), in registration order. */
const routeLists = new WeakMap<object, Array<{ method: string; url: string }>>();

/** The routes registered on an app built by createHttpApp (for tests that check coverage). */
export function registeredRoutes(app: HttpApp): ReadonlyArray<{ method: string; url: string }> {
  return routeLists.get(app) ?? [];
}

/** A validator that compiles its schema with Ajv when first called (or on precompile()). */
type DataValidationCxt = Parameters<ValidateFunction>[1];

interface LazyValidator {
  (data: unknown, dataCxt?: DataValidationCxt): boolean;
  errors?: ErrorObject[] | null;
  /** Fastify passes the parent object (so Ajv may coerce a root value) when this is set. */
  schemaEnv: true;
  precompile(): void;
}

function lazyValidator(ajv: Ajv, schema: object): LazyValidator {
  let compiled: ValidateFunction | undefined;
  const validate = ((data: unknown, dataCxt?: DataValidationCxt) => {
    compiled ??= ajv.compile(schema);
    const ok = compiled(data, dataCxt);
    validate.errors = compiled.errors;
    return ok;
  }) as LazyValidator;
  validate.schemaEnv = true;
  validate.precompile = () => {
    compiled ??= ajv.compile(schema);
  };
  return validate;
}

const lazyValidators = new WeakMap<object, LazyValidator[]>();

/** Compiles every route validator of an app now (tests: every schema compiles). Returns how many. */
export function precompileValidators(app: HttpApp): number {
  const list = lazyValidators.get(app) ?? [];
  for (const v of list) v.precompile();
  return list.length;
}

type LevelName = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal';

/**
 * A request's logger: the pino child with the request ID is made on the first line actually
 * logged, not for every request (making it copies the bindings and runs redaction, a few µs).
 * Lines below the level are dropped without making it. Fastify uses it only when the route
 * sets no log level or serializers (then it makes a real child).
 */
class RequestLogger {
  private made: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly childBindings: Record<string, unknown>,
  ) {}

  private get logger(): Logger {
    return (this.made ??= this.parent.child(this.childBindings));
  }

  private write(level: LevelName, args: unknown[]): void {
    if (this.parent.isLevelEnabled(level)) (this.logger[level] as (...a: unknown[]) => void)(...args);
  }

  trace(...args: unknown[]): void {
    this.write('trace', args);
  }
  debug(...args: unknown[]): void {
    this.write('debug', args);
  }
  info(...args: unknown[]): void {
    this.write('info', args);
  }
  warn(...args: unknown[]): void {
    this.write('warn', args);
  }
  error(...args: unknown[]): void {
    this.write('error', args);
  }
  fatal(...args: unknown[]): void {
    this.write('fatal', args);
  }
  silent(): void {}

  get level(): string {
    return this.parent.level;
  }

  isLevelEnabled(level: string): boolean {
    return this.parent.isLevelEnabled(level);
  }

  bindings(): Record<string, unknown> {
    return this.logger.bindings();
  }

  child(bindings: Record<string, unknown>, options?: object): Logger {
    return this.logger.child(bindings, options);
  }
}

function requestLoggerFactory(logger: Logger, bindings: Record<string, unknown>, opts: { level?: string; serializers?: unknown }): Logger {
  if (opts.level !== undefined || opts.serializers !== undefined) return logger.child(bindings, opts as object);
  return new RequestLogger(logger, bindings) as unknown as Logger;
}

function toMatrixError(err: FastifyError | Error, req: FastifyRequest): MatrixError {
  if (err instanceof MatrixError) return err;
  const fe = err as FastifyError & { validationContext?: string };
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return errors.tooLarge();
  if (fe.validation) {
    const where = fe.validationContext ?? 'body';
    return where === 'body' ? errors.badJson(fe.message) : errors.invalidParam(fe.message);
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new MatrixError('M_UNRECOGNIZED', 415, 'Unsupported content type');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new MatrixError(fe.statusCode === 404 ? 'M_NOT_FOUND' : 'M_UNKNOWN', fe.statusCode, fe.message);
  }
  req.log.error({ err }, 'request failed with an unexpected error');
  return errors.unknown();
}

/**
 * A Fastify instance with Matrix behaviour: Matrix error bodies for every failure, CORS on every
 * response, OPTIONS answered for every path, 404/405 as M_UNRECOGNIZED, lenient JSON bodies.
 */
export function createHttpApp(opts: HttpAppOptions): HttpApp {
  const reqIdPrefix = `${randomBytes(3).toString('base64url')}-`;
  let reqIdCounter = 0;
  const app = Fastify({
    ...(opts.https ? { https: { ...opts.https } } : {}),
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'req_id' }),
    childLoggerFactory: requestLoggerFactory as never,
    bodyLimit: opts.bodyLimit,
    // Unique in this process and cheap: a random prefix per start, then a counter.
    genReqId: () => `${reqIdPrefix}${(++reqIdCounter).toString(36)}`,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { maxParamLength: 1024, ignoreDuplicateSlashes: false },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Validators are compiled on a route's first request, not all at start-up: compiling the
  // few hundred route schemas eagerly took about a quarter of a second of CPU and kept code
  // for endpoints a small server may never see. precompileValidators() compiles them all.
  const bodyAjv = new Ajv(BODY_AJV);
  const paramsAjv = new Ajv(PARAMS_AJV);
  const lazy: LazyValidator[] = [];
  lazyValidators.set(app, lazy);
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const v = lazyValidator(httpPart === 'body' ? bodyAjv : paramsAjv, schema as object);
    lazy.push(v);
    return v;
  });

  // Matrix clients do not always send Content-Type: treat every body as JSON unless a route
  // registers its own parser (media uploads do).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === '') return done(null, {});
    try {
      done(null, sjson.parse(text, undefined, { protoAction: 'remove', constructorAction: 'remove' }));
    } catch {
      done(errors.notJson('Request body is not valid JSON'), undefined);
    }
  });

  // A shadow router of every registered method+path, to tell "no such endpoint" (404) from
  // "endpoint exists, wrong method" (405).
  const known = FindMyWay({ ignoreTrailingSlash: false });
  const routes: Array<{ method: string; url: string }> = [];
  routeLists.set(app, routes);
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const m of methods) {
      if (m === 'OPTIONS') continue;
      routes.push({ method: m, url: route.url });
      try {
        known.on(m as 'GET', route.url, () => {});
      } catch {
        /* already known (e.g. HEAD for GET) */
      }
    }
  });

  // Hooks in callback style: no promise per request.
  app.addHook('onRequest', (_req, reply, done) => {
    reply.headers(CORS_HEADERS);
    done();
  });
  // Once shutdown starts, responses to requests still in flight close their connection,
  // so keep-alive clients do not hold the server open.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (_req, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  // A line per request at debug level; without debug logging, no hook runs for it at all
  // (the level is set once, at start).
  if (opts.log.isLevelEnabled('debug')) {
    app.addHook('onResponse', (req, reply, done) => {
      req.log.debug({ method: req.method, url: safeUrl(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
      done();
    });
  }

  app.options('/*', async (_req, reply) => {
    reply.code(204).send();
  });

  app.setNotFoundHandler(async (req, reply) => {
    reply.headers(CORS_HEADERS);
    const path = req.url.split('?')[0]!;
    const otherMethods = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'].filter(
      (m) => m !== req.method && known.find(m as 'GET', path) !== null,
    );
    const err = otherMethods.length > 0 ? errors.methodNotAllowed(req.method) : errors.unrecognized();
    if (otherMethods.length > 0) reply.header('allow', [...otherMethods, 'OPTIONS'].join(', '));
    reply.code(err.status).send(err.toJSON());
  });

  app.setErrorHandler(async (err: FastifyError, req, reply: FastifyReply) => {
    const merr = toMatrixError(err, req);
    if (merr.status >= 500) reply.header('cache-control', 'no-store');
    const retryMs = merr.extra['retry_after_ms'];
    if (merr.status === 429 && typeof retryMs === 'number') reply.header('retry-after', String(Math.max(1, Math.ceil(retryMs / 1000))));
    reply.headers(CORS_HEADERS).code(merr.status).send(merr.toJSON());
  });

  return app as unknown as HttpApp;
}

import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createHttpApp } from '../../../src/api/http.js';
import { createLogger } from '../../../src/logger.js';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: createLogger(level, stream as unknown as pino.DestinationStream).child({ listener: 'client' }) };
}

describe('request loggers', () => {
  it('log with the request ID and the listener, at the logger level, with redaction', async () => {
    const { lines, log } = capture('info');
    const app = createHttpApp({ log, bodyLimit: 1024 });
    app.get('/quiet', async () => ({ ok: true }));
    app.get('/talk', async (req) => {
      req.log.debug('not shown');
      req.log.info({ access_token: 'secret', n: 1 }, 'hello');
      req.log.warn('careful');
      expect(req.log.isLevelEnabled('debug')).toBe(false);
      expect(req.log.level).toBe('info');
      const child = req.log.child({ extra: 2 });
      child.info('from child');
      return { id: req.id };
    });
    app.get('/crash', async () => {
      throw new Error('boom');
    });
    await app.ready();
    expect((await app.inject({ method: 'GET', url: '/quiet' })).statusCode).toBe(200);
    expect(lines).toEqual([]);
    const res = await app.inject({ method: 'GET', url: '/talk' });
    const id = (res.json() as { id: string }).id;
    expect(lines.map((l) => [l.msg, l.req_id, l.listener, l.level])).toEqual([
      ['hello', id, 'client', 30],
      ['careful', id, 'client', 40],
      ['from child', id, 'client', 30],
    ]);
    expect(lines[0]!.access_token).toBe('[redacted]');
    expect(lines[0]!.n).toBe(1);
    expect(lines[2]!.extra).toBe(2);
    lines.length = 0;
    const crash = await app.inject({ method: 'GET', url: '/crash' });
    expect(crash.statusCode).toBe(500);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toBe('request failed with an unexpected error');
    expect(typeof lines[0]!.req_id).toBe('string');
    expect((lines[0]!.err as { message: string }).message).toBe('boom');
    await app.close();
  });

  it('honour a route log level', async () => {
    const { lines, log } = capture('info');
    const app = createHttpApp({ log, bodyLimit: 1024 });
    app.get('/verbose', { logLevel: 'debug' }, async (req) => {
      req.log.debug('shown');
      return {};
    });
    await app.ready();
    await app.inject({ method: 'GET', url: '/verbose' });
    expect(lines.map((l) => l.msg)).toEqual(['shown']);
    await app.close();
  });
});

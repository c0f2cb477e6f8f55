import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { staticResolver, type StaticDnsRecords } from '../../../src/federation/dns.js';
import {
  pickSrv,
  ServerDiscovery,
  WELL_KNOWN_DEFAULT_CACHE_MS,
  WELL_KNOWN_MAX_CACHE_MS,
  WELL_KNOWN_MIN_CACHE_MS,
  wellKnownCachePeriod,
} from '../../../src/federation/discovery.js';
import { FederationTlsError } from '../../../src/federation/errors.js';
import { FederationTransport } from '../../../src/federation/transport.js';
import { createTestCa } from '../../_util/test-ca.js';

/** What the fake :443 answers per Host: status, headers, body. */
type Answer = { status: number; headers?: Record<string, string>; body?: string };

const ca = createTestCa();
const wkNames = ['example.test', 'ip.test', 'port.test', 'srv.test', 'legacy.test', 'plain.test', 'cache.test', 'bad.test', 'redir.test', 'target.test', 'nowk.test', 'loop.test'];
const answers = new Map<string, Answer>();
const hits = new Map<string, number>();
let wk: Server;
let wkPort: number;
let clock = 1_000_000;
let dns: StaticDnsRecords;

function discovery(opts: { connect443?: boolean } = {}) {
  const transport = new FederationTransport({
    resolver: staticResolver(dns),
    tls: { ca: [ca.certPem], verify: true },
    // Port 443 of every name is the local well-known server.
    connectPort: (_host, port) => (port === 443 && opts.connect443 !== false ? wkPort : port),
  });
  return { d: new ServerDiscovery({ transport, now: () => clock, random: () => 0 }), transport };
}

beforeAll(async () => {
  const cert = ca.issue({ dnsNames: wkNames });
  wk = createServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    const host = (req.headers.host ?? '').toLowerCase();
    const key = `${host}${req.url}`;
    hits.set(key, (hits.get(key) ?? 0) + 1);
    const a = answers.get(key) ?? { status: 404, body: '{"errcode":"M_NOT_FOUND"}' };
    res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
    res.end(a.body ?? '');
  });
  await new Promise<void>((r) => wk.listen(0, '127.0.0.1', r));
  wkPort = (wk.address() as AddressInfo).port;
  const a: Record<string, string[]> = {};
  for (const n of [...wkNames, 'deleg.test', 'host.test', 'srvtarget.test']) a[n] = ['127.0.0.1'];
  dns = { a, srv: {} };
});

afterAll(() => new Promise<void>((r) => wk.close(() => r())));

const WK = '/.well-known/matrix/server';

describe('server discovery', () => {
  it('1. IP literals: the IP with the given port or 8448; Host is the server name; certificate for the IP', async () => {
    const { d } = discovery();
    expect(await d.resolve('1.2.3.4')).toMatchObject({ step: 'ip-literal', host: '1.2.3.4', port: 8448, hostHeader: '1.2.3.4', tlsName: '1.2.3.4' });
    expect(await d.resolve('1.2.3.4:1234')).toMatchObject({ host: '1.2.3.4', port: 1234, hostHeader: '1.2.3.4:1234' });
    expect(await d.resolve('[2001:db8::1]:99')).toMatchObject({ step: 'ip-literal', host: '2001:db8::1', port: 99, hostHeader: '[2001:db8::1]:99', tlsName: '2001:db8::1' });
    expect(await d.resolve('[::1]')).toMatchObject({ host: '::1', port: 8448, hostHeader: '[::1]' });
  });

  it('2. explicit port: no well-known, no SRV; Host is name:port; certificate for the hostname', async () => {
    const { d } = discovery();
    const r = await d.resolve('host.test:9999');
    expect(r).toMatchObject({ step: 'explicit-port', host: 'host.test', port: 9999, hostHeader: 'host.test:9999', tlsName: 'host.test' });
    expect(hits.get(`host.test${WK}`)).toBeUndefined();
  });

  it('3.1 well-known delegating to an IP literal (with and without port)', async () => {
    answers.set(`ip.test${WK}`, { status: 200, body: JSON.stringify({ 'm.server': '10.0.0.7' }) });
    const { d } = discovery();
    expect(await d.resolve('ip.test')).toMatchObject({ step: 'well-known-ip-literal', host: '10.0.0.7', port: 8448, hostHeader: '10.0.0.7', tlsName: '10.0.0.7' });
    answers.set(`example.test${WK}`, { status: 200, body: JSON.stringify({ 'm.server': '[fe80::2]:4443' }) });
    expect(await d.resolve('example.test')).toMatchObject({ host: 'fe80::2', port: 4443, hostHeader: '[fe80::2]:4443', tlsName: 'fe80::2' });
  });

  it('3.2 well-known delegating to host:port: Host and certificate are the delegated host', async () => {
    answers.set(`port.test${WK}`, { status: 200, body: JSON.stringify({ 'm.server': 'deleg.test:7443' }) });
    const { d } = discovery();
    expect(await d.resolve('port.test')).toMatchObject({
      step: 'well-known-explicit-port',
      delegatedTo: 'deleg.test:7443',
      host: 'deleg.test',
      port: 7443,
      hostHeader: 'deleg.test:7443',
      tlsName: 'deleg.test',
    });
  });

  it('3.3/3.4/3.5 well-known delegating to a bare host: _matrix-fed SRV, then _matrix SRV, then 8448', async () => {
    answers.set(`srv.test${WK}`, { status: 200, body: JSON.stringify({ 'm.server': 'deleg.test' }) });
    const { d } = discovery();
    expect(await d.resolve('srv.test')).toMatchObject({ step: 'well-known-default-port', host: 'deleg.test', port: 8448, hostHeader: 'deleg.test', tlsName: 'deleg.test' });
    d.forgetWellKnown('srv.test');
    dns.srv!['_matrix._tcp.deleg.test'] = [{ name: 'srvtarget.test', port: 1111, priority: 1, weight: 1 }];
    expect(await d.resolve('srv.test')).toMatchObject({ step: 'well-known-srv-legacy', host: 'srvtarget.test', port: 1111, hostHeader: 'deleg.test', tlsName: 'deleg.test' });
    dns.srv!['_matrix-fed._tcp.deleg.test'] = [{ name: 'srvtarget.test.', port: 2222, priority: 1, weight: 1 }];
    expect(await d.resolve('srv.test')).toMatchObject({ step: 'well-known-srv', host: 'srvtarget.test', port: 2222, hostHeader: 'deleg.test', tlsName: 'deleg.test' });
  });

  it('4/5/6 without well-known: _matrix-fed SRV, then _matrix SRV of the hostname, then 8448; certificate for the hostname', async () => {
    const { d } = discovery();
    expect(await d.resolve('nowk.test')).toMatchObject({ step: 'default-port', host: 'nowk.test', port: 8448, hostHeader: 'nowk.test', tlsName: 'nowk.test' });
    const { d: d2 } = discovery();
    dns.srv!['_matrix._tcp.nowk.test'] = [{ name: 'srvtarget.test', port: 3333, priority: 1, weight: 1 }];
    expect(await d2.resolve('nowk.test')).toMatchObject({ step: 'srv-legacy', host: 'srvtarget.test', port: 3333, hostHeader: 'nowk.test', tlsName: 'nowk.test' });
    dns.srv!['_matrix-fed._tcp.nowk.test'] = [{ name: 'srvtarget.test', port: 4444, priority: 1, weight: 1 }];
    expect(await d2.resolve('nowk.test')).toMatchObject({ step: 'srv', host: 'srvtarget.test', port: 4444, hostHeader: 'nowk.test', tlsName: 'nowk.test' });
  });

  it('treats invalid well-known answers as absent (bad JSON, missing or invalid m.server, non-200)', async () => {
    const { d } = discovery();
    for (const a of [
      { status: 200, body: 'not json' },
      { status: 200, body: '{"m.server": 12}' },
      { status: 200, body: '{"m.server": "bad host!"}' },
      { status: 200, body: '[]' },
      { status: 500, body: JSON.stringify({ 'm.server': 'deleg.test:1' }) },
    ]) {
      answers.set(`bad.test${WK}`, a);
      d.forgetWellKnown('bad.test');
      expect((await d.resolve('bad.test')).step).toBe('default-port');
    }
  });

  it('follows redirects and stops at loops', async () => {
    answers.set(`redir.test${WK}`, { status: 302, headers: { location: 'https://target.test/elsewhere' } });
    answers.set('target.test/elsewhere', { status: 200, body: JSON.stringify({ 'm.server': 'deleg.test:8000' }) });
    const { d } = discovery();
    expect(await d.resolve('redir.test')).toMatchObject({ step: 'well-known-explicit-port', port: 8000 });
    answers.set(`loop.test${WK}`, { status: 301, headers: { location: '/again' } });
    answers.set('loop.test/again', { status: 301, headers: { location: WK } });
    expect((await d.resolve('loop.test')).step).toBe('default-port');
  });

  it('caches well-known answers per Cache-Control, 24 h by default, at most 48 h; errors for an hour', async () => {
    const key = `cache.test${WK}`;
    const { d } = discovery();
    const fetches = () => hits.get(key) ?? 0;
    answers.set(key, { status: 200, headers: { 'cache-control': 'max-age=600' }, body: JSON.stringify({ 'm.server': 'deleg.test:1' }) });
    await d.resolve('cache.test');
    await d.resolve('cache.test');
    expect(fetches()).toBe(1);
    clock += 599_000;
    await d.resolve('cache.test');
    expect(fetches()).toBe(1);
    clock += 2_000;
    answers.set(key, { status: 200, body: JSON.stringify({ 'm.server': 'deleg.test:2' }) });
    expect((await d.resolve('cache.test')).port).toBe(2);
    expect(fetches()).toBe(2);
    // No headers: 24 hours.
    clock += WELL_KNOWN_DEFAULT_CACHE_MS - 1000;
    await d.resolve('cache.test');
    expect(fetches()).toBe(2);
    clock += 2000;
    // A huge max-age is capped at 48 hours.
    answers.set(key, { status: 200, headers: { 'cache-control': 'public, max-age=31536000' }, body: JSON.stringify({ 'm.server': 'deleg.test:3' }) });
    await d.resolve('cache.test');
    expect(fetches()).toBe(3);
    clock += WELL_KNOWN_MAX_CACHE_MS + 1000;
    // Errors are cached for an hour.
    answers.set(key, { status: 404 });
    expect((await d.resolve('cache.test')).step).toBe('default-port');
    expect(fetches()).toBe(4);
    clock += 3599_000;
    await d.resolve('cache.test');
    expect(fetches()).toBe(4);
    clock += 2000;
    await d.resolve('cache.test');
    expect(fetches()).toBe(5);
  });

  it('single-flights concurrent well-known fetches of one host', async () => {
    const key = `plain.test${WK}`;
    answers.set(key, { status: 200, body: JSON.stringify({ 'm.server': 'deleg.test:5' }) });
    const { d } = discovery();
    const all = await Promise.all(Array.from({ length: 10 }, () => d.resolve('plain.test')));
    expect(new Set(all.map((r) => r.port))).toEqual(new Set([5]));
    expect(hits.get(key)).toBe(1);
  });

  it('backs off exponentially when the well-known host is unreachable', async () => {
    const { d } = discovery({ connect443: false }); // port 443 on 127.0.0.1: refused (nothing listens)
    const t0 = clock;
    const first = await d.getWellKnown('example.test');
    expect(first.server).toBeUndefined();
    expect([first.failures, first.expiresAt - t0]).toEqual([1, 5 * 60_000]);
    clock = first.expiresAt + 1;
    const second = await d.getWellKnown('example.test');
    expect([second.failures, second.expiresAt - clock]).toEqual([2, 10 * 60_000]);
    for (let i = 0; i < 6; i++) {
      clock += 3600_000 + 1;
      await d.getWellKnown('example.test');
    }
    const later = await d.getWellKnown('example.test');
    expect(later.expiresAt - clock).toBe(3600_000);
  });
});

describe('well-known cache periods', () => {
  const now = Date.parse('2024-01-01T00:00:00Z');
  it.each<[Record<string, string>, number]>([
    [{}, WELL_KNOWN_DEFAULT_CACHE_MS],
    [{ 'cache-control': 'max-age=7200' }, 7200_000],
    [{ 'cache-control': 'public, MAX-AGE=7200, must-revalidate' }, 7200_000],
    [{ 'cache-control': 'max-age=999999999' }, WELL_KNOWN_MAX_CACHE_MS],
    [{ 'cache-control': 'max-age=1' }, WELL_KNOWN_MIN_CACHE_MS],
    [{ 'cache-control': 'no-store' }, WELL_KNOWN_MIN_CACHE_MS],
    [{ expires: 'Mon, 01 Jan 2024 05:00:00 GMT', date: 'Mon, 01 Jan 2024 01:00:00 GMT' }, 4 * 3600_000],
    [{ expires: 'Mon, 01 Jan 2024 03:00:00 GMT' }, 3 * 3600_000],
    [{ expires: '0' }, WELL_KNOWN_MIN_CACHE_MS],
    [{ 'cache-control': 'max-age=3600', expires: 'Mon, 01 Jan 2024 10:00:00 GMT' }, 3600_000],
  ])('%j → %d ms', (headers, expected) => {
    expect(wellKnownCachePeriod(headers, now)).toBe(expected);
  });
});

describe('SRV selection', () => {
  it('takes the lowest priority, weighted by weight, and ignores "." targets', () => {
    const recs = [
      { name: 'c', port: 3, priority: 20, weight: 100 },
      { name: 'a', port: 1, priority: 10, weight: 1 },
      { name: 'b', port: 2, priority: 10, weight: 3 },
    ];
    expect(pickSrv(recs, () => 0)?.name).toBe('a');
    expect(pickSrv(recs, () => 0.3)?.name).toBe('b');
    expect(pickSrv(recs, () => 0.99)?.name).toBe('b');
    expect(pickSrv([{ name: '.', port: 0, priority: 0, weight: 0 }])).toBeUndefined();
    expect(pickSrv([])).toBeUndefined();
  });
});

describe('TLS verification in the transport', () => {
  it('rejects untrusted certificates unless verification is explicitly disabled', async () => {
    const other = createTestCa('Untrusted');
    const cert = other.issue({ dnsNames: ['x.test'] });
    const srv = createServer({ cert: cert.certPem, key: cert.keyPem }, (_q, r) => r.end('{}'));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    try {
      const target = { host: 'x.test', port, hostHeader: 'x.test', tlsName: 'x.test' };
      const req = { destination: 'x.test', method: 'GET', path: '/', timeoutMs: 5000, maxBytes: 1000 };
      const strict = new FederationTransport({ resolver: staticResolver({ a: { 'x.test': ['127.0.0.1'] } }), tls: { ca: [ca.certPem], verify: true } });
      await expect(strict.send(target, req)).rejects.toBeInstanceOf(FederationTlsError);
      const insecure = new FederationTransport({ resolver: staticResolver({ a: { 'x.test': ['127.0.0.1'] } }), tls: { ca: [ca.certPem], verify: false } });
      expect((await insecure.send(target, req)).status).toBe(200);
      // Too large responses are cut.
      await expect(insecure.send(target, { ...req, maxBytes: 1 })).rejects.toThrow(/exceeds 1 bytes/);
      strict.close();
      insecure.close();
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

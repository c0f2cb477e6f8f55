/**
 * The shipped scrape config and Grafana dashboard against a real Prometheus (Debian package
 * `prometheus`, installed by .ci/run): Prometheus runs on loopback with a temporary storage
 * directory, scrapes a Myelin started here, and every dashboard query must return series.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../_util/server.js';
import { sendText, startMetricsServer, userWithRoom, type MetricsServer } from './_metrics.js';
import { requireProgram } from '../_util/require-program.js';

const PROMETHEUS = '/usr/bin/prometheus';
const ROOT = join(import.meta.dirname, '../..');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

/** Every PromQL expression in the dashboard, with Grafana's variables filled in. */
function dashboardQueries(): Array<{ panel: string; expr: string }> {
  const dash = JSON.parse(readFileSync(join(ROOT, 'deploy/grafana/myelin.json'), 'utf8'));
  const out: Array<{ panel: string; expr: string }> = [];
  const visit = (panels: any[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        out.push({ panel: p.title, expr: String(t.expr).replaceAll('$__rate_interval', '30s').replaceAll('$instance', '.*') });
      }
      if (p.panels) visit(p.panels);
    }
  };
  visit(dash.panels);
  for (const v of dash.templating.list) {
    if (v.type === 'query') out.push({ panel: `variable ${v.name}`, expr: /label_values\((\w+),/.exec(v.definition)![1]! });
  }
  return out;
}

requireProgram(PROMETHEUS, 'prometheus');

describe('Prometheus scraping Myelin with the shipped config', () => {
  let t: MetricsServer;
  let prom: ChildProcess | undefined;
  let promUrl: string;
  let dir: string;
  let promLog = '';

  beforeAll(async () => {
    t = await startMetricsServer('sqlite');
    // Some traffic, so labelled series (routes, event classes, busiest rooms, query kinds) exist.
    const { client, roomId } = await userWithRoom(t.clientUrl, 'prom');
    for (let i = 0; i < 3; i++) await sendText(client, roomId, `p${i}`);
    await client.get('/_matrix/client/v3/sync?timeout=0');

    dir = tempDir('myelin-prometheus-');
    const shipped = parse(readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8'));
    expect(shipped.scrape_configs[0].static_configs[0].targets).toEqual(['127.0.0.1:9092']);
    // The shipped file, pointed at this test's server and scraping every second.
    shipped.global.scrape_interval = '1s';
    shipped.global.evaluation_interval = '1s';
    shipped.scrape_configs[0].static_configs[0].targets = [new URL(t.metricsUrl).host];
    const config = join(dir, 'prometheus.yml');
    writeFileSync(config, stringify(shipped));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn(PROMETHEUS, [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    prom.stdout!.on('data', (d) => (promLog += d));
    prom.stderr!.on('data', (d) => (promLog += d));
    await until('Prometheus to be ready', async () => ((await fetch(`${promUrl}/-/ready`)).ok ? true : undefined));
  }, 120_000);

  afterAll(async () => {
    if (prom && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      prom.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (prom.exitCode === null) prom.kill('SIGKILL');
    }
    await t?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('accepts the config and reports the target up', async () => {
    const target = await until('the target to be up', async () => {
      const body = (await (await fetch(`${promUrl}/api/v1/targets`)).json()) as any;
      const active = body.data.activeTargets.find((x: any) => x.labels.job === 'myelin');
      return active?.health === 'up' ? active : undefined;
    });
    expect(target.scrapeUrl).toBe(`${t.metricsUrl}/metrics`);
    expect(target.labels.service).toBe('myelin');
    const up = (await (await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent('up{job="myelin"}')}`)).json()) as any;
    expect(up.data.result[0].value[1]).toBe('1');
  });

  it('returns series for every query of the Grafana dashboard', async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(30);
    // Rates need two scrapes inside their window; keep the server busy meanwhile.
    const { client, roomId } = await userWithRoom(t.clientUrl, 'prom2');
    const empty: string[] = [];
    await until('every dashboard query to return series', async () => {
      await sendText(client, roomId, `q${Date.now()}`);
      empty.length = 0;
      for (const q of queries) {
        const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q.expr)}`);
        const body = (await res.json()) as any;
        if (body.status !== 'success') throw new Error(`${q.panel}: ${q.expr}: ${body.error}`);
        if (body.data.result.length === 0) empty.push(`${q.panel}: ${q.expr}`);
      }
      return empty.length === 0 ? true : undefined;
    }, 60_000).catch((err) => {
      throw new Error(`${String(err)}\nqueries without series:\n${empty.join('\n')}\n${promLog}`);
    });
  });
});

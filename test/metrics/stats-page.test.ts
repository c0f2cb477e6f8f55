/**
 * The live stats page in headless Chromium (Debian `chromium`, driven by playwright-core): both
 * layouts at their target sizes, numbers that change over SSE when a message is sent, and
 * screenshots saved under test-artifacts/ (MYELIN_ARTIFACTS to change it).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { sendText, startMetricsServer, userWithRoom, type MetricsServer } from './_metrics.js';
import type { TestClient } from '../client/_client.js';
import { requireProgram } from '../_util/require-program.js';

// Browser globals, for the functions evaluated in the page (the project compiles without the DOM lib).
declare const document: any;
declare const window: any;
declare function getComputedStyle(el: unknown): any;

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = process.env.MYELIN_ARTIFACTS ?? join(import.meta.dirname, '../../test-artifacts');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

async function text(page: Page, id: string): Promise<string> {
  return (await page.textContent(`#${id}`)) ?? '';
}

/** Waits until the stats page has received `n` more samples than it had. */
async function samplesAtLeast(page: Page, n: number): Promise<void> {
  await page.waitForFunction((k) => Number(document.body.dataset.samples ?? '0') >= k, n, { timeout: 20_000 });
}

/** Every element of the page lies inside the viewport (nothing cut off or scrolled away). */
async function overflow(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const bad: string[] = [];
    const w = window.innerWidth;
    const h = window.innerHeight;
    if (document.documentElement.scrollWidth > w || document.documentElement.scrollHeight > h) bad.push('page scrolls');
    for (const el of document.querySelectorAll('.value, .label, #tunnel-state')) {
      const r = el.getBoundingClientRect();
      if (r.right > w + 1 || r.bottom > h + 1 || r.left < -1 || r.top < -1) bad.push(`${el.id || el.className} outside`);
      if (el.scrollWidth > el.clientWidth + 2) bad.push(`${el.id || el.className} clipped`);
    }
    return bad;
  });
}

requireProgram(CHROMIUM, 'chromium');

describe('live stats page in Chromium', () => {
  let t: MetricsServer;
  let browser: Browser;
  let client: TestClient;
  let roomId: string;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    t = await startMetricsServer('sqlite', { stats: { interval_ms: 300 } });
    ({ client, roomId } = await userWithRoom(t.clientUrl, 'viewer'));
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await t?.close();
  });

  it('projector layout at 1920×1080: large numbers that move when a message is sent', async () => {
    const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    onTestFinished(() => page.close());
    await page.goto(`${t.clientUrl}/_myelin/stats`);
    await samplesAtLeast(page, 1);
    expect(t.server.ctx.stats.running).toBe(true);
    const before = Number(await text(page, 'v-messagesPerMin'));
    expect(Number.isFinite(before)).toBe(true);
    expect(await text(page, 'v-users')).toBe('1 user · 1 device');
    expect(Number(await text(page, 'v-rooms'))).toBe(1);
    expect(await text(page, 'tunnel-state')).toBe('OFF');

    await sendText(client, roomId, 'live-1');
    await sendText(client, roomId, 'live-2');
    await page.waitForFunction((b) => Number(document.getElementById('v-messagesPerMin')!.textContent) >= b + 2, before, { timeout: 20_000 });
    expect(await text(page, 'v-messagesTotal')).toMatch(/^2 since start/);
    // Charts drawn by uPlot, served by Myelin itself.
    expect(await page.locator('#c-messages canvas').count()).toBe(1);
    expect(await page.locator('.uplot').count()).toBe(5);
    // Readable across a room: values at least 80 px high, light on black.
    const style = await page.$eval('#v-usersOnline', (el) => {
      const s = getComputedStyle(el);
      return { size: parseFloat(s.fontSize), color: s.color, bg: getComputedStyle(document.body).backgroundColor };
    });
    expect(style.size).toBeGreaterThanOrEqual(80);
    expect(style.bg).toBe('rgb(0, 0, 0)');
    expect(await overflow(page)).toEqual([]);
    await page.waitForTimeout(700); // a few more points on the charts
    await page.screenshot({ path: join(ARTIFACTS, 'stats-1920x1080.png') });
  });

  for (const [width, height] of [[480, 320], [320, 240]] as const) {
    it(`small layout at ${width}×${height}: numbers fit and update`, async () => {
      const page = await browser.newPage({ viewport: { width, height } });
      onTestFinished(() => page.close());
      await page.goto(`${t.clientUrl}/_myelin/stats?layout=small`);
      await samplesAtLeast(page, 1);
      expect(await page.getAttribute('body', 'class')).toBe('small');
      const before = Number(await text(page, 'v-messagesPerMin'));
      await sendText(client, roomId, `small-${width}`);
      await page.waitForFunction((b) => Number(document.getElementById('v-messagesPerMin')!.textContent) > b, before, { timeout: 20_000 });
      await page.waitForTimeout(500);
      await page.screenshot({ path: join(ARTIFACTS, `stats-small-${width}x${height}.png`) });
      expect(await overflow(page)).toEqual([]);
      expect(await page.locator('#c-messages').isVisible()).toBe(false);
      expect(await page.locator('#spark canvas').count()).toBe(1);
      const size = await page.$eval('#v-messagesPerMin', (el) => parseFloat(getComputedStyle(el).fontSize));
      expect(size).toBeGreaterThanOrEqual(height * 0.1);
    });
  }

  it('stops sampling once the last page is closed', async () => {
    const deadline = Date.now() + 10_000;
    while (t.server.ctx.stats.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(t.server.ctx.stats.subscribers).toBe(0);
    expect(t.server.ctx.stats.running).toBe(false);
  });
});

describe('stats page access', () => {
  let t: MetricsServer;
  beforeAll(async () => {
    t = await startMetricsServer('sqlite', { stats: { access: 'login' } });
  });
  afterAll(() => t?.close());

  it('asks for a Matrix login when login-protected, and accepts a password or an access token', async () => {
    const anon = await fetch(`${t.clientUrl}/_myelin/stats`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toMatch(/^Basic realm="Myelin stats"/);
    expect((await fetch(`${t.clientUrl}/_myelin/stats/events`)).status).toBe(401);
    const { client } = await userWithRoom(t.clientUrl, 'watcher');
    const basic = (p: string) => ({ authorization: `Basic ${Buffer.from(`watcher:${p}`).toString('base64')}` });
    expect((await fetch(`${t.clientUrl}/_myelin/stats`, { headers: basic('wrong password') })).status).toBe(401);
    const ok = await fetch(`${t.clientUrl}/_myelin/stats`, { headers: basic('correct horse battery') });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('Messages / min');
    const byToken = await fetch(`${t.clientUrl}/_myelin/stats/uPlot.iife.min.js?access_token=${client.token}`);
    expect(byToken.status).toBe(200);
    expect(byToken.headers.get('content-type')).toMatch(/javascript/);
  });

  it('streams a history event and then samples over SSE', async () => {
    const c = await userWithRoom(t.clientUrl, 'sse');
    const ac = new AbortController();
    const res = await fetch(`${t.clientUrl}/_myelin/stats/events`, { headers: { authorization: `Bearer ${c.client.token}` }, signal: ac.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let buf = '';
    while (!buf.includes('event: sample')) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString();
    }
    ac.abort();
    expect(buf).toMatch(/^retry: 3000\n\nevent: history\ndata: \[/);
    const sample = JSON.parse(/event: sample\ndata: (.*)\n/.exec(buf)![1]!);
    expect(sample.users).toBe(2);
    expect(sample.rooms).toBe(2);
  });
});

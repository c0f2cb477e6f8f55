import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClient } from '../client/_client.js';

/**
 * A 50 MB upload and download through a server in a child process: the server's resident
 * memory must not grow by anything near the file size (the body is streamed to disk and back).
 */
const SIZE = 50 * 1024 * 1024;
const CHUNK = 256 * 1024;
/** Allowed RSS growth during each transfer; holding the file would need over 50 MB. */
const MAX_GROWTH = 16 * 1024 * 1024;

function pattern(i: number): Uint8Array {
  const c = new Uint8Array(CHUNK);
  for (let j = 0; j < CHUNK; j += 4096) c[j] = (i + j) & 0xff;
  c[0] = i & 0xff;
  return c;
}

describe('streamed media (server in a child process)', () => {
  let child: ChildProcess;
  let url: string;
  let client: TestClient;

  const ask = async (type: string, reply: string): Promise<any> => {
    const got = new Promise<any>((resolve) => {
      const on = (m: any) => {
        if (m.type === reply) {
          child.off('message', on);
          resolve(m);
        }
      };
      child.on('message', on);
    });
    child.send({ type });
    return got;
  };

  beforeAll(async () => {
    child = fork(fileURLToPath(new URL('./_rss-child.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx', '--expose-gc'],
      env: { ...process.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const [ready] = (await Promise.race([
      once(child, 'message'),
      once(child, 'exit').then(([code]) => {
        throw new Error(`server process exited with ${code}`);
      }),
    ])) as [{ url: string }];
    url = ready.url;
    client = new TestClient(url);
    await client.register('big');
    // Warm up every code path once.
    const small = await fetch(`${url}/_matrix/media/v3/upload`, { method: 'POST', headers: { authorization: `Bearer ${client.token}` }, body: new Uint8Array(1024 * 1024) });
    const uri = ((await small.json()) as { content_uri: string }).content_uri;
    await (await fetch(`${url}/_matrix/client/v1/media/download/${uri.slice(6)}`, { headers: { authorization: `Bearer ${client.token}` } })).arrayBuffer();
  }, 120_000);

  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.send({ type: 'stop' });
      await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 10_000))]);
      if (child.exitCode === null) child.kill();
    }
  });

  it('uploads and downloads 50 MB with flat server memory', async () => {
    const sent = createHash('sha256');
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (i * CHUNK >= SIZE) return c.close();
        const chunk = pattern(i++);
        sent.update(chunk);
        c.enqueue(chunk);
      },
    });
    const base = await ask('sample-start', 'sampling');
    const up = await fetch(`${url}/_matrix/media/v3/upload?filename=big.bin`, {
      method: 'POST',
      headers: { authorization: `Bearer ${client.token}`, 'content-type': 'application/octet-stream', 'content-length': String(SIZE) },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(up.status).toBe(200);
    const uploadPeak = await ask('sample-stop', 'peak');
    const uri = ((await up.json()) as { content_uri: string }).content_uri;

    const base2 = await ask('sample-start', 'sampling');
    const down = await fetch(`${url}/_matrix/client/v1/media/download/${uri.slice(6)}`, { headers: { authorization: `Bearer ${client.token}` } });
    expect(down.status).toBe(200);
    expect(down.headers.get('content-length')).toBe(String(SIZE));
    const got = createHash('sha256');
    let received = 0;
    for await (const chunk of down.body as unknown as AsyncIterable<Uint8Array>) {
      got.update(chunk);
      received += chunk.length;
    }
    const downloadPeak = await ask('sample-stop', 'peak');
    expect(received).toBe(SIZE);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    const upGrowth = uploadPeak.rss - base.rss;
    const downGrowth = downloadPeak.rss - base2.rss;
    console.log(`RSS growth: upload ${(upGrowth / 1048576).toFixed(1)} MiB, download ${(downGrowth / 1048576).toFixed(1)} MiB (base ${(base.rss / 1048576).toFixed(0)} MiB)`);
    expect(upGrowth).toBeLessThan(MAX_GROWTH);
    expect(downGrowth).toBeLessThan(MAX_GROWTH);
  }, 180_000);
});

import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Myelin } from '../../src/app.js';
import { mediaCommand } from '../../src/cli/media.js';
import { memoryLog, tempDir } from '../_util/server.js';

describe('myelin media (CLI)', () => {
  const dataDir = tempDir('myelin-media-cli-');
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));
  const open = () => Myelin.create({ dataDir, env: {}, logDestination: memoryLog([]), overrides: { server_name: 'cli.test' } });

  it('deletes one media item and purges old remote media', async () => {
    let server = await open();
    const media = server.ctx.media;
    const mxc = await media.upload('@a:cli.test', { contentType: 'text/plain', body: (async function* () { yield Buffer.from('bye'); })() });
    const id = mxc.split('/').pop()!;
    const stored = await media.files.write((async function* () { yield Buffer.from('remote'); })(), 100);
    const old = Date.now() - 40 * 86_400_000;
    await media.store.upsertRemote({ serverName: 'far.test', mediaId: 'old', uploader: null, contentType: null, filename: null, size: stored.size, sha256: stored.sha256, createdTs: old, lastAccessTs: old, authenticatedOnly: true });
    await media.store.upsertRemote({ serverName: 'far.test', mediaId: 'recent', uploader: null, contentType: null, filename: null, size: stored.size, sha256: stored.sha256, createdTs: Date.now(), lastAccessTs: Date.now(), authenticatedOnly: true });
    await server.stop();

    const out: string[] = [];
    await mediaCommand({ action: 'delete', target: mxc, dataDir }, { out: (t) => out.push(t) });
    await mediaCommand({ action: 'purge-remote', olderThan: '30d', dataDir }, { out: (t) => out.push(t) });
    expect(out).toEqual([`Deleted ${mxc}\n`, 'Deleted 1 cached remote media item not accessed for 30d\n']);
    await expect(mediaCommand({ action: 'delete', target: 'not-an-mxc', dataDir }, { out: () => {} })).rejects.toThrow(/mxc/);
    await expect(mediaCommand({ action: 'purge-remote', dataDir }, { out: () => {} })).rejects.toThrow(/older-than/);

    server = await open();
    expect(await server.ctx.media.store.get('cli.test', id)).toBeUndefined();
    expect(await server.ctx.media.store.get('far.test', 'old')).toBeUndefined();
    expect(await server.ctx.media.store.get('far.test', 'recent')).toBeDefined();
    // The content is still used by the recent item.
    expect(await server.ctx.media.files.exists(stored.sha256)).toBe(true);
    await server.stop();
  });
});

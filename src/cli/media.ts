import { Myelin } from '../app.js';
import { parseDuration } from './accounts.js';

/**
 * myelin media delete mxc://SERVER/ID
 * myelin media purge-remote --older-than 30d
 */
export async function mediaCommand(
  args: { action: string | undefined; target?: string; olderThan?: string; dataDir?: string; configPath?: string },
  io: { out: (text: string) => void },
): Promise<void> {
  if (args.action !== 'delete' && args.action !== 'purge-remote') {
    throw new Error('media needs an action: "delete mxc://SERVER/ID" or "purge-remote --older-than 30d"');
  }
  let mxc: { server: string; id: string } | undefined;
  let beforeTs = 0;
  if (args.action === 'delete') {
    const m = /^mxc:\/\/([^/]+)\/([A-Za-z0-9_-]+)$/.exec(args.target ?? '');
    if (!m) throw new Error('media delete needs an mxc:// URI, e.g. myelin media delete mxc://example.org/AbCd');
    mxc = { server: m[1]!, id: m[2]! };
  } else {
    if (!args.olderThan) throw new Error('media purge-remote needs --older-than, e.g. --older-than 30d');
    beforeTs = Date.now() - parseDuration(args.olderThan);
  }
  const server = await Myelin.create({ dataDir: args.dataDir, configPath: args.configPath });
  try {
    if (mxc) {
      if (!(await server.ctx.media.delete(mxc.server, mxc.id))) throw new Error(`no media mxc://${mxc.server}/${mxc.id}`);
      io.out(`Deleted mxc://${mxc.server}/${mxc.id}\n`);
    } else {
      const n = await server.ctx.media.purgeRemote(beforeTs);
      io.out(`Deleted ${n} cached remote media item${n === 1 ? '' : 's'} not accessed for ${args.olderThan}\n`);
    }
  } finally {
    await server.stop();
  }
}

/** Shared set-up for tests that drive the real matrix-js-sdk (with its Rust crypto). */
import { ClientEvent, SyncState, type IStartClientOpts, type MatrixClient } from 'matrix-js-sdk';
import { logger } from 'matrix-js-sdk/lib/logger.js';

/**
 * Silences the SDK's logger and the crypto library's console tracing (TRACE/DEBUG/INFO lines),
 * keeping warnings and errors.
 */
export function quietJsSdk(): void {
  // At run time the SDK's logger is a loglevel logger; its type leaves setLevel out.
  (logger as unknown as { setLevel(level: string): void }).setLevel('silent');
  for (const level of ['log', 'info', 'debug'] as const) {
    const orig = console[level].bind(console);
    console[level] = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && /^\s*(TRACE|DEBUG|INFO) /.test(args[0])) return;
      orig(...args);
    };
  }
}

/** Polls `fn` until it returns something other than undefined/false; throws after `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Starts the client's sync loop and resolves once its first sync has been processed (the
 * client is `Prepared` or already `Syncing`).
 */
export async function startSyncing(client: MatrixClient, opts: IStartClientOpts = { initialSyncLimit: 20 }): Promise<void> {
  const ready = new Promise<void>((resolve) => {
    const h = (state: SyncState) => {
      if (state === SyncState.Prepared || state === SyncState.Syncing) {
        client.off(ClientEvent.Sync, h);
        resolve();
      }
    };
    client.on(ClientEvent.Sync, h);
  });
  await client.startClient(opts);
  await ready;
}

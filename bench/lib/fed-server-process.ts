/**
 * A Myelin federation server in a child process (bench/lib/fed-server.ts), driven by
 * request/response messages over IPC, one at a time, each with a deadline.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export interface FedServerProcess {
  name: string;
  proc: ChildProcess;
  clientUrl: string;
  fedPort: number;
  call(msg: Record<string, unknown>, timeoutMs?: number): Promise<any>;
}

export async function forkFedServer(
  name: string,
  dataDir: string,
  caFile: string,
  opts: { callTimeoutMs: number; startTimeoutMs: number; /** Extra Node.js options (e.g. the systemd unit's heap flags). */ nodeArgs?: string[] },
): Promise<FedServerProcess> {
  // MYELIN_BENCH_CPU_PROF=dir (inherited): each server writes a V8 CPU profile there when it stops.
  const proc = fork(join(import.meta.dirname, 'fed-server.ts'), [], { execArgv: [...(opts.nodeArgs ?? []), '--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  let queue = Promise.resolve<unknown>(undefined);
  const call = (msg: Record<string, unknown>, timeoutMs = opts.callTimeoutMs): Promise<any> => {
    const p = queue.then(
      () =>
        new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${name}: ${String(msg['cmd'])} timed out`)), timeoutMs);
          proc.once('message', (m: any) => {
            clearTimeout(timer);
            if (m.ok) resolve(m);
            else reject(new Error(`${name}: ${m.error}`));
          });
          proc.send(msg);
        }),
    );
    queue = p.catch(() => undefined);
    return p;
  };
  const started = await call({ cmd: 'start', name, dataDir, caFile }, opts.startTimeoutMs);
  return { name, proc, clientUrl: `http://127.0.0.1:${started.clientPort}`, fedPort: started.fedPort, call };
}

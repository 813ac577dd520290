// As root, Postgres runs as the `postgres` user, which must reach its binaries and data through
// every parent directory: finds (or creates) that user and places both where it can reach them.
// It changes no directory it did not create, except the data folder itself (Postgres wants 0700).
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { chmod, chown, copyFile, link, mkdir, rename, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/** The embedded Postgres cannot start here; the message says what to do (no stack trace needed). */
export class EmbeddedPostgresError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EmbeddedPostgresError';
  }
}

export type RunAs = { uid: number; gid: number };

/** Where the Postgres programs are; `root` holds bin/, lib/ and share/ (they find each other relative to it). */
export type Binaries = { root: string; initdb: string; postgres: string };

const run = promisify(execFile);
const USE_DATABASE_URL = 'or set DATABASE_URL to use your own Postgres';

// Persistent data the postgres user cannot reach where it was asked for goes here instead: it
// survives reboots, unlike the temp directories, and root owns it.
export const RELOCATED_DATA_ROOT = '/var/lib/webhook-inbox';

function unique(dirs: string[]): string[] {
  return [...new Set(dirs.map((d) => path.resolve(d)))];
}

/** The `postgres` user's ids, creating a system user (no home, no login) when there is none. */
export async function postgresUser(): Promise<RunAs> {
  const found = await lookUpUser('postgres');
  if (found) return found;
  let failure = '';
  try {
    // groupadd fails when the group exists (a user removed, its group kept): useradd then uses it.
    await run('groupadd', ['--system', 'postgres']).catch(() => {});
    await run('useradd', ['--system', '--gid', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
  } catch (err) {
    failure = firstLine((err as { stderr?: string }).stderr || (err as Error).message);
  }
  // Another process starting at the same moment may have created it instead.
  const created = await lookUpUser('postgres');
  if (created) return created;
  throw new EmbeddedPostgresError(
    `Postgres does not run as root, and this system has no "postgres" user to run it as (creating one failed: ${failure}): create that user, run webhook-inbox as another user than root, ${USE_DATABASE_URL}`,
  );
}

async function lookUpUser(name: string): Promise<RunAs | undefined> {
  try {
    const [uid, gid] = await Promise.all([run('id', ['-u', name]), run('id', ['-g', name])]);
    return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
  } catch {
    return undefined;
  }
}

/** Exit status 0 of `file args` run as `as`; false when it cannot even be started. */
function runsAs(file: string, args: string[], as: RunAs): Promise<boolean> {
  return new Promise((resolve) => {
    // cwd '/': libuv changes directory before it drops to `as`, so a private cwd is no test at all.
    const child = spawn(file, args, { uid: as.uid, gid: as.gid, cwd: '/', stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('exit', (code) => resolve(code === 0));
  });
}

const TEST = ['/usr/bin/test', '/bin/test'].find((f) => existsSync(f)) ?? 'test';

/**
 * Whether `as` can enter `dir`: search permission on it and on every parent, asked of the kernel
 * by `test -x` running as that user (so ACLs and odd modes count as they will for Postgres).
 */
export function canEnter(dir: string, as: RunAs): Promise<boolean> {
  return runsAs(TEST, ['-x', dir], as);
}

function nearestExisting(dir: string): string {
  while (!existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

/**
 * Binaries the postgres user can run: the installed ones, or else a copy in the first temp
 * directory it can reach (/var/tmp first: it survives reboots, so later starts reuse the copy).
 */
export async function binariesFor(found: Binaries, as: RunAs, name: string, bases = unique(['/var/tmp', tmpdir(), '/tmp'])): Promise<Binaries> {
  if (await runsAs(found.postgres, ['--version'], as)) return found;
  const problems: string[] = [];
  for (const base of bases) {
    if (!(await canEnter(base, as))) continue;
    try {
      const root = await mirrorTree(found.root, base, name);
      const moved = {
        root,
        initdb: path.join(root, path.relative(found.root, found.initdb)),
        postgres: path.join(root, path.relative(found.root, found.postgres)),
      };
      if (await runsAs(moved.postgres, ['--version'], as)) return moved;
      problems.push(`${root} does not run as that user`);
    } catch (err) {
      problems.push(`${base}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  throw new EmbeddedPostgresError(
    `the postgres user cannot run the Postgres binaries in ${found.root}, and no copy could be placed where it can (${problems.join('; ') || `none of ${bases.join(', ')} is open to it`}): run webhook-inbox as another user than root, ${USE_DATABASE_URL}`,
  );
}

type Entry = { path: string; type: 'dir' | 'file' | 'link'; size: number; mode: number; target?: string };

// Synchronous, like matchesTree: about a thousand entries, read once per start; with promises,
// listing and checking took 0.45-1.1 s on this loaded 2-core machine, now 0.04-0.16 s.
/** Every directory, file and symlink under `root`, parents before children. */
function listTree(root: string, rel = ''): Entry[] {
  const entries: Entry[] = [];
  for (const name of readdirSync(path.join(root, rel)).sort()) {
    const p = path.join(rel, name);
    const s = lstatSync(path.join(root, p));
    if (s.isSymbolicLink()) entries.push({ path: p, type: 'link', size: 0, mode: 0, target: readlinkSync(path.join(root, p)) });
    else if (s.isDirectory()) entries.push({ path: p, type: 'dir', size: 0, mode: 0 }, ...listTree(root, p));
    else if (s.isFile()) entries.push({ path: p, type: 'file', size: s.size, mode: s.mode & 0o777 });
  }
  return entries;
}

// Only a tree this user owns and nobody else can write to is run: /var/tmp and /tmp let any user
// create a directory by that name first.
function ownedAndClosed(s: Stats): boolean {
  return s.uid === process.getuid?.() && (s.mode & 0o022) === 0;
}

function matchesTree(target: string, entries: Entry[]): boolean {
  const top = lstatSync(target, { throwIfNoEntry: false });
  if (!top?.isDirectory() || !ownedAndClosed(top)) return false;
  return entries.every((e) => {
    const p = path.join(target, e.path);
    const s = lstatSync(p, { throwIfNoEntry: false });
    if (!s) return false;
    if (e.type === 'dir') return s.isDirectory() && ownedAndClosed(s);
    if (e.type === 'link') return s.isSymbolicLink() && readlinkSync(p) === e.target;
    return s.isFile() && s.size === e.size;
  });
}

/**
 * A copy of the tree `source` in `base`, named after its contents (sizes, modes, links) and
 * reused while it still matches them; files are hard links where the filesystem allows (no space,
 * same inodes), else copies. A damaged one (a temp cleaner took files) is replaced whole.
 */
export async function mirrorTree(source: string, base: string, name: string): Promise<string> {
  const entries = listTree(source);
  const fingerprint = createHash('sha256').update(JSON.stringify(entries)).digest('hex').slice(0, 12);
  const target = path.join(base, `${name}-${fingerprint}`);
  if (matchesTree(target, entries)) return target;

  // Built under a private name and renamed into place, so a concurrent start never runs half a copy.
  const fresh = `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const aside = `${fresh}.old`;
  try {
    await mkdir(fresh);
    await chmod(fresh, 0o755);
    for (const e of entries) {
      const from = path.join(source, e.path);
      const to = path.join(fresh, e.path);
      if (e.type === 'dir') {
        await mkdir(to);
        await chmod(to, 0o755);
      } else if (e.type === 'link') {
        await symlink(e.target!, to);
      } else {
        await link(from, to).catch(async () => {
          await copyFile(from, to);
          await chmod(to, e.mode & 0o755);
        });
      }
    }
    // Another start may have placed a good copy meanwhile: keep that one.
    if (!matchesTree(target, entries)) {
      await rename(target, aside).catch(() => {});
      await rename(fresh, target).catch(() => {});
    }
  } finally {
    await rm(fresh, { recursive: true, force: true });
    await rm(aside, { recursive: true, force: true });
  }
  if (!matchesTree(target, entries)) throw new Error(`could not place a copy of ${source} in ${target}`);
  return target;
}

/** A name for the data of `dir` elsewhere: readable, and unique per original path. */
function relocatedName(dir: string): string {
  const readable = dir.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^-+|-+$/g, '').slice(-80);
  return `${readable}-${createHash('sha256').update(dir).digest('hex').slice(0, 8)}`;
}

/**
 * Where the data asked for in `dir` can live so that the postgres user reaches it: `dir` itself
 * when it can enter the directory `dir` would be created in (or `dir` already holds a cluster:
 * that one is never left behind), else a directory it can enter, named after `dir` so that every
 * start (and `npm run migrate`, `npm run replay`) for the same `dir` finds the same data.
 */
export async function dataDirFor(dir: string, as: RunAs, throwaway: boolean): Promise<string> {
  if (existsSync(path.join(dir, 'PG_VERSION'))) return dir;
  if (await canEnter(nearestExisting(path.dirname(dir)), as)) return dir;
  if (!throwaway) return path.join(RELOCATED_DATA_ROOT, relocatedName(dir));
  for (const base of unique([tmpdir(), '/var/tmp', '/tmp'])) {
    if (await canEnter(base, as)) return path.join(base, path.basename(dir));
  }
  throw new EmbeddedPostgresError(`the postgres user can enter none of ${tmpdir()}, /var/tmp, /tmp for a throwaway Postgres: ${USE_DATABASE_URL}`);
}

/** Creates `dir` (parents open to all, the folder itself the postgres user's) or checks the cluster in it. */
export async function prepareDataDir(dir: string, as: RunAs): Promise<void> {
  const unreachable = `the postgres user cannot reach the embedded Postgres's data folder ${dir} (it or a parent directory is closed to it)`;
  if (existsSync(path.join(dir, 'PG_VERSION'))) {
    if (await canEnter(dir, as)) return;
    throw new EmbeddedPostgresError(
      `${unreachable}: move that folder under a directory the postgres user can enter (such as ${RELOCATED_DATA_ROOT}) and set EMBEDDED_PG_DIR to it, ${USE_DATABASE_URL}`,
    );
  }
  try {
    const first = await mkdir(dir, { recursive: true });
    // Made here, so opened here: root's umask may be 077, and the postgres user must pass them.
    if (first) {
      for (let d = path.dirname(dir); d.length >= first.length; d = path.dirname(d)) await chmod(d, 0o755);
    }
    await chown(dir, as.uid, as.gid);
    await chmod(dir, 0o700);
  } catch (err) {
    throw new EmbeddedPostgresError(
      `could not create the embedded Postgres's data folder ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): set EMBEDDED_PG_DIR to a folder root can create and the postgres user can reach, ${USE_DATABASE_URL}`,
      { cause: err },
    );
  }
  if (!(await canEnter(dir, as))) {
    throw new EmbeddedPostgresError(`${unreachable}: set EMBEDDED_PG_DIR to a folder it can reach, ${USE_DATABASE_URL}`);
  }
}

export function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}

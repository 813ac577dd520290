// The newcomer's path: no DATABASE_URL, an empty data folder, `npm start`; and, for a start as
// root, the copy of the binaries the postgres user runs (test/first-run.test.ts runs it all).
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { mirrorTree, postgresUser } from '../src/db/embedded-root.ts';
import { freePort } from '../src/db/embedded.ts';
import { spawnScript } from './helpers/spawn.ts';
import { waitFor } from '../scripts/lib/wait.ts';

t.test('the service starts its own Postgres from an empty data dir, serves, and stops cleanly', async (t) => {
  const dir = path.join(tmpdir(), `wi-embedded-${randomBytes(4).toString('hex')}`);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.notOk(existsSync(dir), 'starts from nothing');
  const [httpPort, pgPort] = [await freePort(), await freePort()];
  const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const service = spawnScript(process.execPath, [main], {
    env: {
      PORT: String(httpPort),
      HOST: '127.0.0.1',
      EMBEDDED_PG_DIR: dir,
      EMBEDDED_PG_PORT: String(pgPort),
      LOG_LEVEL: 'info',
      WORKER_CONCURRENCY: '0',
    },
  });
  t.teardown(() => service.child.kill('SIGKILL'));

  await waitFor(() => service.output().includes('"listening"'), { what: 'the service to listen', proc: service, timeoutMs: 60_000, intervalMs: 100, explain: service.output });
  t.match(service.output(), /DATABASE_URL is unset: started the embedded Postgres/, 'says so in one line');
  t.ok(existsSync(path.join(dir, 'PG_VERSION')), 'data kept under EMBEDDED_PG_DIR');
  const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
  t.equal(ready.status, 200, 'database reachable and migrated');
  const stripe = await fetch(`http://127.0.0.1:${httpPort}/webhooks/stripe`, { method: 'POST', body: '{}' });
  t.equal(stripe.status, 503, 'Stripe without a secret: 503 so Stripe retries');
  t.match(service.output(), /STRIPE_WEBHOOK_SECRET is not set/);

  service.child.kill('SIGTERM');
  t.equal((await service.exited).code, 0, 'SIGTERM exits 0');
  t.notOk(existsSync(path.join(dir, 'postmaster.pid')), 'Postgres stopped with it');
});

/** A small tree shaped like the package's native/: an executable, a library and a relative link to it. */
async function toolTree(t: { teardown(fn: () => unknown): void }): Promise<{ source: string; copies: string }> {
  const base = await mkdtemp(path.join(tmpdir(), 'wi-mirror-'));
  t.teardown(() => rm(base, { recursive: true, force: true }));
  const source = path.join(base, 'source');
  await mkdir(path.join(source, 'bin'), { recursive: true });
  await mkdir(path.join(source, 'lib'));
  await writeFile(path.join(source, 'bin/tool'), '#!/bin/sh\necho tool\n', { mode: 0o755 });
  await writeFile(path.join(source, 'lib/libtool.so.1.2'), 'x'.repeat(100));
  await symlink('libtool.so.1.2', path.join(source, 'lib/libtool.so'));
  const copies = path.join(base, 'copies');
  await mkdir(copies);
  return { source, copies };
}

t.test('the copy of the binaries is placed once, reused while it matches, and replaced when damaged', async (t) => {
  const { source, copies } = await toolTree(t);
  const copy = await mirrorTree(source, copies, 'tools');
  t.match(path.basename(copy), /^tools-[0-9a-f]{12}$/, 'named after its contents');
  t.equal(readFileSync(path.join(copy, 'bin/tool'), 'utf8'), '#!/bin/sh\necho tool\n');
  t.equal(statSync(path.join(copy, 'bin/tool')).mode & 0o111, 0o111, 'still executable');
  t.equal(readlinkSync(path.join(copy, 'lib/libtool.so')), 'libtool.so.1.2', 'links stay relative');
  t.equal(statSync(copy).mode & 0o777, 0o755, 'open to the postgres user, writable by this one only');
  const placed = statSync(copy).ino;

  t.equal(await mirrorTree(source, copies, 'tools'), copy, 'the next start uses it');
  t.equal(statSync(copy).ino, placed, 'without placing it again');

  // A temp cleaner took a library nobody had read for a while.
  await rm(path.join(copy, 'lib/libtool.so.1.2'));
  t.equal(await mirrorTree(source, copies, 'tools'), copy);
  t.ok(existsSync(path.join(copy, 'lib/libtool.so.1.2')), 'a damaged copy is replaced whole');
  t.not(statSync(copy).ino, placed);

  // Another version of the package: a copy of its own, the old one left to whoever still runs it.
  await rm(path.join(source, 'bin/tool'));
  await writeFile(path.join(source, 'bin/tool'), '#!/bin/sh\necho tool 2\n', { mode: 0o755 });
  const next = await mirrorTree(source, copies, 'tools');
  t.not(next, copy, 'a changed tree gets another name');
  t.same(readdirSync(copies).sort(), [path.basename(copy), path.basename(next)].sort(), 'and no half-made copies lie about');
});

const notRoot = process.getuid?.() === 0 ? false : 'not root: no other user can own a folder here';
t.test('a copy another user placed first under that name is never run', { skip: notRoot }, async (t) => {
  const { source, copies } = await toolTree(t);
  const copy = await mirrorTree(source, copies, 'tools');
  // /var/tmp lets anyone create that name before root does, with binaries of their own.
  const postgres = await postgresUser();
  await chown(copy, postgres.uid, postgres.gid);
  t.equal(await mirrorTree(source, copies, 'tools'), copy);
  t.equal(statSync(copy).uid, 0, 'replaced by a copy root owns');
});

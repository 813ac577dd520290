// The console on a first run: the embedded default without ADMIN_TOKEN generates one, keeps it in
// .data/admin-token (owner-only) and uses it again at the next start; with DATABASE_URL, with a
// token given, or in a worker, nothing is generated. The token is never logged.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import t from 'tap';
import { loadConfig } from '../src/config.ts';
import { adminTokenFile, consoleUrl, withGeneratedAdminToken } from '../src/console/first-run.ts';

const dir = await mkdtemp(path.join(tmpdir(), 'wi-console-first-run-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

/** A real logger writing JSON lines into an array. */
function capture() {
  const lines: Record<string, unknown>[] = [];
  const out = new Writable({ write: (chunk, _e, done) => (lines.push(JSON.parse(String(chunk))), done()) });
  return { log: pino({ level: 'info' }, out), lines };
}

const embedded = (env: Record<string, string> = {}) => loadConfig({ EMBEDDED_PG_DIR: path.join(dir, '.data', 'postgres'), ...env });

t.test('the embedded default without ADMIN_TOKEN: generated once, kept owner-only, used again', async (t) => {
  const { log, lines } = capture();
  const first = await withGeneratedAdminToken(embedded(), log);
  const file = path.join(dir, '.data', 'admin-token');
  t.equal(adminTokenFile(embedded()), file, 'beside the data folder');
  t.match(first.ADMIN_TOKEN, /^[0-9a-f]{48}$/);
  t.equal((await readFile(file, 'utf8')).trim(), first.ADMIN_TOKEN);
  t.equal((await stat(file)).mode & 0o777, 0o600, 'readable by its owner only');
  const again = await withGeneratedAdminToken(embedded(), log);
  t.equal(again.ADMIN_TOKEN, first.ADMIN_TOKEN, 'the next start uses the same token');
  t.match(lines.map((l) => l.msg), [/generated one/, /using the token generated/]);
  t.notOk(JSON.stringify(lines).includes(first.ADMIN_TOKEN!), 'the token is not logged, only where it is');
});

t.test('nothing is generated with DATABASE_URL, with a token given, or in a worker', async (t) => {
  const other = path.join(dir, 'other');
  const { log } = capture();
  const env = { EMBEDDED_PG_DIR: path.join(other, 'postgres') };
  t.equal((await withGeneratedAdminToken(loadConfig({ ...env, DATABASE_URL: 'postgres://db/x' }), log)).ADMIN_TOKEN, undefined, 'DATABASE_URL: the console stays off');
  t.equal((await withGeneratedAdminToken(loadConfig({ ...env, ADMIN_TOKEN: 'given-token-0123456789' }), log)).ADMIN_TOKEN, 'given-token-0123456789');
  t.equal((await withGeneratedAdminToken(loadConfig({ ...env, ROLE: 'worker' }), log)).ADMIN_TOKEN, undefined);
  await t.rejects(stat(path.join(other, 'admin-token')), { code: 'ENOENT' }, 'no file written');
});

t.test('a token file that cannot be kept leaves the console off and says so', async (t) => {
  // Its folder's parent is a file: no one, root included, can create the folder.
  const blocker = path.join(dir, 'a-file');
  await writeFile(blocker, '');
  const { log, lines } = capture();
  const config = await withGeneratedAdminToken(loadConfig({ EMBEDDED_PG_DIR: path.join(blocker, 'data', 'postgres') }), log);
  t.equal(config.ADMIN_TOKEN, undefined);
  t.match(lines.at(-1), { msg: /stay off; set ADMIN_TOKEN/ });
});

t.test('the console address printed at start', async (t) => {
  t.equal(consoleUrl(loadConfig({}), 3000), 'http://localhost:3000/console');
  t.equal(consoleUrl(loadConfig({ HOST: '127.0.0.1' }), 8080), 'http://127.0.0.1:8080/console');
  t.equal(consoleUrl(loadConfig({ HOST: '::1' }), 3000), 'http://[::1]:3000/console');
});

// A newcomer's first run as root (the default user in containers and VMs) with the project in a
// directory only root can enter: `npm test` and `npm start` work, and what cannot work says
// what to do in one line. It used to die on an unhandled 'error' event (spawn initdb EACCES).
import { existsSync } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { canEnter, postgresUser, RELOCATED_DATA_ROOT } from '../src/db/embedded-root.ts';
import { freePort } from '../src/db/embedded.ts';
import { isReady, root } from '../scripts/lib/service.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { runScript, spawnScript, type Spawned } from './helpers/spawn.ts';

// Two Postgres initdbs, a nested test run and three service starts on a shared 2-core machine.
t.setTimeout(300_000);

const skip = process.getuid?.() === 0 ? false : 'not root: Postgres runs as this user, who can reach the project';

/** The project as a user has it after `git clone` and `npm install`: node_modules inside. */
async function copyProject(to: string): Promise<void> {
  const skipped = new Set(['node_modules', '.git', '.tap', '.data'].map((name) => path.join(root, name)));
  await cp(root, to, { recursive: true, filter: (from) => !skipped.has(path.resolve(from)) });
  // Hard links: a copy of node_modules in seconds, at paths the postgres user cannot reach.
  const linked = await runScript('cp', ['-al', path.join(root, 'node_modules'), path.join(to, 'node_modules')]);
  if (linked.code !== 0) throw new Error(`cp -al node_modules: ${linked.stderr}`);
}

/** Only what a user's shell would have (spawnScript keeps the outer run's TAP_* out); npm needs a HOME. */
const run = (command: string, args: string[], cwd: string, env: Record<string, string>): Spawned =>
  spawnScript(command, args, { cwd, env: { HOME: process.env.HOME ?? '/root', ...env } });

function logLines(out: string): Record<string, unknown>[] {
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

function waitReady(service: Spawned, port: number): Promise<boolean> {
  return waitFor(isReady(`http://127.0.0.1:${port}`), { proc: service, timeoutMs: 120_000, intervalMs: 200 }).then(() => true, () => false);
}

t.test('as root, in a directory only root can enter', { skip }, async (t) => {
  const home = await mkdtemp(path.join(tmpdir(), 'wi-first-run-'));
  await chmod(home, 0o700);
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const project = path.join(home, 'webhook-inbox');
  await copyProject(project);
  t.notOk(await canEnter(project, await postgresUser()), 'the postgres user cannot enter the project, as in the report');

  t.test('npm test starts its throwaway Postgres and passes', async (t) => {
    const tests = run('npm', ['run', 'test:only', '--', 'test/config.test.ts'], project, { npm_config_update_notifier: 'false' });
    const { code } = await tests.exited;
    t.equal(code, 0, 'exit 0', { output: tests.output().slice(-3000) });
    t.match(tests.output(), /# throwaway Postgres started in \d+ ms/);
    t.match(tests.output(), /^ok 1 - test\/config\.test\.ts/m);
    t.notMatch(tests.output(), /EACCES|Unhandled 'error' event/);
  });

  t.test('npm start serves with its data where the postgres user can reach it, and stops cleanly', async (t) => {
    const [httpPort, pgPort] = [await freePort(), await freePort()];
    const env = { PORT: String(httpPort), HOST: '127.0.0.1', EMBEDDED_PG_PORT: String(pgPort), LOG_LEVEL: 'info' };
    const start = () => run(process.execPath, ['src/main.ts'], project, env);

    const first = start();
    t.teardown(() => void first.child.kill('SIGKILL'));
    t.ok(await waitReady(first, httpPort), '/readyz answers 200', { output: first.output().slice(-3000) });
    const moved = logLines(first.output()).find((l) => String(l.msg).includes('cannot reach the data folder asked for'));
    t.ok(moved, 'a warning says where the data is kept instead');
    const dir = String(moved?.dir);
    t.equal(moved?.asked, path.join(project, '.data/postgres'), 'naming the folder asked for');
    t.equal(path.dirname(dir), RELOCATED_DATA_ROOT, `kept in ${RELOCATED_DATA_ROOT}`);
    t.teardown(async () => {
      await rm(dir, { recursive: true, force: true });
      await rmdir(RELOCATED_DATA_ROOT).catch(() => {}); // only if nothing else is kept there
    });
    t.ok(existsSync(path.join(dir, 'PG_VERSION')), 'the cluster is there');
    t.match(first.output(), /"migration":"001_events\.sql","msg":"migration applied"/);
    first.child.kill('SIGTERM');
    t.equal((await first.exited).code, 0, 'SIGTERM exits 0');
    t.match(first.output(), /"msg":"stopped"/);
    t.notOk(existsSync(path.join(dir, 'postmaster.pid')), 'Postgres stopped with it');

    // The next start finds the same data: nothing left to migrate.
    const second = start();
    t.teardown(() => void second.child.kill('SIGKILL'));
    t.ok(await waitReady(second, httpPort), 'starts again', { output: second.output().slice(-3000) });
    const started = logLines(second.output()).find((l) => String(l.msg).startsWith('DATABASE_URL is unset'));
    t.equal(started?.dir, dir, 'on the same data');
    t.notMatch(second.output(), /migration applied/, 'already migrated');
    second.child.kill('SIGTERM');
    t.equal((await second.exited).code, 0, 'SIGTERM exits 0');
  });

  t.test('a cluster the postgres user cannot reach: one line that says what to do', async (t) => {
    // Left by a run as another user, or a folder made private afterwards: never left behind silently.
    const dir = path.join(project, 'old-data');
    await mkdir(dir);
    await writeFile(path.join(dir, 'PG_VERSION'), '18\n');
    const service = run(process.execPath, ['src/main.ts'], project, {
      PORT: String(await freePort()),
      EMBEDDED_PG_PORT: String(await freePort()),
      EMBEDDED_PG_DIR: dir,
      LOG_LEVEL: 'info',
    });
    t.equal((await service.exited).code, 1, 'exits 1');
    const lines = service.output().trim().split('\n');
    t.equal(lines.length, 1, 'one line', { output: service.output() });
    const [line] = logLines(service.output());
    t.match(line, { level: 60, msg: 'could not start' });
    t.match(line?.reason, /postgres user cannot reach .*old-data.*set EMBEDDED_PG_DIR to it, or set DATABASE_URL/, 'which says what to do');
    t.notMatch(service.output(), /\n\s+at |"stack"/, 'no stack trace');
  });
});

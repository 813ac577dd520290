// The process lifecycle (src/service.ts): what each ROLE serves and starts, the order of a graceful
// shutdown, /readyz with the database gone, and SIGTERM/SIGINT on the real process exiting 0.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import http from 'node:http';
import path from 'node:path';
import t from 'tap';
import { silentLogger } from '../src/log.ts';
import { startService } from '../src/service.ts';
import type { StartWorkers } from '../src/worker/index.ts';
import { signStripe, stripeEvent, testConfig } from './helpers/app.ts';
import { createTestDatabase } from './helpers/db.ts';
import { seedEvent } from './helpers/events.ts';
import { startProxy } from './helpers/proxy.ts';
import { runScript, spawnScript } from './helpers/spawn.ts';
import { SECRET } from '../scripts/lib/deliver.ts';
import { isReady, root } from '../scripts/lib/service.ts';
import { freePort } from '../src/db/embedded.ts';
import { waitFor } from '../scripts/lib/wait.ts';

const db = await createTestDatabase(t);
const config = (env: Record<string, string | undefined> = {}) =>
  testConfig({ DATABASE_URL: db.url, PORT: '0', HOST: '127.0.0.1', ADMIN_TOKEN: 'admin-token-0123456789abcdef', ...env });

// A stand-in for src/worker/index.ts that records what the service does with it.
function recordingWorkers(steps: string[], probe?: () => Promise<void>): { start: StartWorkers; calls: Parameters<StartWorkers>[0][] } {
  const calls: Parameters<StartWorkers>[0][] = [];
  return {
    calls,
    start: (deps) => {
      calls.push(deps);
      steps.push('workers started');
      return {
        stop: async () => {
          steps.push('workers stopping');
          // Folds in flight still write while the workers drain: the pool must be open.
          await probe?.();
          await deps.sql`select 1`;
          steps.push('workers stopped');
        },
      };
    },
  };
}

t.test('ROLE=all serves every route and starts the workers with the pool, url, config and onFold', async (t) => {
  const steps: string[] = [];
  const workers = recordingWorkers(steps);
  const service = await startService({ config: config(), log: silentLogger(), startWorkers: workers.start });
  t.teardown(() => service.stop());
  t.equal(workers.calls.length, 1);
  t.equal(workers.calls[0]!.databaseUrl, db.url);
  t.equal(typeof workers.calls[0]!.onFold, 'function');
  t.equal(workers.calls[0]!.busy?.(0), false, 'the workers can ask whether ingest is busy; idle, it is not');
  t.equal(workers.calls[0]!.busy?.(1), false, 'not for any loop');
  t.equal((await fetch(`${service.url}/readyz`)).status, 200);
  t.equal((await fetch(`${service.url}/events`)).status, 401, 'admin API mounted');
  t.equal((await fetch(`${service.url}/webhooks/stripe`, { method: 'POST', body: '{}' })).status, 400, 'ingest mounted');
  workers.calls[0]!.onFold!('failed', 12);
  workers.calls[0]!.onPause?.(0.25);
  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  t.match(metrics, /^webhook_inbox_fold_failures_total 1$/m, 'onFold feeds /metrics');
  t.match(metrics, /^webhook_inbox_fold_paused_seconds_total 0.25$/m, 'onPause feeds /metrics');
});

t.test('idle keep-alive connections stay open HTTP_KEEP_ALIVE_TIMEOUT_MS, as the response announces', async (t) => {
  const service = await startService({ config: config({ HTTP_KEEP_ALIVE_TIMEOUT_MS: '10000' }), log: silentLogger() });
  t.teardown(() => service.stop());
  const agent = new http.Agent({ keepAlive: true });
  t.teardown(() => agent.destroy());
  // The response's socket, taken while it is attached (the agent detaches it at the end).
  const get = () =>
    new Promise<{ res: http.IncomingMessage; socket: unknown }>((resolve, reject) => {
      http.get(`${service.url}/healthz`, { agent }, (res) => {
        const socket = res.socket;
        res.resume().on('end', () => resolve({ res, socket }));
      }).on('error', reject);
    });
  const first = await get();
  t.equal(first.res.headers['keep-alive'], 'timeout=10', 'a client that reads the hint keeps it under 10 s');
  t.ok(first.socket, 'the socket was seen');
  // Past Node's default (5 s, closed after 6 s with its grace period) it is still the same one.
  await new Promise((r) => setTimeout(r, 7000));
  const second = await get();
  t.equal(second.socket, first.socket, 'the idle connection was reused after 7 s');
});

t.test('not ready until the workers run; by then the ingest pool is open, and workers have their own', async (t) => {
  const mine = await createTestDatabase(t);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let workerApp = '';
  const seen: { ready: number; reason: string; ingest: number; poolOpen: number }[] = [];
  const starting = startService({
    config: config({ DATABASE_URL: mine.url, PORT: String(port), DB_POOL_MAX: '6' }),
    log: silentLogger(),
    // Workers that take their time to start, as pg-boss does on a first start.
    startWorkers: async (deps) => {
      workerApp = (await deps.sql`select current_setting('application_name') as app`)[0]!.app;
      const ready = await fetch(`${url}/readyz`);
      const [{ n }] = await mine.sql`select count(*)::int as n from pg_stat_activity
                                     where datname = current_database() and application_name = 'webhook-inbox'` as any;
      seen.push({
        ready: ready.status,
        reason: ((await ready.json()) as { reason: string }).reason,
        ingest: (await fetch(`${url}/webhooks/stripe`, { method: 'POST', body: '{}' })).status,
        poolOpen: n,
      });
      await released;
      return { stop: async () => {} };
    },
  });
  await waitFor(() => seen.length > 0, { what: 'the workers to start' });
  release();
  const service = await starting;
  t.teardown(() => service.stop());
  t.same(seen.map(({ poolOpen, ...rest }) => rest), [{ ready: 503, reason: 'starting', ingest: 400 }],
    'while the workers start: not ready, and ingest already answers');
  t.ok(seen[0]!.poolOpen >= 6, `every ingest pool connection is open before the first request (${seen[0]!.poolOpen})`);
  t.equal(workerApp, 'webhook-inbox-worker', 'the workers fold on their own connections');
  t.equal((await fetch(`${url}/readyz`)).status, 200, 'ready once they run');
});

t.test('the workers get the retention schedule, which purges finished events past RETENTION_DAYS', async (t) => {
  const mine = await createTestDatabase(t);
  const old = await seedEvent(mine.sql, { status: 'PROCESSED', age: '8 days' });
  const waiting = await seedEvent(mine.sql, { status: 'RECEIVED', age: '8 days' });
  const young = await seedEvent(mine.sql, { status: 'PROCESSED', age: '6 days' });
  const workers = recordingWorkers([]);
  const service = await startService({
    config: config({ DATABASE_URL: mine.url, RETENTION_DAYS: '7', RETENTION_BATCH_SIZE: '1' }),
    log: silentLogger(),
    startWorkers: workers.start,
  });
  t.teardown(() => service.stop());
  const purge = workers.calls[0]!.sweeps!.find((s) => s.name === 'purge-events');
  t.ok(purge, 'a purge-events sweep');
  t.equal(purge!.cron, '*/10 * * * *');
  t.equal(await purge!.run(), 1);
  const left = (await mine.sql`select event_id from events order by id`).map((r) => r.event_id);
  t.same(left, [waiting.event_id, young.event_id]);
  t.notOk(left.includes(old.event_id));
});

t.test('shutdown order: HTTP drained and workers stopped (pool still open), then the pool closes', async (t) => {
  const steps: string[] = [];
  let service!: Awaited<ReturnType<typeof startService>>;
  const workers = recordingWorkers(steps, async () => {
    const ready = await fetch(`${service.url}/readyz`).catch(() => undefined);
    steps.push(`readyz while draining: ${ready?.status ?? 'closed'}`);
  });
  service = await startService({ config: config(), log: silentLogger(), startWorkers: workers.start });
  // A delivery in flight when the stop begins (half its body sent) must still be stored and answered.
  const event = stripeEvent();
  const body = JSON.stringify(event);
  let inflight!: http.ClientRequest;
  const answer = new Promise<number>((resolve, reject) => {
    const req = http.request(`${service.url}/webhooks/stripe`, { method: 'POST', headers: { ...signStripe(body), 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.write(body.slice(0, 100));
    inflight = req;
  });
  await waitFor(() => service.inFlight() === 1, { what: 'the request to reach the handler', timeoutMs: 5000, intervalMs: 5 });
  const stopped = service.stop('test');
  inflight.end(body.slice(100));
  t.equal(await answer, 200, 'the request in flight was answered');
  await stopped;
  const [row] = await db.sql`select count(*)::int as n from events where event_id = ${event.id as string}`;
  t.equal(row!.n, 1, 'and stored');
  t.same(steps.slice(0, 2), ['workers started', 'workers stopping']);
  t.ok(steps.includes('workers stopped'), 'the pool was still open while workers drained');
  t.ok(steps.some((s) => /^readyz while draining: (503|closed)$/.test(s)), 'not ready while draining');
  await t.rejects(workers.calls[0]!.sql`select 1`, 'the pool is closed afterwards');
  await t.rejects(fetch(`${service.url}/healthz`), 'no longer listening');
  await service.stop('again');
  t.pass('stop is idempotent');
});

t.test('ROLE=api starts no workers; ROLE=worker answers probes and metrics only', async (t) => {
  const steps: string[] = [];
  const api = recordingWorkers(steps);
  const apiService = await startService({ config: config({ ROLE: 'api' }), log: silentLogger(), startWorkers: api.start });
  t.equal(api.calls.length, 0, 'api: no workers');
  t.equal((await fetch(`${apiService.url}/events`)).status, 401);
  await apiService.stop();

  const worker = recordingWorkers(steps);
  const workerService = await startService({ config: config({ ROLE: 'worker' }), log: silentLogger(), startWorkers: worker.start });
  t.teardown(() => workerService.stop());
  t.equal(worker.calls.length, 1, 'worker: workers started');
  t.equal((await fetch(`${workerService.url}/healthz`)).status, 200);
  t.equal((await fetch(`${workerService.url}/readyz`)).status, 200);
  t.equal((await fetch(`${workerService.url}/metrics`)).status, 200);
  t.equal((await fetch(`${workerService.url}/webhooks/stripe`, { method: 'POST', body: '{}' })).status, 404, 'no ingest');
  t.equal((await fetch(`${workerService.url}/events`)).status, 404, 'no admin API');
});

t.test('/readyz answers 503 with the database gone and 200 when it is back; /healthz stays 200', async (t) => {
  const target = new URL(db.url);
  const proxy = await startProxy({ host: target.hostname, port: Number(target.port) });
  t.teardown(() => proxy.close());
  const service = await startService({
    config: config({ DATABASE_URL: proxy.url(db.url), DB_CONNECT_TIMEOUT_MS: '300' }),
    log: silentLogger(),
  });
  t.teardown(() => service.stop());
  t.equal((await fetch(`${service.url}/readyz`)).status, 200);

  await proxy.down();
  const down = await fetch(`${service.url}/readyz`);
  t.equal(down.status, 503);
  t.match(await down.json(), { status: 'unavailable', reason: 'database unreachable' });
  t.equal((await fetch(`${service.url}/healthz`)).status, 200, 'the process is alive');
  const admin = await fetch(`${service.url}/events`, { headers: { authorization: 'Bearer admin-token-0123456789abcdef' } });
  t.equal(admin.status, 503, 'the admin API says the database is unavailable');
  t.match(await admin.json(), { error: /database unavailable/ });
  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  t.match(metrics, /^webhook_inbox_database_up 0$/m, '/metrics still answers and says the database is down');

  proxy.hang();
  t.equal((await fetch(`${service.url}/readyz`)).status, 503, 'a database that accepts and never answers');

  await proxy.up();
  let status = 0;
  await waitFor(async () => (status = (await fetch(`${service.url}/readyz`)).status) === 200, { timeoutMs: 10_000, intervalMs: 100, what: '/readyz to answer 200' });
  t.equal(status, 200, 'ready again without a restart');
});

t.test('/readyz answers 503 while migrations are pending', async (t) => {
  const mine = await createTestDatabase(t);
  const service = await startService({ config: config({ DATABASE_URL: mine.url }), log: silentLogger() });
  t.teardown(() => service.stop());
  // As if a newer version of the code had been deployed against this database.
  await mine.sql`delete from schema_migrations where name = '001_events.sql'`;
  const res = await fetch(`${service.url}/readyz`);
  t.equal(res.status, 503);
  t.match(await res.json(), { reason: 'migrations pending', pending: ['001_events.sql'] });
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal} on the real process: logs the shutdown and exits 0`, async (t) => {
    const port = await freePort();
    const service = spawnScript(process.execPath, [path.join(root, 'src/main.ts')], {
      env: { DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', STRIPE_WEBHOOK_SECRET: SECRET, LOG_LEVEL: 'info' },
    });
    t.teardown(() => service.child.kill('SIGKILL'));
    await waitFor(isReady(`http://127.0.0.1:${port}`), {
      what: 'the service to start',
      proc: service,
      intervalMs: 100,
      explain: service.output,
    });
    t.match(service.output(), /ADMIN_TOKEN is not set: the admin API \(\/events\) is off/, 'the startup log says the admin API is off');
    service.child.kill(signal);
    // Past SHUTDOWN_TIMEOUT_MS the process exits 1: 0 means the ordered shutdown finished in time.
    t.equal((await service.exited).code, 0, `${signal} exits 0`);
    t.match(service.output(), new RegExp(`"reason":"${signal}"`));
    t.match(service.output(), /"msg":"stopped"/);
  });
}

// Both used to exit 1 with no output at all: the error was thrown before the first log line.
t.test('a failure to start is logged with what to do, then exits 1', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'webhook-inbox-pgdir-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A data dir another live process claims (this test's own pid stands in for its postmaster).
  await writeFile(path.join(dir, 'PG_VERSION'), '18\n');
  await writeFile(path.join(dir, 'postmaster.pid'), `${process.pid}\n${dir}\n`);
  const cases = [
    { env: { EMBEDDED_PG_DIR: dir }, says: /already runs on .*set EMBEDDED_PG_DIR to another folder/ },
    { env: { DATABASE_URL: 'postgres://user:secret@/db?host=/var/run/postgresql' }, says: /DATABASE_URL cannot be read as postgres:\/\/user:password@host:port\/database/ },
  ];
  for (const { env, says } of cases) {
    const run = await runScript(process.execPath, [path.join(root, 'src/main.ts')], {
      env: { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
      timeoutMs: 20_000,
    });
    t.equal(run.code, 1, `${Object.keys(env)[0]}: exits 1`);
    t.match(run.stdout, /"level":60.*"msg":"could not start"/, 'logs a fatal line');
    t.match(run.stdout, says, 'which says what to fix');
    t.notMatch(run.stdout, /secret@/, 'without the password');
  }
});

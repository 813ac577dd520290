// scripts/replay.ts as operators run it: a child process against a test database. Exit codes,
// dry runs that change nothing, replays that end PROCESSED once the cause is fixed, interruption
// and re-runs, NDJSON imports that deduplicate, and progress on a TTY.
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { seedEvent } from './helpers/events.ts';
import { drain, storeEvents, stripeEv } from './helpers/fold.ts';
import { runScript, spawnScript, type Run } from './helpers/spawn.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { root } from '../scripts/lib/service.ts';

const script = path.join(root, 'scripts/replay.ts');
// About 40 runs of the CLI, each a new Node process: on a loaded machine a start takes seconds.
t.setTimeout(300_000);

function replay(db: TestDatabase | string, args: string[]): Promise<Run> {
  const url = typeof db === 'string' ? db : db.url;
  return runScript(process.execPath, [script, ...args], { env: { DATABASE_URL: url }, timeoutMs: 60_000 });
}

const snapshot = (db: TestDatabase) => db.sql`select * from events order by id`;
const statuses = async (db: TestDatabase) =>
  (await db.sql`select status from events order by id`).map((r) => r.status as string);

t.test('--help explains every flag with examples and exits 0', async (t) => {
  const run = await runScript(process.execPath, [script, '--help']);
  t.equal(run.code, 0);
  for (const flag of ['--id', '--status', '--source', '--type', '--from', '--to', '--limit', '--dry-run', '--file', '--batch-size', '--help']) {
    t.match(run.stdout, flag, `documents ${flag}`);
  }
  t.match(run.stdout, /Examples:\n\s+npm run replay -- --status FAILED/);
  t.match(run.stdout, /Exit status: 0 done, 1 failed or interrupted \(run it again\), 2 bad arguments/);
});

t.test('bad arguments exit 2 naming the flag, and change nothing', async (t) => {
  const db = await createTestDatabase(t);
  await seedEvent(db.sql, { status: 'FAILED' });
  const before = await snapshot(db);
  const cases: [string[], RegExp][] = [
    [[], /choose events/],
    [['--stauts', 'FAILED'], /Unknown option '--stauts'/],
    [['--status', 'DONE'], /--status: expected RECEIVED/],
    [['--type', 'invoice paid'], /--type: expected an event type/],
    [['--from', 'last night'], /--from: expected an ISO-8601 time/],
    [['--from', '2024-05-02', '--to', '2024-05-01'], /--to: must be later than from/],
    [['--status', 'FAILED', '--limit', '0'], /--limit: must be at least 1/],
    [['--status', 'FAILED', '--limit', 'many'], /--limit: expected a whole number/],
    [['--status', 'FAILED', '--batch-size', '0'], /--batch-size/],
    [['--id', 'nope'], /--id nope: expected the surrogate id/],
    [['--id', '1', '--status', 'FAILED'], /drop --status, or drop --id/],
    [['--file', '/does/not/exist.ndjson'], /--file: cannot read/],
    [['--file', '/dev/null', '--type', 'x'], /does not combine/],
    [['FAILED'], /Unexpected argument/],
  ];
  for (const [args, message] of cases) {
    const run = await replay(db, args);
    t.equal(run.code, 2, args.join(' '));
    t.match(run.stderr, message, args.join(' '));
    t.match(run.stderr, /--help/, 'points at --help');
  }
  t.same(await snapshot(db), before, 'nothing changed');
});

t.test('an unreachable database exits 1 with an actionable message', async (t) => {
  const run = await replay('postgres://nobody:x@127.0.0.1:1/none', ['--status', 'FAILED']);
  t.equal(run.code, 1);
  t.match(run.stderr, /cannot reach the database .*check DATABASE_URL/);
});

t.test('--dry-run prints how many match and a sample, and changes nothing', async (t) => {
  const db = await createTestDatabase(t);
  const failed = [
    await seedEvent(db.sql, { status: 'FAILED', type: 'invoice.paid', lastError: 'no customer yet', age: '2 hours' }),
    await seedEvent(db.sql, { status: 'FAILED', type: 'invoice.created', lastError: 'boom', age: '1 hour' }),
  ];
  await seedEvent(db.sql, { status: 'PROCESSED', type: 'invoice.paid' });
  await seedEvent(db.sql, { status: 'FAILED', type: 'customer.created' });
  const before = await snapshot(db);
  const run = await replay(db, ['--status', 'FAILED', '--type', 'invoice.*', '--dry-run']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^dry run: 2 events would be replayed/m);
  t.match(run.stdout, /^id\s+received_at\s+event\s+type\s+status\s+attempts\s+last_error$/m, 'a sample table');
  for (const f of failed) t.match(run.stdout, `stripe:${f.event_id}`);
  t.match(run.stdout, /no customer yet/);
  t.same(await snapshot(db), before, 'nothing changed');

  const ids = await replay(db, ['--id', failed[0]!.id, '--id', 'stripe:evt_missing', '--dry-run']);
  t.match(ids.stdout, `${failed[0]!.id}: would replay`);
  t.match(ids.stdout, /stripe:evt_missing: no such event/);
  t.equal(ids.code, 1, 'a missing id is a failure');
  t.same(await snapshot(db), before, 'still nothing changed');
});

t.test('replay of FAILED events after a fix ends PROCESSED; a one-line summary when not on a TTY', async (t) => {
  const db = await createTestDatabase(t);
  await db.sql.unsafe(`
    create function broken() returns trigger language plpgsql as $$ begin raise exception 'bug 7: invoices are read-only'; end $$;
    create trigger broken before insert or update on invoices for each row execute function broken();`);
  const T0 = 1_760_000_000;
  const events = [1, 2, 3, 4].map((i) =>
    stripeEv(`evt_cli${i}`, 'invoice.created', T0 + i, { id: `in_cli${i}`, object: 'invoice', status: 'draft', created: T0, livemode: false, currency: 'eur', amount_due: 100 }),
  );
  await storeEvents(db.sql, events);
  await drain(db.sql, { env: { WORKER_MAX_ATTEMPTS: '1' } });
  t.same(await statuses(db), ['FAILED', 'FAILED', 'FAILED', 'FAILED']);

  await db.sql.unsafe('drop trigger broken on invoices'); // the fix
  const run = await replay(db, ['--status', 'FAILED', '--batch-size', '3']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^replayed 4 events in [\d.]+s \([\d,]+\/s\)\n$/, 'exactly one line');
  t.notMatch(run.stderr, /\r/, 'no progress redraws off a TTY');
  const [row] = await db.sql`select status, attempts, last_error from events where event_id = 'evt_cli1'`;
  t.match(row, { status: 'RECEIVED', attempts: 0, last_error: /bug 7/ }, 'last_error kept for the record');
  await drain(db.sql);
  t.same(await statuses(db), ['PROCESSED', 'PROCESSED', 'PROCESSED', 'PROCESSED']);
  t.same((await db.sql`select id from invoices order by id`).map((r) => r.id), ['in_cli1', 'in_cli2', 'in_cli3', 'in_cli4']);

  const again = await replay(db, ['--status', 'FAILED']);
  t.equal(again.code, 0);
  t.match(again.stdout, /^replayed 0 events/, 'a second run finds nothing left to do');

  const one = await replay(db, ['--id', 'evt_cli2']);
  t.equal(one.code, 0);
  t.match(one.stdout, /evt_cli2: replayed \(id \d+\)/);
});

t.test('interrupted with Ctrl-C: stops after a batch, exits 1, and a second run finishes the job', async (t) => {
  const db = await createTestDatabase(t);
  await db.sql`
    insert into events (source, event_id, type, payload, status, attempts, last_error, processed_at)
    select 'stripe', 'evt_bulk' || i, 'invoice.paid', '{}'::jsonb, 'FAILED', 8, 'x', now()
      from generate_series(1, 5000) i`;
  const run = spawnScript(process.execPath, [script, '--status', 'FAILED', '--batch-size', '5'], { env: { DATABASE_URL: db.url } });
  const requeued = async () => (await db.sql`select count(*)::int as n from events where status = 'RECEIVED'`)[0]!.n as number;
  await waitFor(async () => (await requeued()) > 0, { intervalMs: 5, what: 'the first batch re-queued', proc: run });
  run.child.kill('SIGINT');
  const { code } = await run.exited;
  const partial = await requeued();
  t.equal(code, 1, 'interrupted is not success');
  t.match(run.stdout(), /^interrupted: replayed [\d,]+ of 5,000 matching events; run the same command again/m);
  t.ok(partial > 0 && partial < 5000, `stopped part-way (${partial} re-queued)`);
  t.equal(partial % 5, 0, 'whole batches only');

  const rest = await replay(db, ['--status', 'FAILED']);
  t.equal(rest.code, 0);
  t.match(rest.stdout, new RegExp(`^replayed ${(5000 - partial).toLocaleString('en-US')} events`));
  t.equal(await requeued(), 5000, 'everything re-queued after the second run');
});

t.test('--file imports NDJSON as RECEIVED, deduplicated like webhooks; bad lines are named', async (t) => {
  const db = await createTestDatabase(t);
  const existing = await seedEvent(db.sql, { status: 'PROCESSED' });
  const event = (id: string, type = 'customer.created') => ({
    id,
    object: 'event',
    api_version: '2025-03-31.basil',
    created: 1_760_000_000,
    livemode: true,
    account: 'acct_1',
    type,
    data: { object: { id: `cus_${id}`, object: 'customer' } },
  });
  const dir = await mkdtemp(path.join(tmpdir(), 'wi-import-'));
  const file = path.join(dir, 'events.ndjson');
  const lines = [
    JSON.stringify(event('evt_imp1')),
    JSON.stringify(event('evt_imp2', 'invoice.paid')),
    '',
    '{"not": "an event"}',
    JSON.stringify(event('evt_imp1')), // twice in the file
    'garbage',
    JSON.stringify(event(existing.event_id)), // already delivered as a webhook
    JSON.stringify(event('evt_imp3')),
  ];
  await writeFile(file, lines.join('\n') + '\n');

  const before = await snapshot(db);
  const dry = await replay(db, ['--file', file, '--dry-run']);
  t.match(dry.stdout, /^dry run: 5 events read, 3 would be new, 2 already stored; 2 bad lines skipped/m);
  t.same(await snapshot(db), before, 'the dry run changed nothing');

  const run = await replay(db, ['--file', file, '--batch-size', '2']);
  t.equal(run.code, 1, 'bad lines make the exit status 1');
  t.match(run.stderr, /line 4: not a Stripe event: id: /);
  t.match(run.stderr, /line 6: not JSON/);
  t.match(run.stdout, /^imported 3 new events \(2 already stored\) from 5 read in .*; 2 bad lines skipped/m);
  const rows = await db.sql`select event_id, type, status, account, livemode, created, payload from events where event_id like 'evt_imp%' order by event_id`;
  t.same(rows.map((r) => [r.event_id, r.type, r.status]), [
    ['evt_imp1', 'customer.created', 'RECEIVED'],
    ['evt_imp2', 'invoice.paid', 'RECEIVED'],
    ['evt_imp3', 'customer.created', 'RECEIVED'],
  ]);
  t.match(rows[0], { account: 'acct_1', livemode: true, created: new Date(1_760_000_000_000) });
  t.same(rows[0]!.payload, event('evt_imp1'), 'stored as jsonb, not a JSON string');
  t.equal((await db.sql`select count(*)::int as n from events where event_id = ${existing.event_id}`)[0]!.n, 1);

  const again = await replay(db, ['--file', file]);
  t.match(again.stdout, /^imported 0 new events \(5 already stored\)/m, 'importing again adds nothing');

  await drain(db.sql);
  t.same((await db.sql`select id from customers order by id`).map((r) => r.id), ['cus_evt_imp1', 'cus_evt_imp2', 'cus_evt_imp3'], 'the workers fold what was imported');
});

const hasScript = await runScript('script', ['--version']).then((r) => r.stdout.includes('util-linux'), () => false);
t.test('on a TTY: a progress line with count, rate and ETA', { skip: hasScript ? false : 'needs util-linux script(1) to run the command on a pseudo-terminal' }, async (t) => {
  const db = await createTestDatabase(t);
  await db.sql`
    insert into events (source, event_id, type, payload, status, attempts, processed_at)
    select 'stripe', 'evt_tty' || i, 'invoice.paid', '{}'::jsonb, 'FAILED', 8, now() from generate_series(1, 50) i`;
  const command = [process.execPath, script, '--status', 'FAILED', '--batch-size', '10'].map((a) => `'${a}'`).join(' ');
  const run = await runScript('script', ['-qfec', command, '/dev/null'], { env: { DATABASE_URL: db.url, TERM: 'dumb' }, timeoutMs: 60_000 });
  t.equal(run.code, 0, run.stdout);
  t.match(run.stdout, /\r\x1b\[Kreplayed 10 of 50 \(20%\)\s+[\d,]+\/s\s+ETA [\d.]+s/, 'count, share, rate, ETA, redrawn in place');
  t.match(run.stdout, /replayed 50 events in/, 'and the summary');
});

// Gap reconciliation against the fake Stripe's Events API: an outage longer than the sender's
// retries (events withheld from webhook delivery but listed by the API) is recovered, the graph
// equals the in-order fold, and nothing is stored twice; the cursor lives in the database; the
// schedule's metrics; npm run reconcile as operators run it.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createMetrics } from '../src/metrics.ts';
import { loadConfig } from '../src/config.ts';
import { reconcileEvents, reconcileSweep, SETTLE_S } from '../src/worker/reconcile.ts';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { drain, graphSnapshot, resetGraph, storeEvents } from './helpers/fold.ts';
import { TEST_KEY, busiestWindow, startFakeStripe, type FakeStripe } from './helpers/fake-stripe.ts';
import { testApi, testLog } from './helpers/stripe-api.ts';
import { runScript } from './helpers/spawn.ts';
import { buildStream, type StripeEvent } from '../scripts/lib/stream.ts';
import { root } from '../scripts/lib/service.ts';

const db = await createTestDatabase(t);
const sql = db.sql;
const DAY = 86_400;

async function fake(t: { teardown: (fn: () => unknown) => void }): Promise<FakeStripe> {
  const f = await startFakeStripe();
  t.teardown(() => f.close());
  return f;
}

// Every run here looks back as far as Stripe keeps events; recentStream checks its stream fits.
const LOOKBACK = 30 * DAY;

/** A stream whose last event was an hour ago, every event listed by the fake's Events API. */
function recentStream(f: FakeStripe, seed: number, account?: string): StripeEvent[] {
  const probe = buildStream({ seed, customers: 4, start: 0 });
  const start = Math.floor(Date.now() / 1000) - 3600 - probe.at(-1)!.created;
  const stream = buildStream({ seed, customers: 4, start, account });
  if (stream[0]!.created < Date.now() / 1000 - LOOKBACK + 3600) throw new Error(`seed ${seed}: the stream starts before the lookback; pick another seed`);
  for (const e of stream) f.addEvent(e as any);
  return stream;
}

async function inOrderGraph(stream: StripeEvent[]) {
  await resetGraph(sql);
  await sql`truncate reconcile_cursors`;
  await storeEvents(sql, stream);
  await drain(sql, { concurrency: 1, batchSize: 1 });
  return graphSnapshot(sql);
}

const storedIds = async () => [...(await sql`select event_id from events where source = 'stripe' order by event_id`)].map((r) => r.event_id as string);

t.test('an outage longer than the retries is recovered: the graph equals the in-order fold, nothing stored twice', async (t) => {
  const f = await fake(t);
  const stream = recentStream(f, 41);
  // Every event is at least SETTLE_S old, so a run covers them all.
  t.ok(stream.every((e) => e.created < Date.now() / 1000 - SETTLE_S));
  const expected = await inOrderGraph(stream);

  await resetGraph(sql);
  await sql`truncate reconcile_cursors`;
  const third = Math.floor(stream.length / 3);
  const delivered = [...stream.slice(0, third), ...stream.slice(2 * third)];
  const withheld = stream.slice(third, 2 * third);
  await storeEvents(sql, delivered);
  await drain(sql);

  const api = testApi(f);
  const [report] = await reconcileEvents({ sql, api, log: testLog(), lookbackSeconds: LOOKBACK, accounts: [] });
  t.match(report, { scope: 'platform', listed: stream.length, missing: withheld.length, complete: true });
  const recovered = await sql`select event_id, recovered_at, status from events where recovered_at is not null order by event_id`;
  t.same(recovered.map((r) => r.event_id), withheld.map((e) => e.id).sort(), 'exactly the withheld events are marked recovered');
  t.ok(recovered.every((r) => r.status === 'RECEIVED'), 'stored for the workers, like a delivery');

  await drain(sql);
  t.same(await graphSnapshot(sql), expected, 'the graph of the in-order fold');
  t.same(await storedIds(), stream.map((e) => e.id).sort(), 'every event once');

  // A second run lists its overlap again and stores nothing.
  const [again] = await reconcileEvents({ sql, api, log: testLog(), lookbackSeconds: LOOKBACK, accounts: [] });
  t.match(again, { missing: 0, complete: true });
  t.equal(again!.since.getTime(), report!.until.getTime() - 300_000, 'the second run starts where the first ended, minus the overlap');
  t.same(await storedIds(), stream.map((e) => e.id).sort(), 'still every event once');

  const [cursor] = await sql`select * from reconcile_cursors`;
  const [dry] = await reconcileEvents({ sql, api, log: testLog(), lookbackSeconds: LOOKBACK, accounts: [], dryRun: true });
  t.equal(dry!.since.getTime(), (cursor!.covered_until as Date).getTime() - 300_000, 'a dry run lists the window a real run would, from the cursor');
  t.match(cursor, { scope: 'platform', last_error: null, last_recovered: 0, recovered_total: String(withheld.length) });
  t.equal((cursor!.covered_until as Date).getTime(), again!.until.getTime(), 'covered up to where the last run ended');
  t.ok(again!.until.getTime() >= stream.at(-1)!.created * 1000, 'which is past the newest event');
});

t.test('a connected account is listed with its Stripe-Account, and its events say whose they are', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  await sql`truncate reconcile_cursors`;
  const stream = recentStream(f, 42, 'acct_rec_1');
  // Listed with Stripe-Account, some events lack `account`; a Connect delivery would carry it.
  for (const e of stream.slice(0, 5)) f.addEvent({ ...(e as any), account: undefined }, { account: 'acct_rec_1' });
  const reports = await reconcileEvents({ sql, api: testApi(f), log: testLog(), lookbackSeconds: LOOKBACK, accounts: ['acct_rec_1'] });
  // The platform's transfers to the account are the platform's own events (no `account`).
  const platform = stream.filter((e) => !e.account);
  t.ok(platform.length > 0 && platform.length < stream.length);
  t.same(reports.map((r) => [r.scope, r.missing]), [['platform', platform.length], ['acct_rec_1', stream.length - platform.length]]);
  t.same([...new Set(f.requests.map((r) => r.account ?? 'platform'))], ['platform', 'acct_rec_1']);
  const accounts = await sql`select distinct account, payload ->> 'account' as in_payload from events order by account nulls first`;
  t.same([...accounts], [{ account: null, in_payload: null }, { account: 'acct_rec_1', in_payload: 'acct_rec_1' }]);
  t.same([...(await sql`select scope from reconcile_cursors order by scope`)].map((r) => r.scope), ['acct_rec_1', 'platform'], 'a cursor per scope');
});

t.test('under 429s and 500s the run either finishes or leaves its cursor, and the next run recovers the rest; the rate limit holds', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  await sql`truncate reconcile_cursors`;
  const stream = [...recentStream(f, 43), ...recentStream(f, 44), ...recentStream(f, 45)];
  const rps = 4;
  const api = testApi(f, { rps, maxNetworkRetries: 1 });
  f.fault({ kind: 'rate_limit', ratio: 0.3, retryAfter: 1 });
  const broken = f.fault({ kind: 'server_error', times: 10 });
  const first = await reconcileEvents({ sql, api, log: testLog(), lookbackSeconds: LOOKBACK, accounts: [] });
  t.match(first[0], { complete: false, error: /Stripe answered 500/ }, 'a run that fails says so');
  const [cursor] = await sql`select last_error, last_success_at from reconcile_cursors`;
  t.match(cursor, { last_error: /500/, last_success_at: null }, 'and its cursor stays where it was');
  let runs = 1;
  let last = first;
  while (last[0]!.error !== undefined && runs < 10) {
    last = await reconcileEvents({ sql, api, log: testLog(), lookbackSeconds: LOOKBACK, accounts: [] });
    runs++;
  }
  t.match(last[0], { complete: true, listed: stream.length }, `recovered after ${runs} runs`);
  t.equal(broken.hits, 10, 'through all ten 500s');
  t.same(await storedIds(), stream.map((e) => e.id).sort(), 'every event once');
  const busiest = busiestWindow(f.requests, 1000);
  t.ok(busiest <= rps + 1, `at most ${rps} + 1 requests in any second: ${busiest}`);
});

t.test('the schedule counts what it recovers; /metrics shows the last success and the lag', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  await sql`truncate reconcile_cursors`;
  const stream = recentStream(f, 46);
  const config = loadConfig({ STRIPE_API_KEY: TEST_KEY, STRIPE_API_BASE: f.url, RECONCILE_EVERY: '5m', RECONCILE_LOOKBACK: '30d' });
  const metrics = createMetrics({ sql, log: testLog(), sources: ['stripe'] });
  const sweep = reconcileSweep(sql, testApi(f), config, testLog(), metrics.stripeApi);
  t.equal(sweep.cron, '*/5 * * * *');
  t.equal(await sweep.run(), stream.length);
  const text = await metrics.render();
  t.match(text, new RegExp(`webhook_inbox_reconcile_recovered_events_total ${stream.length}\\b`));
  const [cursor] = await sql`select extract(epoch from last_success_at)::float8 as success from reconcile_cursors where scope = 'platform'`;
  const success = Number(/webhook_inbox_reconcile_last_success_timestamp_seconds\{scope="platform"\} ([\d.e+]+)/.exec(text)?.[1]);
  t.equal(success, cursor!.success, 'last success: the run just made');
  const lag = Number(/webhook_inbox_reconcile_lag_seconds\{scope="platform"\} ([\d.e+]+)/.exec(text)?.[1]);
  t.ok(lag >= SETTLE_S, `lag ${lag} s: at least the settle time`);

  f.fault({ kind: 'server_error' });
  await t.rejects(sweep.run(), /reconcile failed for platform/, 'a failed run fails the job, so pg-boss retries it');
});

/** The CLI as a child process; asynchronously, since the fake Stripe answers from this process. */
const reconcile = (database: TestDatabase, f: FakeStripe, args: string[]) =>
  runScript(process.execPath, [path.join(root, 'scripts/reconcile.ts'), ...args], {
    env: { DATABASE_URL: database.url, STRIPE_API_KEY: TEST_KEY, STRIPE_API_BASE: f.url },
  });

t.test('npm run reconcile -- --since 20d --dry-run reports how many are missing and changes nothing; without --dry-run it stores them', async (t) => {
  const f = await fake(t);
  const own = await createTestDatabase(t);
  const stream = recentStream(f, 47);
  await storeEvents(own.sql, stream.slice(0, 10));
  const missing = stream.length - 10;

  const dry = await reconcile(own, f, ['--since', '20d', '--dry-run']);
  t.equal(dry.code, 0, dry.stderr);
  t.match(dry.stdout, new RegExp(`platform: ${stream.length} events listed \\(.*\\), ${missing} missing`));
  t.match(dry.stdout, new RegExp(`dry run: ${missing} events missing; nothing stored`));
  t.equal((await own.sql`select count(*)::int as n from events`)[0]!.n, 10, 'nothing stored');
  t.equal((await own.sql`select count(*)::int as n from reconcile_cursors`)[0]!.n, 0, 'no cursor moved');

  const real = await reconcile(own, f, ['--since', '20d']);
  t.equal(real.code, 0, real.stderr);
  t.match(real.stdout, new RegExp(`${missing} events recovered in`));
  t.equal((await own.sql`select count(*)::int as n from events where recovered_at is not null`)[0]!.n, missing);

  const help = await runScript(process.execPath, [path.join(root, 'scripts/reconcile.ts'), '--help']);
  t.equal(help.code, 0);
  for (const flag of ['--since', '--account', '--dry-run', '--help', 'Exit status']) t.match(help.stdout, flag);
  const bad = await reconcile(own, f, ['--since', 'yesterday']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /--since: expected an ISO-8601 time/);
  const noKey = await runScript(process.execPath, [path.join(root, 'scripts/reconcile.ts')], { env: { DATABASE_URL: own.url } });
  t.equal(noKey.code, 2);
  t.match(noKey.stderr, /STRIPE_API_KEY is not set/);
});

t.test("the README's queries for Stripe's API run and answer", async (t) => {
  const readme = await readFile(path.join(root, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith("Stripe's API as the source of truth\n"));
  const block = /```sql\n([\s\S]*?)```/.exec(section ?? '')?.[1] ?? '';
  const queries = block.split(/;\s*\n/).map((q) => q.trim()).filter((q) => q.length > 0);
  t.equal(queries.length, 3, 'three queries');
  const f = await fake(t);
  await resetGraph(sql);
  await sql`truncate reconcile_cursors`;
  const stream = recentStream(f, 48);
  await storeEvents(sql, stream.slice(0, 20));
  await reconcileEvents({ sql, api: testApi(f), log: testLog(), lookbackSeconds: LOOKBACK, accounts: [] });
  await sql`insert into pending_links (child_table, child_id, link_column, parent_table, parent_id, event_id, unresolvable_reason)
            values ('invoices', 'in_readme', 'customer_id', 'customers', 'cus_readme', 'evt_readme', 'No such customer')`;
  for (const q of queries) {
    const rows = await sql.unsafe(q);
    t.ok(rows.length > 0, `${q.split('\n')[0]} returns rows (${rows.length})`);
  }
});

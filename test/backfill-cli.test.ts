// npm run backfill as operators run it, a child process against a test database and the fake
// Stripe: parents first, so the graph comes out linked; an interrupted run (Ctrl-C, kill -9) run
// again ends with the same graph as one uninterrupted run; the rate limit holds; --dry-run
// changes nothing; --help; progress on a TTY.
import path from 'node:path';
import t from 'tap';
import { createTestDatabase, type TestDatabase } from './helpers/db.ts';
import { graphSnapshot } from './helpers/fold.ts';
import { COLLECTIONS, TEST_KEY, busiestWindow, startFakeStripe, type FakeStripe } from './helpers/fake-stripe.ts';
import { differingTables, withoutProvenance } from './helpers/stripe-api.ts';
import { runScript, spawnScript } from './helpers/spawn.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { buildStream, objectsOf } from '../scripts/lib/stream.ts';
import { root } from '../scripts/lib/service.ts';
import { SPECS } from '../src/stripe/catalog.ts';
import { backfillTables } from '../src/worker/backfill.ts';

const script = path.join(root, 'scripts/backfill.ts');
const LISTED = new Set(Object.values(COLLECTIONS));
const FILLED = new Set(backfillTables());

async function fake(t: { teardown: (fn: () => unknown) => void }): Promise<FakeStripe> {
  const f = await startFakeStripe();
  t.teardown(() => f.close());
  return f;
}

/** The objects of a realistic stream, each in its final state, in the fake; deleted customers answer tombstones. */
const deleted = new Set<string>();

function seed(f: FakeStripe, customers: number): number {
  const stream = buildStream({ seed: 51, customers });
  for (const e of stream) if (e.type === 'customer.deleted') deleted.add(e.data.object.id as string);
  let n = 0;
  for (const [id, { object, last }] of objectsOf(stream)) {
    if (!LISTED.has(object) || object === 'subscription_item') continue;
    f.put(last as any);
    if (deleted.has(id)) f.markDeleted(object, id);
    // Payment methods are listed per customer only (a backfill leaves them to their events), and
    // invoice items are not folded at all.
    else if (FILLED.has(SPECS.get(object)?.table ?? '')) n++;
  }
  return n;
}

const start = (database: TestDatabase, f: FakeStripe, args: string[], env: Record<string, string> = {}) =>
  spawnScript(process.execPath, [script, ...args], {
    env: { DATABASE_URL: database.url, STRIPE_API_KEY: TEST_KEY, STRIPE_API_BASE: f.url, ...env },
  });

const backfill = (database: TestDatabase, f: FakeStripe, args: string[], env?: Record<string, string>) => start(database, f, args, env).closed;
const snapshots = async (database: TestDatabase) => (await database.sql`select count(*)::int as n from events where source = 'stripe-api'`)[0]!.n as number;

t.test('--help explains the flags; bad arguments exit 2', async (t) => {
  const help = await runScript(process.execPath, [script, '--help']);
  t.equal(help.code, 0);
  for (const flag of ['--objects', '--since', '--account', '--dry-run', '--help', 'Exit status', 'parents first', 'carries on where it stopped']) t.match(help.stdout, flag);
  const bad = await runScript(process.execPath, [script, '--objects', 'customers,widgets']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /widgets \(no such table\)/);
  const items = await runScript(process.execPath, [script, '--objects', 'subscription_items']);
  t.match(items.stderr, /subscription_items \(listed per subscription only/);
});

t.test('one run, parents first: every object folded, the graph linked; the rate limit holds', async (t) => {
  const f = await fake(t);
  const expected = seed(f, 6);
  const db = await createTestDatabase(t);
  const run = await backfill(db, f, [], { STRIPE_API_RPS: '3' });
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^customers: \d+ folded/m);
  t.match(run.stdout, new RegExp(`finished run \\d+: ${expected} objects folded`));
  t.equal(await snapshots(db), expected, 'each read stored as a stripe-api event');
  // Listing order is parents first.
  const order = [...new Set(f.requests.map((r) => r.path))];
  t.same(order.slice(0, 3), ['/v1/customers', '/v1/products', '/v1/prices']);
  // What waits is what no list returns: deleted customers (the parent fetcher reads their
  // tombstones), payment methods (listed per customer only, so left to the parent fetcher's one
  // read each) and discounts (Stripe has no endpoint for them; their events bring them).
  const waiting = await db.sql`select child_table, parent_table, parent_id from pending_links`;
  const unlisted = waiting.filter((l) => !(l.parent_table === 'customers' && deleted.has(l.parent_id)) && l.parent_table !== 'payment_methods' && l.parent_table !== 'discounts');
  t.same(unlisted, [], 'only parents no list returns wait');
  const [unlinked] = await db.sql`select count(*)::int as n from invoices where customer_id is null and id not in (select child_id from pending_links where parent_table = 'customers')`;
  t.equal(unlinked!.n, 0, 'every invoice linked to its customer, or waiting for a deleted one');
  t.ok(busiestWindow(f.requests) <= 4, `at most 3 + 1 requests in any second: ${busiestWindow(f.requests)}`);
  const [runRow] = await db.sql`select finished_at, counts from backfill_runs`;
  t.ok(runRow!.finished_at, 'the run is recorded as finished');
});

t.test('interrupted halfway (Ctrl-C, then kill -9) and run again: the same graph as one uninterrupted run', async (t) => {
  const f = await fake(t);
  const total = seed(f, 15);
  const whole = await createTestDatabase(t);
  const once = await backfill(whole, f, []);
  t.equal(once.code, 0, once.stderr);
  const expected = withoutProvenance(await graphSnapshot(whole.sql));

  const broken = await createTestDatabase(t);
  const first = start(broken, f, []);
  await waitFor(async () => (await snapshots(broken)) >= total / 3, { timeoutMs: 60_000, what: 'a third of the objects' });
  first.child.kill('SIGINT');
  const interrupted = await first.closed;
  t.equal(interrupted.code, 1, 'Ctrl-C exits 1');
  t.match(interrupted.stdout, /interrupted: \d+ objects folded so far \(run \d+\); run the same command again to carry on/);
  const afterCtrlC = await snapshots(broken);
  t.ok(afterCtrlC < total, `stopped part-way: ${afterCtrlC} of ${total}`);

  const second = start(broken, f, []);
  await waitFor(async () => (await snapshots(broken)) >= afterCtrlC + (total - afterCtrlC) / 3, { timeoutMs: 60_000, what: 'more objects' });
  second.child.kill('SIGKILL');
  t.equal((await second.closed).signal, 'SIGKILL');

  const last = await backfill(broken, f, []);
  t.equal(last.code, 0, last.stderr);
  t.match(last.stdout, /resumed and finished run/);
  t.same(differingTables(withoutProvenance(await graphSnapshot(broken.sql)), expected), [], 'the same graph');
  const [runs] = await broken.sql`select count(*)::int as n, count(finished_at)::int as finished from backfill_runs`;
  t.same({ ...runs }, { n: 1, finished: 1 }, 'one run, carried on twice');
  // The cursor moved with every object's fold: not one object folded twice, even after kill -9.
  t.equal(await snapshots(broken), total, 'each object read and folded once');
});

t.test('--dry-run lists and counts, and folds nothing', async (t) => {
  const f = await fake(t);
  const total = seed(f, 3);
  const db = await createTestDatabase(t);
  const run = await backfill(db, f, ['--dry-run', '--objects', 'invoices,customers']);
  t.equal(run.code, 0, run.stderr);
  t.match(run.stdout, /^customers: \d+ listed, 0 already in the database$/m);
  t.match(run.stdout, /^invoices: \d+ listed, 0 already in the database$/m);
  t.match(run.stdout, /dry run: \d+ objects listed, 0 already in the database; nothing folded/);
  t.ok(total > 0);
  t.equal(await snapshots(db), 0);
  t.equal((await db.sql`select count(*)::int as n from backfill_runs`)[0]!.n, 0, 'no run recorded');
  t.same([...new Set(f.requests.map((r) => r.path))], ['/v1/customers', '/v1/invoices'], 'parents first, whatever the order given');
});

const hasScript = await runScript('script', ['--version']).then((r) => r.stdout.includes('util-linux'), () => false);

t.test('on a TTY: per table, a progress line with the count and rate', { skip: hasScript ? false : 'needs util-linux script(1) for a pseudo-terminal' }, async (t) => {
  const f = await fake(t);
  seed(f, 3);
  const db = await createTestDatabase(t);
  const command = [process.execPath, script, '--objects', 'customers,invoices', '--since', '2025-06-01'].map((a) => `'${a}'`).join(' ');
  const { code, stdout } = await runScript('script', ['-qfec', command, '/dev/null'], {
    env: { DATABASE_URL: db.url, STRIPE_API_KEY: TEST_KEY, STRIPE_API_BASE: f.url, TERM: 'dumb' },
  });
  t.equal(code, 0, stdout);
  t.match(stdout, /\r\x1b\[Kcustomers: \d+ folded\s+[\d,]+\/s\s+back to 2025-\d\d-\d\d \(\d+%\)\s+ETA /, 'count, rate, how far back, share and ETA, redrawn in place');
  t.match(stdout, /invoices: \d+ folded \(\d+ in /, 'and a line per table');
});

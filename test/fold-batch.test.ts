// Folding a claim a batch at a time (fold_items() in sql/functions/fold_items.sql, foldBatch in
// src/worker/fold.ts): one transaction for the batch, one subtransaction per event. An event that
// throws, or whose rows another fold holds, must not take the others down with it, and must still
// be folded (or retried) by the one-event path.
import t from 'tap';
import { claimEvents } from '../src/db/events.ts';
import { applyFoldItems, type FoldItem } from '../src/db/fold.ts';
import { silentLogger } from '../src/log.ts';
import { planEvent } from '../src/stripe/graph.ts';
import { MAX_FOLD_BATCH, foldBatch } from '../src/worker/fold.ts';
import { createTestDatabase } from './helpers/db.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { resetGraph, storeEvents, stripeEv, type Ev } from './helpers/fold.ts';

const db = await createTestDatabase(t);
const sql = db.sql;
const T0 = 1_760_000_000;
const options = { maxAttempts: 3, retryBaseMs: 20, retryMaxMs: 100 };

let seq = 0;
const nextId = () => `evt_b${String(++seq).padStart(5, '0')}`;
const customerEvent = (id: string) =>
  stripeEv(nextId(), 'customer.created', T0, { id, object: 'customer', created: T0, email: `${id}@example.com`, livemode: false });

/** Stores the events and claims them all, as a worker would. */
async function claim(events: Ev[]) {
  await resetGraph(sql);
  await storeEvents(sql, events);
  return claimEvents(sql, { limit: 100, leaseSeconds: 60, workerId: 'test:1:0' });
}

/** Folds the items as one batch in a transaction of its own, as foldBatch does. */
const applyBatch = (items: FoldItem[]) => sql.begin((tx) => applyFoldItems(tx, items));

/** Which outcome fold_items() gave (its jsonb objects do not keep key order). */
const kind = (o: object) => ['result', 'ignored', 'skipped', 'busy', 'error'].find((k) => k in o);

const statuses = async () =>
  Object.fromEntries(
    (await sql<{ id: string; status: string }[]>`select payload #>> '{data,object,id}' as id, status from events`).map(
      (r) => [r.id, r.status],
    ),
  );

t.test('an event that throws is rolled back alone; the rest of the batch commits', async (t) => {
  // A real refusal from the database, as in fold.test.ts.
  await sql`alter table customers add constraint poison check (id <> 'cus_poison')`;
  t.teardown(() => sql`alter table customers drop constraint poison`);
  const claimed = await claim([customerEvent('cus_1'), customerEvent('cus_poison'), customerEvent('cus_2')]);
  const items: FoldItem[] = claimed.map((e) => {
    const plan = planEvent(e.payload);
    if (plan.kind !== 'fold') throw new Error('expected a fold plan');
    return { event: e.id, plan };
  });
  const outcomes = await applyBatch(items);
  t.same(outcomes.map(kind), ['result', 'error', 'result'], 'one outcome per event, in order');
  t.match(outcomes[1], { code: '23514', error: /poison/ }, 'the error names the constraint');
  t.same(await statuses(), { cus_1: 'PROCESSED', cus_poison: 'RECEIVED', cus_2: 'PROCESSED' });
  t.same((await sql`select id from customers order by id`).map((r) => r.id), ['cus_1', 'cus_2'], 'nothing of the poison is written');

  // Through the worker's path, the poison is folded alone and its failure recorded as a retry.
  const again = await claimEvents(sql, { limit: 10, leaseSeconds: 60, workerId: 'test:1:0' });
  t.equal(again.length, 0, 'the poison is still leased to its worker');
  const [poison] = await sql`select id::text, source, event_id, type, attempts, payload from events where status = 'RECEIVED'`;
  const folded = await foldBatch(sql, [poison as any, poison as any], options, silentLogger());
  t.same(folded.map((f) => f.outcome), ['retry', 'retry'], 'each failure goes to the one-event path, which records a retry');
  // The 60 s lease gives way to the backoff (20-100 ms here): no wall-clock comparison, which a
  // loaded machine would pass before the row is read.
  const [row] = await sql`select status, last_error, next_attempt_at < now() + interval '30 seconds' as backoff from events where id = ${poison!.id}`;
  t.match(row, { status: 'RECEIVED', last_error: /poison/, backoff: true });
});

t.test('an event whose rows another fold holds is not waited for in the batch, then folded alone', async (t) => {
  const claimed = await claim([customerEvent('cus_free'), customerEvent('cus_held'), customerEvent('cus_free2')]);
  const held = claimed.find((e) => (e.payload as any).data.object.id === 'cus_held')!;
  const plan = planEvent(held.payload);
  if (plan.kind !== 'fold') throw new Error('expected a fold plan');

  // Another transaction holds the held customer's advisory lock, as a concurrent fold would.
  const holder = await sql.reserve();
  t.teardown(() => holder.release());
  await holder`begin`;
  await holder`select pg_advisory_xact_lock(hashtextextended(${plan.lockKeys[0]!}, 0))`;

  const items: FoldItem[] = claimed.map((e) => {
    const p = planEvent(e.payload);
    if (p.kind !== 'fold') throw new Error('expected a fold plan');
    return { event: e.id, plan: p };
  });
  const outcomes = await applyBatch(items);
  t.same(
    outcomes.map(kind),
    claimed.map((e) => (e.id === held.id ? 'busy' : 'result')),
    'the batch returns at once: busy for the held event, folded for the others',
  );
  t.same(await statuses(), { cus_free: 'PROCESSED', cus_held: 'RECEIVED', cus_free2: 'PROCESSED' });

  // foldBatch folds the busy event alone, which waits for the lock instead of skipping it.
  let finished = false;
  const folding = foldBatch(sql, [held, held], options, silentLogger()).finally(() => (finished = true));
  await waitFor(async () => {
    const [w] = await sql`select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`;
    return w!.n > 0;
  }, { timeoutMs: 10_000, what: 'the fold to wait for the advisory lock' });
  t.notOk(finished, 'it waits for the lock while the other transaction holds it');
  await holder`commit`;
  const a = await folding;
  t.same(a.map((f) => f.outcome), ['processed', 'skipped'], 'folded once after the lock was let go; the duplicate is skipped');
  t.same(await statuses(), { cus_free: 'PROCESSED', cus_held: 'PROCESSED', cus_free2: 'PROCESSED' });
});

t.test('children of one parent fold side by side; the parent\'s writer excludes them', async (t) => {
  const invoiceEvent = (id: string) =>
    stripeEv(nextId(), 'invoice.created', T0, { id, object: 'invoice', created: T0, status: 'draft', customer: 'cus_parent', livemode: false });
  const claimed = await claim([invoiceEvent('in_1'), customerEvent('cus_parent'), invoiceEvent('in_2')]);
  const plans = claimed.map((e) => {
    const p = planEvent(e.payload);
    if (p.kind !== 'fold') throw new Error('expected a fold plan');
    return p;
  });
  t.same(plans[0]!.lockKeys, ['invoices:in_1'], 'a child holds its own row exclusively');
  t.same(plans[0]!.shareKeys, ['customers:cus_parent'], 'and its parent shared');
  t.same([plans[1]!.lockKeys, plans[1]!.shareKeys], [['customers:cus_parent'], []], 'the parent\'s writer holds it exclusively');

  // Another transaction folds a third child of the same customer: it holds the customer shared.
  const holder = await sql.reserve();
  t.teardown(() => holder.release());
  await holder`begin`;
  await holder`select pg_advisory_xact_lock_shared(hashtextextended('customers:cus_parent', 0))`;

  const outcomes = await applyBatch(claimed.map((e, i) => ({ event: e.id, plan: plans[i]! })));
  t.same(outcomes.map(kind), ['result', 'busy', 'result'], 'the children fold beside it; the parent waits for it');
  t.same(await statuses(), { in_1: 'PROCESSED', cus_parent: 'RECEIVED', in_2: 'PROCESSED' });
  await holder`commit`;

  // The other way round: while the parent's writer holds its key, a child cannot check for it.
  const [again] = await claim([invoiceEvent('in_3')]);
  await holder`begin`;
  await holder`select pg_advisory_xact_lock(hashtextextended('customers:cus_parent', 0))`;
  const plan = planEvent(again!.payload);
  if (plan.kind !== 'fold') throw new Error('expected a fold plan');
  t.same((await applyBatch([{ event: again!.id, plan }])).map(kind), ['busy']);
  await holder`commit`;
});

t.test('ignored and already finished events in one batch', async (t) => {
  const claimed = await claim([
    customerEvent('cus_x'),
    stripeEv('evt_b_ping', 'ping', T0, { id: 'x', object: 'nothing_we_fold' }),
  ]);
  await sql`update events set status = 'PROCESSED' where payload #>> '{data,object,id}' = 'cus_x'`;
  const outcomes = await foldBatch(sql, claimed, options, silentLogger());
  t.same(outcomes.map((o) => o.outcome), ['skipped', 'ignored']);
  const [ping] = await sql`select status, result from events where event_id = 'evt_b_ping'`;
  t.equal(ping!.status, 'IGNORED');
  t.ok(ping!.result.ignored, 'the result says why');
});

t.test('a batch larger than fold_items() takes is refused before it reaches the database', async (t) => {
  const one = { id: '1', source: 'stripe', event_id: 'evt_1', type: 'x', attempts: 1, payload: {} };
  await t.rejects(foldBatch(sql, Array.from({ length: MAX_FOLD_BATCH + 1 }, () => one), options, silentLogger()), /at most/);
});

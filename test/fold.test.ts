// One focused test per folding rule, against a real database with real workers: links and
// parking, ties, tombstones, both API shapes, embedded objects, idempotence, ignored and malformed
// events, retries and the dead letter.
import t from 'tap';
import { claimEvents } from '../src/db/events.ts';
import { createTestDatabase } from './helpers/db.ts';
import { drain, graphSnapshot, resetGraph, storeEvents, type Ev } from './helpers/fold.ts';

const db = await createTestDatabase(t);
const sql = db.sql;

let seq = 0;
const T0 = 1_760_000_000;
/** A Stripe event carrying `object`; ids are evt_<n> so tests can reason about the last tie-break. */
function ev(type: string, object: Record<string, any>, created = T0, extra: Partial<Ev> = {}): Ev {
  seq++;
  return { id: `evt_${String(seq).padStart(6, '0')}`, type, created, api_version: '2025-03-31.basil', data: { object }, ...extra };
}
const customer = (id: string, more: Record<string, any> = {}) => ({ id, object: 'customer', created: T0, email: `${id}@example.com`, livemode: false, ...more });
const invoice = (id: string, status: string, more: Record<string, any> = {}) => ({
  id, object: 'invoice', created: T0, status, customer: 'cus_a', currency: 'eur', amount_due: 1200, livemode: false, ...more,
});

async function fold(events: Ev[], concurrency = 2) {
  await resetGraph(sql);
  await storeEvents(sql, events);
  await drain(sql, { concurrency });
  return graphSnapshot(sql);
}

t.test('a child before its parent is written, parked, and linked when the parent arrives', async (t) => {
  await resetGraph(sql);
  await storeEvents(sql, [ev('invoice.created', invoice('in_1', 'draft'))]);
  await drain(sql);
  const [row] = await sql`select customer_id, status, data->>'id' as id from invoices`;
  t.same(row, { customer_id: null, status: 'draft', id: 'in_1' }, 'child visible, link NULL');
  const parked = await sql`select child_table, child_id, link_column, parent_table, parent_id from pending_links`;
  t.same(parked, [{ child_table: 'invoices', child_id: 'in_1', link_column: 'customer_id', parent_table: 'customers', parent_id: 'cus_a' }]);
  const [park] = await sql`select result from events where type = 'invoice.created'`;
  t.equal(park!.result.parked.length, 1, 'the event result says what it parked');

  await storeEvents(sql, [ev('customer.created', customer('cus_a'))]);
  await drain(sql);
  t.same((await sql`select customer_id from invoices`)[0], { customer_id: 'cus_a' }, 'linked');
  t.equal((await sql`select count(*)::int as n from pending_links`)[0]!.n, 0, 'nothing waits');
  const [resolve] = await sql`select result from events where type = 'customer.created'`;
  t.match(resolve!.result, { objects: [{ table: 'customers', id: 'cus_a', action: 'created' }], resolved: [{ child_id: 'in_1' }] });
});

t.test('same-second ties: the later lifecycle state wins whatever the arrival order', async (t) => {
  const finalized = ev('invoice.finalized', invoice('in_1', 'open'));
  const paid = ev('invoice.paid', invoice('in_1', 'paid', { amount_paid: 1200 }));
  const created = ev('invoice.created', invoice('in_1', 'draft'));
  const inOrder = await fold([created, finalized, paid]);
  const reversed = await fold([paid, finalized, created]);
  t.equal((inOrder.invoices[0] as any).status, 'paid');
  t.equal((inOrder.invoices[0] as any).last_event_id, paid.id);
  t.same(reversed, inOrder, 'identical rows');
});

t.test('equal second and rank: the event id decides, not arrival', async (t) => {
  const a = ev('invoice.updated', invoice('in_1', 'paid', { description: 'first' }));
  const b = ev('invoice.paid', invoice('in_1', 'paid', { description: 'second' }));
  const one = await fold([a, b]);
  const two = await fold([b, a]);
  t.same(two, one);
  t.equal((one.invoices[0] as any).data.description, 'second', 'the greater event id');
});

t.test('a deletion leaves a tombstone an older update cannot undo', async (t) => {
  const created = ev('customer.created', customer('cus_a'), T0);
  const updated = ev('customer.updated', customer('cus_a', { email: 'new@example.com' }), T0 + 5);
  const deleted = ev('customer.deleted', customer('cus_a', { email: 'new@example.com' }), T0 + 9);
  const inOrder = await fold([created, updated, deleted]);
  const late = await fold([deleted, updated, created]);
  t.same(late, inOrder);
  t.match(inOrder.customers[0], { deleted: true, email: 'new@example.com', last_event_id: deleted.id });
});

t.test('a deletion older than the newest snapshot still marks the tombstone', async (t) => {
  const deleted = ev('product.deleted', { id: 'prod_1', object: 'product', created: T0, name: 'gone' }, T0 + 1);
  const newer = ev('product.updated', { id: 'prod_1', object: 'product', created: T0, name: 'late edit' }, T0 + 2);
  const a = await fold([deleted, newer]);
  const b = await fold([newer, deleted]);
  t.same(b, a);
  t.match(a.products[0], { deleted: true, last_event_id: newer.id });
});

t.test('both API shapes link an invoice to its subscription', async (t) => {
  const sub = ev('customer.subscription.created', { id: 'sub_1', object: 'subscription', created: T0, customer: 'cus_a', status: 'active', items: { object: 'list', data: [] } });
  const basil = ev('invoice.created', invoice('in_new', 'draft', { parent: { type: 'subscription_details', subscription_details: { subscription: 'sub_1' } } }));
  const legacy = ev('invoice.created', invoice('in_old', 'draft', { subscription: 'sub_1' }), T0, { api_version: '2024-06-20' });
  const g = await fold([basil, legacy, sub, ev('customer.created', customer('cus_a'))]);
  t.same(
    g.invoices.map((r: any) => [r.id, r.subscription_id, r.api_version]),
    [['in_new', 'sub_1', '2025-03-31.basil'], ['in_old', 'sub_1', '2024-06-20']],
  );
  t.same(g.pending_links, []);
});

t.test('invoice payments link invoice and payment intent; legacy payment intents link the invoice', async (t) => {
  const pi = ev('payment_intent.succeeded', { id: 'pi_1', object: 'payment_intent', created: T0, status: 'succeeded', amount: 1200, currency: 'eur', customer: 'cus_a', latest_charge: 'ch_1' });
  const inpay = ev('invoice_payment.paid', { id: 'inpay_1', object: 'invoice_payment', created: T0, status: 'paid', amount_paid: 1200, currency: 'eur', invoice: 'in_1', payment: { type: 'payment_intent', payment_intent: 'pi_1' } });
  const legacyPi = ev('payment_intent.succeeded', { id: 'pi_2', object: 'payment_intent', created: T0, status: 'succeeded', customer: 'cus_a', invoice: 'in_1' }, T0, { api_version: '2024-06-20' });
  const g = await fold([inpay, legacyPi, pi, ev('invoice.created', invoice('in_1', 'draft')), ev('customer.created', customer('cus_a'))]);
  t.match(g.invoice_payments[0], { invoice_id: 'in_1', payment_intent_id: 'pi_1', amount: 1200, status: 'paid' });
  t.match(g.payment_intents, [{ id: 'pi_1', latest_charge_id: 'ch_1', invoice_id: null }, { id: 'pi_2', invoice_id: 'in_1' }]);
  t.same(g.pending_links, []);
});

t.test('a back-reference down the graph is a plain column, never parked', async (t) => {
  const g = await fold([ev('product.created', { id: 'prod_1', object: 'product', created: T0, default_price: 'price_missing' })]);
  t.match(g.products[0], { default_price_id: 'price_missing' });
  t.same(g.pending_links, []);
});

t.test('embedded objects: subscription items and their expanded prices become rows', async (t) => {
  const price = { id: 'price_1', object: 'price', created: T0, product: 'prod_1', unit_amount: 500, currency: 'eur' };
  const sub = {
    id: 'sub_1', object: 'subscription', created: T0, customer: 'cus_a', status: 'active',
    items: { object: 'list', data: [{ id: 'si_1', object: 'subscription_item', created: T0, subscription: 'sub_1', price, current_period_end: T0 + 86400 }] },
  };
  const g = await fold([ev('customer.subscription.created', sub), ev('product.created', { id: 'prod_1', object: 'product', created: T0 })]);
  t.match(g.subscription_items[0], { id: 'si_1', subscription_id: 'sub_1', price_id: 'price_1' });
  t.equal((g.subscription_items[0] as any).current_period_end.getTime(), (T0 + 86400) * 1000);
  t.match(g.prices[0], { id: 'price_1', product_id: 'prod_1', amount: 500 });
  t.same(g.pending_links, [{ child_table: 'subscriptions', child_id: 'sub_1', link_column: 'customer_id', parent_table: 'customers', parent_id: 'cus_a' }]);
});

t.test('a newer snapshot that moves a link replaces the parked link', async (t) => {
  const first = ev('payment_method.attached', { id: 'pm_1', object: 'payment_method', created: T0, customer: 'cus_x' }, T0);
  const moved = ev('payment_method.updated', { id: 'pm_1', object: 'payment_method', created: T0, customer: 'cus_a' }, T0 + 1);
  const detached = ev('payment_method.detached', { id: 'pm_1', object: 'payment_method', created: T0, customer: null }, T0 + 2);
  let g = await fold([first, moved]);
  t.same(g.pending_links.map((p: any) => p.parent_id), ['cus_a']);
  g = await fold([moved, first, detached]);
  t.same(g.pending_links, [], 'a detached method waits for nothing');
  t.match(g.payment_methods[0], { customer_id: null });
});

t.test('folding the same event again changes nothing', async (t) => {
  const events = [ev('customer.created', customer('cus_a')), ev('invoice.created', invoice('in_1', 'draft'))];
  const once = await fold(events);
  await sql`update events set status = 'RECEIVED', next_attempt_at = now()`;
  await drain(sql);
  t.same(await graphSnapshot(sql), once);
  const results = await sql`select result from events order by id`;
  t.same(results.map((r) => r.result.objects[0].action), ['unchanged', 'unchanged']);
});

t.test('objects we do not fold, and other sources, are IGNORED, never retried', async (t) => {
  await resetGraph(sql);
  await storeEvents(sql, [ev('application_fee.created', { id: 'fee_1', object: 'application_fee', amount: 100 })]);
  await sql`insert into events (source, event_id, type, payload) values ('acme', 'msg_1', 'thing.happened', '{}')`;
  await drain(sql);
  const rows = await sql`select source, status, attempts, result from events order by id`;
  t.match(rows, [
    { source: 'stripe', status: 'IGNORED', attempts: 1, result: { ignored: /application_fee/ } },
    { source: 'acme', status: 'IGNORED', attempts: 1, result: { ignored: /acme/ } },
  ]);
});

t.test('an event without a snapshot fails at once, without retries', async (t) => {
  await resetGraph(sql);
  const broken = { ...ev('customer.created', customer('cus_x')), data: {} } as unknown as Ev;
  await storeEvents(sql, [broken, ev('customer.created', customer('cus_ok'))]);
  await drain(sql);
  const rows = await sql`select status, attempts, last_error from events order by id`;
  t.match(rows, [{ status: 'FAILED', attempts: 1, last_error: /malformed: event without data.object/ }, { status: 'PROCESSED' }]);
});

t.test('an object without an id (a preview such as invoice.upcoming) is ignored with the reason', async (t) => {
  await resetGraph(sql);
  const { id: _, ...preview } = invoice('in_x', 'draft');
  await storeEvents(sql, [ev('invoice.upcoming', preview)]);
  await drain(sql);
  const [row] = await sql`select status, attempts, result from events`;
  t.match(row, { status: 'IGNORED', attempts: 1, result: { ignored: /invoice has no id, so there is no row to write/ } });
  t.same(await sql`select id from invoices`, [], 'nothing written');
});

t.test('a snapshot without its object field is recognised by its id prefix, or else by the event type', async (t) => {
  await resetGraph(sql);
  const { object: _, ...bare } = customer('cus_bare');
  const { object: __, ...unprefixed } = invoice('weird_1', 'open');
  await storeEvents(sql, [ev('customer.updated', bare), ev('invoice.finalized', unprefixed), ev('customer.created', customer('cus_a'))]);
  await drain(sql);
  t.same((await sql`select status from events order by id`).map((r) => r.status), ['PROCESSED', 'PROCESSED', 'PROCESSED']);
  t.same((await sql`select id from customers order by id`).map((r) => r.id), ['cus_a', 'cus_bare']);
  t.match(await sql`select id, status, customer_id from invoices`, [{ id: 'weird_1', status: 'open', customer_id: 'cus_a' }]);
});

t.test('a poison event retries with backoff, ends FAILED, and does not hold up the rest', async (t) => {
  await resetGraph(sql);
  // A real database refusal, not a stub: this test database rejects one customer id.
  await sql`alter table customers add constraint poison check (id <> 'cus_poison')`;
  t.teardown(() => sql`alter table customers drop constraint poison`);
  const good = Array.from({ length: 20 }, (_, i) => ev('customer.created', customer(`cus_${i}`)));
  await storeEvents(sql, [ev('customer.created', customer('cus_poison')), ...good]);
  await drain(sql, { env: { WORKER_MAX_ATTEMPTS: '3', RETRY_BASE_MS: '20', RETRY_MAX_MS: '100' } });
  const [poison] = await sql`select status, attempts, last_error from events where payload #>> '{data,object,id}' = 'cus_poison'`;
  t.match(poison, { status: 'FAILED', attempts: 3, last_error: /poison/ });
  const [{ n }] = await sql`select count(*)::int as n from events where status = 'PROCESSED'` as any;
  t.equal(n, 20, 'every other event folded');
});

t.test('while ingest is busy the fold loops claim nothing; then they fold everything', async (t) => {
  await resetGraph(sql);
  await storeEvents(sql, Array.from({ length: 120 }, (_, i) => ev('customer.created', customer(`cus_busy_${i}`))));
  let busy = true;
  let waitingWhileBusy = -1;
  const ingestCalmsDown = new Promise<void>((resolve) =>
    setTimeout(async () => {
      waitingWhileBusy = (await sql`select count(*)::int as n from events where status = 'RECEIVED' and attempts = 0`)[0]!.n;
      busy = false;
      resolve();
    }, 400),
  );
  let pausedSeconds = 0;
  await drain(sql, { concurrency: 4, batchSize: 10, busy: () => busy, onPause: (s) => (pausedSeconds += s) });
  await ingestCalmsDown;
  t.equal(waitingWhileBusy, 120, 'nothing was claimed while busy');
  // Four loops paused for the 400 ms ingest was busy (the rest of the time they folded).
  t.ok(pausedSeconds > 4 * 0.3 && pausedSeconds < 4 * 1.5, `pauses reported: ${pausedSeconds.toFixed(2)} s over 4 loops`);
  const [{ n }] = await sql`select count(*)::int as n from events where status = 'PROCESSED'` as any;
  t.equal(n, 120, 'all folded once it was not');
});

t.test('busy is asked per loop: a loop told to go on folds everything while the others pause', async (t) => {
  await resetGraph(sql);
  await storeEvents(sql, Array.from({ length: 60 }, (_, i) => ev('customer.created', customer(`cus_loop_${i}`))));
  const askedBy = new Set<number>();
  await drain(sql, {
    concurrency: 4,
    batchSize: 10,
    busy: (loop) => {
      askedBy.add(loop);
      return loop > 0;
    },
  });
  t.same([...askedBy].sort(), [0, 1, 2, 3], 'every loop asks with its own number');
  const mine = await sql`
    select status, regexp_replace(locked_by, '^.*:', '') as loop from events where object_id like 'cus_loop_%'`;
  t.equal(mine.filter((r) => r.status === 'PROCESSED').length, 60, 'all folded');
  t.same([...new Set(mine.map((r) => r.loop))], ['0'], 'all claimed by loop 0 (workers record host:pid:loop)');
});

t.test('a dead worker loses its claims when the lease runs out, and another folds them', async (t) => {
  await resetGraph(sql);
  await storeEvents(sql, [ev('customer.created', customer('cus_a'))]);
  // A worker that claims and dies: its claim is real, the fold never happens.
  const claimed = await claimEvents(sql, { limit: 10, leaseSeconds: 1, workerId: 'dead:1:0' });
  t.equal(claimed.length, 1);
  t.same(await claimEvents(sql, { limit: 10, leaseSeconds: 1, workerId: 'other:1:0' }), [], 'leased: not claimable');
  await drain(sql);
  const [row] = await sql`select status, attempts, locked_by from events`;
  t.match(row, { status: 'PROCESSED', attempts: 2 });
  t.not(row!.locked_by, 'dead:1:0');
});

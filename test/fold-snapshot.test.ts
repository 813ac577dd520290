// Folding an object read from Stripe's API (not an event) through the same fold: the snapshot
// travels with its plan, is ordered by when it was read, and writes its embedded children too.
import t from 'tap';
import { foldSnapshot } from '../src/worker/fold.ts';
import { createTestDatabase } from './helpers/db.ts';
import { drain, resetGraph, storeEvents, stripeEv } from './helpers/fold.ts';

const db = await createTestDatabase(t);
const sql = db.sql;
const T0 = 1_760_000_000;
const origin = (created: number) => ({ eventId: `api_read_${created}`, created, account: null, apiVersion: '2025-03-31.basil', livemode: false });
const subscription = (status: string) => ({
  id: 'sub_1', object: 'subscription', created: T0, customer: 'cus_1', status,
  items: { object: 'list', data: [{ id: 'si_1', object: 'subscription_item', created: T0, price: 'price_1' }] },
});
const event = (id: string, created: number, status: string) => stripeEv(id, 'customer.subscription.updated', created, subscription(status));

t.test('a snapshot read from the API writes its rows, children included, and parks what it lacks', async (t) => {
  await resetGraph(sql);
  const done = await foldSnapshot(sql, subscription('active'), origin(T0 + 10));
  t.match(done, { result: { objects: [{ table: 'subscriptions', id: 'sub_1', action: 'created', version: 1 }, { table: 'subscription_items', id: 'si_1', action: 'created' }] } });
  t.match(await sql`select id, status, last_event_id, data->>'id' as data_id from subscriptions`, [{ id: 'sub_1', status: 'active', last_event_id: `api_read_${T0 + 10}`, data_id: 'sub_1' }]);
  t.match(await sql`select id, subscription_id, data->>'id' as data_id from subscription_items`, [{ id: 'si_1', subscription_id: 'sub_1', data_id: 'si_1' }], 'the child\'s own snapshot, linked');
  t.same((await sql`select parent_id from pending_links order by parent_id`).map((r) => r.parent_id), ['cus_1', 'price_1']);
});

t.test('an event older than the read loses; a newer one wins', async (t) => {
  await resetGraph(sql);
  await foldSnapshot(sql, subscription('active'), origin(T0 + 10));
  await storeEvents(sql, [event('evt_older', T0 + 5, 'past_due')]);
  await drain(sql);
  t.match(await sql`select status, last_event_id from subscriptions`, [{ status: 'active', last_event_id: `api_read_${T0 + 10}` }], 'older event: stale');
  await storeEvents(sql, [event('evt_newer', T0 + 20, 'canceled')]);
  await drain(sql);
  t.match(await sql`select status, last_event_id, version from subscriptions`, [{ status: 'canceled', last_event_id: 'evt_newer', version: '2' }]);
});

t.test('a snapshot of an object the catalogue does not fold is ignored with the reason', async (t) => {
  t.same(await foldSnapshot(sql, { id: 'txn_1', object: 'balance_transaction' }, origin(T0)), { ignored: 'webhook-inbox does not fold balance_transaction objects' });
});

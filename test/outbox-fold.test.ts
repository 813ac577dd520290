// The fold's half of the outbox (sql/functions/outbox_enqueue.sql, called by the rendered writers
// and resolvers): a message per row change, in the fold's transaction, with the row's version,
// snapshot and links, and a delivery per enabled subscription that wants its type; nothing for a
// stale event, a duplicate, a replay that changes nothing, or when no subscription wants it.
import t from 'tap';
import { createSubscription, deleteSubscription } from '../src/db/subscriptions.ts';
import { generateSecret } from '../src/outbox/sign.ts';
import { createTestDatabase } from './helpers/db.ts';
import { drain, storeEvents, stripeEv, type Ev } from './helpers/fold.ts';

const db = await createTestDatabase(t);
const sql = db.sql;
const fold = async (...events: Ev[]) => {
  await storeEvents(sql, events);
  await drain(sql, { env: { OUTBOX_CONCURRENCY: '0' } }); // no relay: the deliveries stay to be read
};
const messages = async () =>
  sql<{ type: string; object_id: string; version: number; source_event: string | null; links: any; data: any }[]>`
    select type, object_id, version::int as version, source_event, links, data from outbox_messages order by created_at, object_id, version`;

const customer = (id: string, event: string, created: number, fields: Record<string, unknown> = {}, type = 'customer.updated') =>
  stripeEv(event, type, created, { id, object: 'customer', email: `${event}@example.com`, created: 1_700_000_000, livemode: false, ...fields });

t.test('no subscription: the fold writes no message', async (t) => {
  await fold(customer('cus_none', 'evt_none_1', 1_700_000_100, {}, 'customer.created'));
  t.same(await messages(), []);
  t.same(await sql`select version::int as v from customers where id = 'cus_none'`, [{ v: 1 }], 'the row still counts its version');
});

t.test('a message per change, none for stale, duplicate or unchanged, with version, data and links', async (t) => {
  const all = await createSubscription(sql, { url: 'https://example.com/a', secret: generateSecret() });
  const invoicesOnly = await createSubscription(sql, { url: 'https://example.com/b', secret: generateSecret(), types: ['invoice.*'] });

  await fold(customer('cus_1', 'evt_c1', 1_700_000_100, {}, 'customer.created'));
  t.match(await messages(), [{ type: 'customer.created', object_id: 'cus_1', version: 1, source_event: 'evt_c1', links: {}, data: { email: 'evt_c1@example.com' } }]);
  const [same] = await sql`select m.created_at = c.updated_at as same from outbox_messages m join customers c on c.id = m.object_id`;
  t.ok(same!.same, 'written in the transaction that changed the row (same now())');

  await fold(customer('cus_1', 'evt_c0', 1_700_000_050)); // older: stale
  t.equal((await messages()).length, 1, 'a stale event writes nothing');
  await sql`update events set status = 'RECEIVED', next_attempt_at = now(), attempts = 0 where event_id = 'evt_c1'`;
  await fold();
  t.equal((await messages()).length, 1, 'a replay that changes nothing writes nothing');
  await fold(customer('cus_1', 'evt_c1', 1_700_000_100, {}, 'customer.created'));
  t.equal((await messages()).length, 1, 'a duplicate delivery writes nothing');

  await fold(customer('cus_1', 'evt_c2', 1_700_000_200, { email: 'new@example.com' }));
  await fold(customer('cus_1', 'evt_c3', 1_700_000_300, { deleted: true }, 'customer.deleted'));
  t.match((await messages()).map((m) => `${m.type} v${m.version} ${m.source_event}`), ['customer.created v1 evt_c1', 'customer.updated v2 evt_c2', 'customer.deleted v3 evt_c3']);

  // A child before its parent: created with the link unset, then updated when the parent arrives.
  await fold(stripeEv('evt_i1', 'invoice.created', 1_700_000_400, { id: 'in_1', object: 'invoice', customer: 'cus_2', status: 'draft', created: 1_700_000_400, livemode: false }));
  await fold(customer('cus_2', 'evt_c4', 1_700_000_500, {}, 'customer.created'));
  const invoice = (await messages()).filter((m) => m.object_id === 'in_1');
  t.match(invoice, [
    { type: 'invoice.created', version: 1, links: { customer_id: null, subscription_id: null }, source_event: 'evt_i1' },
    { type: 'invoice.updated', version: 2, links: { customer_id: 'cus_2', subscription_id: null }, source_event: 'evt_c4' },
  ], 'the link set by the parent\'s arrival is a change, caused by the parent\'s event');

  const deliveries = await sql`select subscription_id, count(*)::int as n from deliveries group by 1`;
  const n = (await messages()).length;
  t.same(Object.fromEntries(deliveries.map((d) => [d.subscription_id, d.n])), { [all.id]: n, [invoicesOnly.id]: 2 }, 'one delivery per subscription that wants the type');
  t.same(
    await sql`select count(*)::int as n from deliveries d join outbox_messages m on m.id = d.message_id where d.version <> m.version or d.object_id <> m.object_id`,
    [{ n: 0 }],
  );

  await deleteSubscription(sql, all.id);
  await deleteSubscription(sql, invoicesOnly.id);
  await fold(customer('cus_3', 'evt_c5', 1_700_000_600, {}, 'customer.created'));
  t.equal((await messages()).length, n, 'deleted subscriptions get nothing new');
});

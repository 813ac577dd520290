// The views for support staff (sql/003_operations.sql): what each shows, and that the per-object
// and per-customer timelines can use their indexes.
import t from 'tap';
import { purgeEvents } from '../src/db/retention.ts';
import { createTestDatabase } from './helpers/db.ts';
import { seedEvent } from './helpers/events.ts';
import { drain, storeEvents, stripeEv, type Ev } from './helpers/fold.ts';

const db = await createTestDatabase(t);
const sql = db.sql;
const T0 = 1_760_000_000;
/** Objects here are created at T0 in test mode unless they say otherwise. */
const ev = (id: string, type: string, created: number, object: Record<string, unknown>, more: Partial<Ev> = {}) =>
  stripeEv(id, type, created, { created: T0, livemode: false, ...object }, more);

t.test('event_backlog counts by status, source and type, with retries and the oldest unprocessed age', async (t) => {
  const mine = await createTestDatabase(t);
  await seedEvent(mine.sql, { status: 'RECEIVED', type: 'invoice.paid', age: '10 minutes' });
  await seedEvent(mine.sql, { status: 'RECEIVED', type: 'invoice.paid', age: '2 minutes', attempts: 3 });
  await seedEvent(mine.sql, { status: 'PROCESSED', type: 'invoice.paid' });
  await seedEvent(mine.sql, { status: 'FAILED', type: 'invoice.paid', attempts: 8 });
  await seedEvent(mine.sql, { status: 'IGNORED', type: 'order.shipped', source: 'acme' });
  const rows = await mine.sql`
    select status, source, type, events::int, retrying::int, max_attempts,
           extract(epoch from oldest_unprocessed_age)::int / 60 as oldest_minutes
      from event_backlog order by status, source, type`;
  t.same(rows.map((r) => ({ ...r })), [
    { status: 'FAILED', source: 'stripe', type: 'invoice.paid', events: 1, retrying: 0, max_attempts: 8, oldest_minutes: null },
    { status: 'IGNORED', source: 'acme', type: 'order.shipped', events: 1, retrying: 0, max_attempts: 1, oldest_minutes: null },
    { status: 'PROCESSED', source: 'stripe', type: 'invoice.paid', events: 1, retrying: 0, max_attempts: 1, oldest_minutes: null },
    { status: 'RECEIVED', source: 'stripe', type: 'invoice.paid', events: 2, retrying: 1, max_attempts: 3, oldest_minutes: 10 },
  ]);
});

t.test('failed_events: why, and about which object', async (t) => {
  const failed = await seedEvent(sql, { status: 'FAILED', type: 'invoice.paid', lastError: 'bug 3', attempts: 8, object: { id: 'in_f1', object: 'invoice' } });
  const [row] = await sql`select * from failed_events where id = ${failed.id}`;
  t.match(row, { event_id: failed.event_id, type: 'invoice.paid', attempts: 8, last_error: 'bug 3', object_type: 'invoice', object_id: 'in_f1', failed_at: Date });
  t.equal((await sql`select count(*)::int as n from failed_events where id <> ${failed.id} and object_id = 'in_f1'`)[0]!.n, 0);
});

t.test('orphans: links waiting for a parent, their age, and the event that parked them', async (t) => {
  await storeEvents(sql, [ev('evt_orph1', 'invoice.created', T0, { id: 'in_o1', object: 'invoice', status: 'draft', customer: 'cus_missing' })]);
  await drain(sql);
  const [row] = await sql`select * from orphans where child_id = 'in_o1'`;
  t.match(row, {
    child_table: 'invoices',
    link_column: 'customer_id',
    parent_table: 'customers',
    parent_id: 'cus_missing',
    event_id: 'evt_orph1',
    event_type: 'invoice.created',
    event_row_id: String,
  });
  t.ok(row!.age !== null, 'has an age');

  // Retention may purge the event that parked a link; the orphan stays visible.
  await sql`update events set received_at = now() - interval '40 days' where event_id = 'evt_orph1'`;
  await purgeEvents(sql, { olderThanDays: 30, batchSize: 100 });
  const [after] = await sql`select event_id, event_row_id from orphans where child_id = 'in_o1'`;
  t.same({ ...after }, { event_id: 'evt_orph1', event_row_id: null });
  const [invoice] = await sql`select id, customer_id from invoices where id = 'in_o1'`;
  t.same({ ...invoice }, { id: 'in_o1', customer_id: null }, 'retention never touches object tables');
});

t.test('object_events and customer_timeline: every event about an object or a customer, in order', async (t) => {
  await storeEvents(sql, [
    ev('evt_tl3', 'invoice.paid', T0 + 30, { id: 'in_tl', object: 'invoice', status: 'paid', customer: 'cus_tl' }, {}),
    ev('evt_tl1', 'customer.created', T0 + 10, { id: 'cus_tl', object: 'customer', email: 'a@example.com' }),
    ev('evt_tl2', 'invoice.created', T0 + 20, { id: 'in_tl', object: 'invoice', status: 'draft', customer: 'cus_tl' }),
    ev('evt_tl4', 'customer.updated', T0 + 40, { id: 'cus_tl', object: 'customer', email: 'b@example.com' }, {}),
    ev('evt_other', 'customer.created', T0, { id: 'cus_other', object: 'customer' }),
  ]);
  await drain(sql);
  const invoice = await sql`select event_id, type, object_type, status from object_events where object_id = 'in_tl' order by created, id`;
  t.same(invoice.map((r) => [r.event_id, r.type, r.object_type, r.status]), [
    ['evt_tl2', 'invoice.created', 'invoice', 'PROCESSED'],
    ['evt_tl3', 'invoice.paid', 'invoice', 'PROCESSED'],
  ]);
  const customer = await sql`select event_id, object_id from customer_timeline where customer_id = 'cus_tl' order by created, id`;
  t.same(customer.map((r) => [r.event_id, r.object_id]), [
    ['evt_tl1', 'cus_tl'],
    ['evt_tl2', 'in_tl'],
    ['evt_tl3', 'in_tl'],
    ['evt_tl4', 'cus_tl'],
  ]);
});

t.test('the timelines can use their indexes', async (t) => {
  const plan = async (query: string) =>
    sql.begin(async (tx) => {
      // The test tables are tiny; forbid sequential scans to see whether an index is usable at all.
      await tx`set local enable_seqscan = off`;
      return (await tx.unsafe(`explain ${query}`)).map((r) => r['QUERY PLAN']).join('\n');
    });
  t.match(await plan(`select * from object_events where object_id = 'in_tl'`), /events_object_id_idx/);
  const timeline = await plan(`select * from customer_timeline where customer_id = 'cus_tl'`);
  t.match(timeline, /events_object_id_idx/, 'the customer itself');
  t.match(timeline, /events_object_customer_idx/, 'objects that name it');
});

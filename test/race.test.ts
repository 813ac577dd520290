// The park/resolve race: a child parks its link while its parent commits in parallel. With the
// advisory locks neither can miss the other; the sweeper cleans up anything that got through
// anyway. And pg-boss really runs the schedules.
import t from 'tap';
import { silentLogger } from '../src/log.ts';
import { startWorkers } from '../src/worker/index.ts';
import { sweepLinks } from '../src/worker/sweeps.ts';
import { testConfig } from './helpers/app.ts';
import { createTestDatabase } from './helpers/db.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { drain, resetGraph, storeEvents, stripeEv, type Ev } from './helpers/fold.ts';

const db = await createTestDatabase(t);
const sql = db.sql;
const T0 = 1_760_000_000;

t.test('parents and children folded at the same moment by 8 workers leave nothing parked', async (t) => {
  for (let round = 0; round < 3; round++) {
    await resetGraph(sql);
    const events: Ev[] = [];
    for (let i = 0; i < 150; i++) {
      const cus = `cus_${round}_${i}`;
      // Two children: they hold the customer's key shared, side by side, and its writer exclusively.
      const child = (n: number) =>
        stripeEv(`evt_${round}_${i}_b${n}`, 'invoice.created', T0, { id: `in_${round}_${i}_${n}`, object: 'invoice', created: T0, status: 'draft', customer: cus });
      const parent = stripeEv(`evt_${round}_${i}_a`, 'customer.created', T0, { id: cus, object: 'customer', created: T0 });
      // Adjacent in the queue, so workers with batch size 1 claim them together.
      const three = [parent, child(1), child(2)];
      events.push(...three.slice(i % 3), ...three.slice(0, i % 3));
    }
    await storeEvents(sql, events);
    await drain(sql, { concurrency: 8, batchSize: 1 });
    const [{ parked, unlinked }] = await sql`
      select (select count(*)::int from pending_links) as parked,
             (select count(*)::int from invoices where customer_id is null) as unlinked` as any;
    t.equal(parked, 0, `round ${round}: nothing parked`);
    t.equal(unlinked, 0, `round ${round}: every invoice linked`);
  }
});

t.test('the sweeper resolves a link left parked although its parent exists', async (t) => {
  await resetGraph(sql);
  await storeEvents(sql, [
    stripeEv('evt_s1', 'customer.created', T0, { id: 'cus_s', object: 'customer', created: T0 }),
    stripeEv('evt_s2', 'invoice.created', T0, { id: 'in_s', object: 'invoice', created: T0, customer: 'cus_s' }),
  ]);
  await drain(sql);
  // What a bug or a hand-restored row would leave: the link undone and parked again.
  await sql`update invoices set customer_id = null`;
  await sql`insert into pending_links (child_table, child_id, link_column, parent_table, parent_id, event_id)
            values ('invoices', 'in_s', 'customer_id', 'customers', 'cus_s', 'evt_s2')`;
  // And one whose parent really is missing: the sweeper must leave it.
  await sql`insert into pending_links (child_table, child_id, link_column, parent_table, parent_id, event_id)
            values ('invoices', 'in_s', 'subscription_id', 'subscriptions', 'sub_missing', 'evt_s2')`;
  const resolved = await sweepLinks(sql, silentLogger());
  t.same(resolved.map((r) => `${r.child_id}.${r.link_column}`), ['in_s.customer_id']);
  t.same((await sql`select customer_id from invoices`)[0], { customer_id: 'cus_s' });
  t.same((await sql`select parent_id from pending_links`).map((r) => r.parent_id), ['sub_missing']);
});

t.test('startWorkers starts pg-boss once with the sweep schedules, and stops it', async (t) => {
  const config = testConfig({ WORKER_CONCURRENCY: '1', WORKER_POLL_MS: '50' });
  const workers = await startWorkers({ sql, databaseUrl: db.url, config, log: silentLogger() });
  try {
    const schedules = await sql`select name, cron from pgboss.schedule order by name`;
    t.same(schedules.map((s) => `${s.name} ${s.cron}`), ['purge-outbox */10 * * * *', 'recover-leases * * * * *', 'sweep-links * * * * *']);
    // The claim loops run alongside: an event stored now is folded.
    await storeEvents(sql, [stripeEv('evt_boss', 'customer.created', T0, { id: 'cus_boss', object: 'customer', created: T0 })]);
    await waitFor(async () => (await sql`select 1 from customers where id = 'cus_boss'`).length === 1);
  } finally {
    await workers.stop();
  }
  t.pass('stopped');
});

// Parents that never arrive are read from Stripe's API (the fake, over real HTTP, through the real
// stripe package) and folded like an event's snapshot: a stream whose parents' events are withheld
// converges to the graph of the full stream; a parent Stripe does not have marks its links
// unresolvable, with the reason, and blocks nothing; a later webhook wins over a read and an
// earlier one does not; 429s and 500s lose nothing and the rate limit holds.
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { drain, graphSnapshot, resetGraph, storeEvents, stripeEv, type Ev } from './helpers/fold.ts';
import { busiestWindow, fixtureObject, startFakeStripe, type FakeStripe } from './helpers/fake-stripe.ts';
import { apiEnv, differingTables, runWorkers, testApi, testLog, waitingLinks, withoutProvenance } from './helpers/stripe-api.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { buildStream, objectsOf, type StripeEvent } from '../scripts/lib/stream.ts';
import { fetchDueParents, type ParentFetchOutcome } from '../src/worker/parent-fetch.ts';

const db = await createTestDatabase(t);
const sql = db.sql;

async function fake(t: { teardown: (fn: () => unknown) => void }): Promise<FakeStripe> {
  const f = await startFakeStripe();
  t.teardown(() => f.close());
  return f;
}

const now = () => Math.floor(Date.now() / 1000);

/** Withholds every event of the stream about these objects; returns the rest and the withheld objects' final states. */
function withhold(stream: StripeEvent[], keep: (o: Record<string, any>) => boolean) {
  const withheld = stream.filter((e) => !keep(e.data.object));
  const ids = new Set(withheld.map((e) => e.data.object.id as string));
  const objects = objectsOf(stream);
  return { delivered: stream.filter((e) => keep(e.data.object)), parents: [...ids].map((id) => objects.get(id)!.last) };
}

t.test('a stream whose parents never arrive converges, through fetches, to the graph of the full stream', async (t) => {
  const f = await fake(t);
  const stream = buildStream({ seed: 31, customers: 4 });
  await resetGraph(sql);
  await storeEvents(sql, stream);
  await drain(sql, { concurrency: 1, batchSize: 1 });
  const expected = await graphSnapshot(sql);

  // Customers that are deleted later answer a tombstone, not their data: withhold the others, and
  // every product (prices link to them).
  const deleted = new Set(stream.filter((e) => e.type === 'customer.deleted').map((e) => e.data.object.id));
  const { delivered, parents } = withhold(stream, (o) => !(o.object === 'product' || (o.object === 'customer' && !deleted.has(o.id))));
  t.ok(parents.length >= 4, `${parents.length} parents withheld`);
  for (const p of parents) f.put(p as any);

  await resetGraph(sql);
  await storeEvents(sql, delivered);
  // Folded without a key first: the links park, as they do today.
  await drain(sql, { concurrency: 2, batchSize: 5 });
  const parked = await waitingLinks(sql);
  t.ok(parked > 0, `${parked} links parked without the API`);

  const outcomes: string[] = [];
  const workers = await runWorkers(sql, apiEnv(f), { observe: { parentFetch: (o) => outcomes.push(o), thinEvent: () => {}, recovered: () => {} } });
  try {
    await waitFor(async () => (await waitingLinks(sql)) === 0, { what: 'every parked link to resolve' });
  } finally {
    await workers.stop();
  }
  const got = await graphSnapshot(sql);
  t.same(differingTables(withoutProvenance(got), withoutProvenance(expected)), [], 'the same graph as the full stream, but for where rows came from');
  t.same(got.pending_links, [], 'nothing waits, nothing unresolvable');

  // Each parent read once, though many children waited for it.
  const reads = f.requests.filter((r) => r.method === 'GET');
  t.equal(reads.length, parents.length, 'one read per parent');
  t.same(new Set(reads.map((r) => r.path)).size, parents.length, 'no parent read twice');
  t.same(outcomes.filter((o) => o !== 'fetched'), [], 'every read folded');

  // The reads are stored and visible: an events row of source stripe-api per read, named by the row.
  const customer = parents.find((p) => p.object === 'customer')!;
  const [row] = await sql`select c.last_event_id, e.source, e.type, e.status, e.payload -> 'data' -> 'object' ->> 'id' as object_id,
                                 e.payload ->> 'reason' as reason, e.received_at
                            from customers c join events e on e.event_id = c.last_event_id where c.id = ${customer.id}`;
  t.match(row, { source: 'stripe-api', type: 'customer.fetched', status: 'PROCESSED', object_id: customer.id, last_event_id: /^api_\d{13}_/, reason: /^parent of \w+\/\w+/ });
  const timeline = await sql`select source, type from object_events where object_id = ${customer.id}`;
  t.same(timeline.map((r) => `${r.source}:${r.type}`), ['stripe-api:customer.fetched'], 'the timeline shows the read');
  const [api] = await sql`select count(*)::int as n from events where source = 'stripe-api'`;
  t.equal(api!.n, parents.length);
});

// Stripe's example invoice embeds a line whose links are placeholders ('subscription'): these
// invoices have none, so the only parent missing is the customer.
const noLines = (invoice: string) => ({ object: 'list', data: [], has_more: false, url: `/v1/invoices/${invoice}/lines` });

t.test('a parent Stripe does not have: the links are marked unresolvable with the reason, and block nothing', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  const at = now() - 3600;
  await storeEvents(sql, [
    stripeEv('evt_pf_inv1', 'invoice.created', at, { ...fixtureObject('invoice', { id: 'in_pf_1', customer: 'cus_pf_gone', created: at }), parent: null, subscription: null, lines: noLines('in_pf_1') }),
    stripeEv('evt_pf_inv2', 'invoice.created', at, { ...fixtureObject('invoice', { id: 'in_pf_2', customer: 'cus_pf_gone', created: at }), parent: null, subscription: null, lines: noLines('in_pf_2') }),
  ]);
  await drain(sql);
  const api = testApi(f);
  const deps = { sql, api, log: testLog(), afterSeconds: 0 };
  t.same(await fetchDueParents(deps, 10), ['not_found'], 'one read for both links');
  const orphans = await sql`select child_id, unresolvable, unresolvable_reason, fetch_attempts from orphans order by child_id`;
  t.match([...orphans], [
    { child_id: 'in_pf_1', unresolvable: true, unresolvable_reason: /No such customer: 'cus_pf_gone'.*deleted, or never in this account/, fetch_attempts: 1 },
    { child_id: 'in_pf_2', unresolvable: true, unresolvable_reason: /No such customer/, fetch_attempts: 1 },
  ]);
  t.same(await fetchDueParents(deps, 10), [], 'never read again');
  t.equal(f.requests.length, 1);
  const [stuck] = await sql`select count(*)::int as n from events where status <> 'PROCESSED'`;
  t.equal(stuck!.n, 0, 'the events are folded; nothing waits on the link');

  // A parent that arrives after all still resolves the links.
  await storeEvents(sql, [stripeEv('evt_pf_cus', 'customer.created', at, fixtureObject('customer', { id: 'cus_pf_gone', created: at }))]);
  await drain(sql);
  t.same([...(await sql`select customer_id from invoices order by id`)].map((r) => r.customer_id), ['cus_pf_gone', 'cus_pf_gone']);
  t.equal((await sql`select 1 from pending_links`).length, 0);
});

t.test('a deleted parent folds as a tombstone; a connected account is read with its Stripe-Account', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  const at = now() - 3600;
  f.put(fixtureObject('customer', { id: 'cus_pf_deleted', created: at }));
  f.markDeleted('customer', 'cus_pf_deleted');
  f.put(fixtureObject('customer', { id: 'cus_pf_connected', created: at, email: 'connected@example.com' }), { account: 'acct_pf_1' });
  await storeEvents(sql, [
    stripeEv('evt_pf_pm1', 'payment_method.attached', at, fixtureObject('payment_method', { id: 'pm_pf_1', customer: 'cus_pf_deleted', created: at })),
    stripeEv('evt_pf_pm2', 'payment_method.attached', at, fixtureObject('payment_method', { id: 'pm_pf_2', customer: 'cus_pf_connected', created: at }), { account: 'acct_pf_1' }),
  ]);
  await drain(sql);
  const outcomes = await fetchDueParents({ sql, api: testApi(f), log: testLog(), afterSeconds: 0 }, 10);
  t.same(outcomes.sort(), ['deleted', 'fetched']);
  t.same(
    f.requests.map((r) => [r.path, r.account]).sort(),
    [['/v1/customers/cus_pf_connected', 'acct_pf_1'], ['/v1/customers/cus_pf_deleted', undefined]],
  );
  const customers = await sql`select id, deleted, account, email from customers order by id`;
  t.same([...customers], [
    { id: 'cus_pf_connected', deleted: false, account: 'acct_pf_1', email: 'connected@example.com' },
    { id: 'cus_pf_deleted', deleted: true, account: null, email: null },
  ]);
  t.same([...(await sql`select customer_id from payment_methods order by id`)].map((r) => r.customer_id), ['cus_pf_deleted', 'cus_pf_connected']);
});

t.test('a late webhook older than the read does not overwrite it; a newer one does', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  const at = now() - 7200;
  f.put(fixtureObject('customer', { id: 'cus_pf_late', created: at, email: 'read@example.com' }));
  await storeEvents(sql, [stripeEv('evt_pf_pm3', 'payment_method.attached', at, fixtureObject('payment_method', { id: 'pm_pf_3', customer: 'cus_pf_late', created: at }))]);
  await drain(sql);
  t.same(await fetchDueParents({ sql, api: testApi(f), log: testLog(), afterSeconds: 0 }, 10), ['fetched']);
  const [read] = await sql`select email, last_event_id, extract(epoch from last_event_created)::bigint as key from customers where id = 'cus_pf_late'`;
  t.match(read, { email: 'read@example.com', last_event_id: /^api_/ });
  const readAt = Number(read!.key);

  // Delayed by an outage: created an hour before the read.
  await storeEvents(sql, [stripeEv('evt_pf_old', 'customer.updated', readAt - 3600, fixtureObject('customer', { id: 'cus_pf_late', created: at, email: 'old@example.com' }))]);
  await drain(sql);
  const [old] = await sql`select c.email, e.result from customers c, events e where c.id = 'cus_pf_late' and e.event_id = 'evt_pf_old'`;
  t.equal(old!.email, 'read@example.com', 'the older event did not overwrite the read');
  t.match(old!.result, { objects: [{ table: 'customers', id: 'cus_pf_late', action: 'stale' }] });

  // The same second as the read: the event wins (the read cannot say whether it saw that change).
  await storeEvents(sql, [stripeEv('evt_pf_same', 'customer.updated', readAt, fixtureObject('customer', { id: 'cus_pf_late', created: at, email: 'same-second@example.com' }))]);
  await drain(sql);
  t.equal((await sql`select email from customers where id = 'cus_pf_late'`)[0]!.email, 'same-second@example.com');

  await storeEvents(sql, [stripeEv('evt_pf_new', 'customer.updated', readAt + 2, fixtureObject('customer', { id: 'cus_pf_late', created: at, email: 'new@example.com' }))]);
  await drain(sql);
  t.same({ ...(await sql`select email, last_event_id from customers where id = 'cus_pf_late'`)[0] }, { email: 'new@example.com', last_event_id: 'evt_pf_new' });
});

t.test("under 429s and 500s: no link lost, every parent read in the end, the rate limit holds", async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  const at = now() - 3600;
  const n = 30;
  const events: Ev[] = [];
  for (let i = 0; i < n; i++) {
    const cus = `cus_pf_r${String(i).padStart(2, '0')}`;
    f.put(fixtureObject('customer', { id: cus, created: at }));
    events.push(stripeEv(`evt_pf_r${i}`, 'payment_method.attached', at, fixtureObject('payment_method', { id: `pm_pf_r${i}`, customer: cus, created: at })));
  }
  await storeEvents(sql, events);
  await drain(sql);
  t.equal(await waitingLinks(sql), n);
  // The first round's reads fail past the client's own retries (5 parents x 3 tries); after
  // that, every fifth request is rate limited and every fourth answered 500.
  f.fault({ kind: 'server_error', times: 15, path: '/v1/customers/' });
  f.fault({ kind: 'rate_limit', ratio: 0.2, retryAfter: 1, path: '/v1/customers/' });
  f.fault({ kind: 'server_error', ratio: 0.25, path: '/v1/customers/' });

  const rps = 5;
  const outcomes: ParentFetchOutcome[] = [];
  const workers = await runWorkers(sql, apiEnv(f, { STRIPE_API_RPS: String(rps) }), {
    observe: { parentFetch: (o) => outcomes.push(o as ParentFetchOutcome), thinEvent: () => {}, recovered: () => {} },
  });
  try {
    // Every link is either resolved or still parked (waiting out a back-off): never lost.
    await waitFor(
      async () => {
        const [row] = await sql`select (select count(*) from pending_links)::int + (select count(*) from payment_methods where customer_id is not null)::int as n`;
        if (row!.n !== n) throw new Error(`links lost: ${row!.n} of ${n} parked or resolved`);
        return (await waitingLinks(sql)) === 0;
      },
      { timeoutMs: 120_000, what: 'every parent to be read despite the faults' },
    );
  } finally {
    await workers.stop();
  }
  t.ok(outcomes.includes('retry'), `some reads failed and were retried: ${outcomes.filter((o) => o === 'retry').length}`);
  t.equal(outcomes.filter((o) => o === 'fetched').length, n, 'each parent fetched once in the end');
  t.ok(f.requests.some((r) => r.status === 429) && f.requests.some((r) => r.status === 500), 'both faults were met');
  // (That a 429 pauses every request for its Retry-After is shown where it can be timed without
  // requests already on the wire: test/stripe-api-client.test.ts.)
  const busiest = busiestWindow(f.requests, 1000);
  t.ok(busiest <= rps + 1, `at most ${rps} + 1 requests in any second: ${busiest}`);
});

t.test('a parent of a table Stripe cannot retrieve is unresolvable at once', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  await sql`insert into pending_links (child_table, child_id, link_column, parent_table, parent_id, event_id)
            values ('invoices', 'in_pf_x', 'mystery_id', 'mysteries', 'mys_1', 'evt_pf_x')`;
  t.same(await fetchDueParents({ sql, api: testApi(f), log: testLog(), afterSeconds: 0 }, 10), ['unfetchable']);
  t.match((await sql`select unresolvable_reason from orphans`)[0], { unresolvable_reason: /no endpoint that retrieves rows of mysteries/ });
  t.equal(f.requests.length, 0, 'nothing sent');
});

t.test('links younger than PARENT_FETCH_AFTER_S wait for their parent\'s own event', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  const at = now() - 3600;
  f.put(fixtureObject('customer', { id: 'cus_pf_young', created: at }));
  await storeEvents(sql, [stripeEv('evt_pf_young', 'payment_method.attached', at, fixtureObject('payment_method', { id: 'pm_pf_young', customer: 'cus_pf_young', created: at }))]);
  await drain(sql);
  const deps = { sql, api: testApi(f), log: testLog(), afterSeconds: 3600 };
  t.same(await fetchDueParents(deps, 10), [], 'not yet');
  await sql`update pending_links set since = now() - interval '2 hours'`;
  t.same(await fetchDueParents(deps, 10), ['fetched'], 'once it is old enough');
});

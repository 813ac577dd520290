// The admin API through app.request() against a real database: auth, every filter and bad
// parameter of GET /events, one event by each kind of reference, and replay (one, many, dry run).
import t from 'tap';
import { claimEvents, EVENTS_CHANNEL, failAttempt } from '../src/db/events.ts';
import { createTestDatabase } from './helpers/db.ts';
import { testApp } from './helpers/app.ts';
import { seedEvent } from './helpers/events.ts';
import { drain, storeEvents, stripeEv } from './helpers/fold.ts';
import { waitFor } from '../scripts/lib/wait.ts';

const TOKEN = 'admin-token-0123456789abcdef';
const db = await createTestDatabase(t);
const app = testApp(db.sql, { ADMIN_TOKEN: TOKEN });
const auth = { authorization: `Bearer ${TOKEN}` };

const get = async (path: string, headers: Record<string, string> = auth) => {
  const res = await app.request(path, { headers });
  return { status: res.status, body: (await res.json()) as any, res };
};
const post = async (path: string, body?: unknown, headers: Record<string, string> = auth) => {
  const res = await app.request(path, {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
};
const snapshot = () => db.sql`select * from events order by id`;

// A fixed population, each row findable by its type so assertions read plainly.
const rows = {
  oldProcessed: await seedEvent(db.sql, { type: 'invoice.created', status: 'PROCESSED', age: '3 days' }),
  oldFailed: await seedEvent(db.sql, { type: 'invoice.paid', status: 'FAILED', age: '2 days', lastError: 'boom', attempts: 8 }),
  failed: await seedEvent(db.sql, { type: 'invoice.payment_failed', status: 'FAILED', age: '3 hours', lastError: 'no parent', attempts: 8 }),
  ignored: await seedEvent(db.sql, { source: 'acme', type: 'order.shipped', status: 'IGNORED', age: '2 hours' }),
  received: await seedEvent(db.sql, { type: 'customer.created', status: 'RECEIVED', age: '1 hour' }),
  leased: await seedEvent(db.sql, { type: 'customer.updated', status: 'RECEIVED', age: '30 minutes', dueIn: '5 minutes', attempts: 1 }),
  underscore: await seedEvent(db.sql, { type: 'customer_x.created', status: 'PROCESSED', age: '20 minutes' }),
  lookalike: await seedEvent(db.sql, { type: 'customerAx.created', status: 'PROCESSED', age: '10 minutes' }),
};
const ids = (body: { items: { event_id: string }[] }) => body.items.map((i) => i.event_id);

t.test('auth: no token, wrong token, wrong scheme -> 401 on every route; right token -> 200', async (t) => {
  const routes: [string, string][] = [
    ['GET', '/events'],
    ['GET', `/events/${rows.failed.id}`],
    ['POST', `/events/${rows.failed.id}/replay`],
    ['POST', '/events/replay'],
  ];
  const bad = [{}, { authorization: 'Bearer wrong-token-0123456789abcdef' }, { authorization: `Basic ${TOKEN}` }, { authorization: `Bearer ${TOKEN}x` }];
  for (const [method, path] of routes) {
    for (const headers of bad) {
      const res = await app.request(path, { method, headers, body: method === 'POST' ? '{"status":"FAILED"}' : undefined });
      t.equal(res.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`);
      t.match(res.headers.get('www-authenticate'), /^Bearer/);
      t.match(await res.json(), { error: /bearer token/ });
    }
  }
  const before = await snapshot();
  t.same(await snapshot(), before, 'refused replays changed nothing');
  t.equal((await get('/events')).status, 200);
  t.equal((await get('/events', { authorization: `bearer   ${TOKEN}` })).status, 200, 'scheme is case-insensitive');
  const traced = await get('/events', { ...auth, 'x-request-id': 'support-ticket-42' });
  t.equal(traced.res.headers.get('x-request-id'), 'support-ticket-42', 'a caller\'s request id is kept and returned');
});

t.test('ADMIN_TOKEN unset: the admin API is off and says how to turn it on', async (t) => {
  const off = testApp(db.sql, { ADMIN_TOKEN: undefined });
  const res = await off.request('/events', { headers: auth });
  t.equal(res.status, 404);
  t.match(await res.json(), { error: /admin API is off: set ADMIN_TOKEN/ });
  t.equal((await off.request('/healthz')).status, 200, 'the rest still works');
});

t.test('GET /events: newest first, every item has the documented fields', async (t) => {
  const { status, body } = await get('/events');
  t.equal(status, 200);
  t.same(ids(body), Object.values(rows).reverse().map((r) => r.event_id));
  t.same(Object.keys(body.items[0]).sort(), ['attempts', 'event_id', 'id', 'last_error', 'processed_at', 'received_at', 'source', 'status', 'type']);
  const failed = body.items.find((i: any) => i.event_id === rows.failed.event_id);
  t.match(failed, { id: rows.failed.id, source: 'stripe', type: 'invoice.payment_failed', status: 'FAILED', attempts: 8, last_error: 'no parent' });
  t.ok(!Number.isNaN(Date.parse(failed.received_at)), 'received_at is ISO-8601');
  t.equal(body.next_cursor, null, 'one page');
});

t.test('GET /events filters', async (t) => {
  const cases: [string, { event_id: string }[]][] = [
    ['status=FAILED', [rows.failed, rows.oldFailed]],
    ['status=failed,ignored', [rows.ignored, rows.failed, rows.oldFailed]],
    ['status=RECEIVED', [rows.leased, rows.received]],
    ['source=acme', [rows.ignored]],
    ['type=invoice.paid', [rows.oldFailed]],
    ['type=invoice.*', [rows.failed, rows.oldFailed, rows.oldProcessed]],
    ['type=invoice.pa*', [rows.failed, rows.oldFailed]],
    ['type=invoice.pay*', [rows.failed]],
    ['type=customer_x.*', [rows.underscore]],
    ['type=customer%25*', []],
    ['type=*', Object.values(rows).reverse()],
    ['from=24h', [rows.lookalike, rows.underscore, rows.leased, rows.received, rows.ignored, rows.failed]],
    ['from=4h&to=90m', [rows.ignored, rows.failed]],
    [`to=${encodeURIComponent(new Date(Date.now() - 86_400_000).toISOString())}`, [rows.oldFailed, rows.oldProcessed]],
    ['from=1970-01-01&to=2999-01-01&status=PROCESSED&source=stripe&type=invoice.*', [rows.oldProcessed]],
    ['status=FAILED&type=customer.*', []],
  ];
  for (const [query, expected] of cases) {
    const { status, body } = await get(`/events?${query}`);
    t.equal(status, 200, query);
    t.same(ids(body), expected.map((r) => r.event_id), query);
  }
});

t.test('GET /events pages with a cursor: no gaps, no repeats, even inside one microsecond', async (t) => {
  const page = await createTestDatabase(t);
  const pageApp = testApp(page.sql, { ADMIN_TOKEN: TOKEN });
  // 7 rows sharing one received_at and 5 rows 1 microsecond apart (a JavaScript Date cannot tell
  // them apart): keyset pagination must order and resume by (received_at, id).
  const same = '2024-05-01T12:00:00.123456Z';
  const seeded: string[] = [];
  for (let i = 0; i < 7; i++) seeded.push((await seedEvent(page.sql, { receivedAt: same })).event_id);
  for (let i = 0; i < 5; i++) seeded.push((await seedEvent(page.sql, { receivedAt: `2024-05-01T12:00:00.12345${7 + (i % 3)}Z` })).event_id);
  const all = (await (await pageApp.request('/events?limit=1000', { headers: auth })).json()) as any;
  const walked: string[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const res = await pageApp.request(`/events?limit=5${cursor ? `&cursor=${cursor}` : ''}`, { headers: auth });
    const body = (await res.json()) as any;
    t.equal(res.status, 200);
    t.ok(body.items.length <= 5);
    walked.push(...ids(body));
    cursor = body.next_cursor;
    pages++;
  } while (cursor && pages < 10);
  t.equal(pages, 3, '12 rows in pages of 5');
  t.same(walked, ids(all), 'the pages together are the full list, in order');
  t.equal(new Set(walked).size, 12, 'no repeats');
  t.same(new Set(walked), new Set(seeded));
});

t.test('GET /events: a bad parameter answers 400 naming it, as JSON', async (t) => {
  const cases: [string, string][] = [
    ['status=DONE', 'status'],
    ['status=', 'status'],
    ['source=Bad!', 'source'],
    ['type=invoice%20paid', 'type'],
    ['type=*.paid', 'type'],
    ['from=yesterday', 'from'],
    ['from=2024-02-30', 'from'],
    ['to=2024-05-01T12:00:00', 'to'],
    ['from=2024-05-02&to=2024-05-01', 'to'],
    ['limit=0', 'limit'],
    ['limit=1001', 'limit'],
    ['limit=ten', 'limit'],
    ['limit=1.5', 'limit'],
    ['cursor=not-a-cursor', 'cursor'],
    [`cursor=${Buffer.from('["x","1"]').toString('base64url')}`, 'cursor'],
    ['stauts=FAILED', 'stauts'],
    ['status=FAILED&status=IGNORED', 'status'],
  ];
  for (const [query, parameter] of cases) {
    const { status, body, res } = await get(`/events?${query}`);
    t.equal(status, 400, query);
    t.match(res.headers.get('content-type'), /application\/json/);
    t.equal(body.parameter, parameter, `${query} names ${parameter}`);
    t.match(body.error, parameter, `${query}: "${body.error}"`);
  }
});

t.test('GET /events/:id by surrogate id, source:event_id, or evt_ id', async (t) => {
  for (const ref of [rows.failed.id, `stripe:${rows.failed.event_id}`, rows.failed.event_id]) {
    const { status, body } = await get(`/events/${encodeURIComponent(ref)}`);
    t.equal(status, 200, ref);
    t.match(body, {
      id: rows.failed.id,
      event_id: rows.failed.event_id,
      status: 'FAILED',
      last_error: 'no parent',
      payload: { id: rows.failed.event_id, type: 'invoice.payment_failed' },
      result: null,
      parked: [],
    });
  }
  const acme = await get(`/events/acme:${rows.ignored.event_id}`);
  t.equal(acme.body.source, 'acme');
  const processed = await get(`/events/${rows.oldProcessed.id}`);
  t.same(processed.body.result, { objects: [] });

  t.match(await get('/events/999999999'), { status: 404, body: { error: /no event 999999999/ } });
  t.match(await get('/events/stripe:evt_nope'), { status: 404 });
  t.match(await get('/events/not%20an%20id'), { status: 400, body: { parameter: 'id' } });
  t.match(await get('/events/0'), { status: 400 });
});

t.test('POST /events/:id/replay re-queues one event, keeps last_error, wakes the workers', async (t) => {
  const woken: string[] = [];
  const listener = await db.sql.listen(EVENTS_CHANNEL, (id) => woken.push(id));
  t.teardown(() => listener.unlisten());
  const target = await seedEvent(db.sql, { type: 'invoice.paid', status: 'FAILED', lastError: 'bug #12', attempts: 8 });
  const { status, body } = await post(`/events/${target.id}/replay`);
  t.equal(status, 200);
  t.same(body, { id: target.id, replayed: 1 });
  const [row] = await db.sql`select * from events where id = ${target.id}`;
  t.match(row, { status: 'RECEIVED', attempts: 0, locked_until: null, locked_by: null, last_error: 'bug #12' });
  t.ok((row!.next_attempt_at as Date).getTime() <= Date.now() + 1000, 'due now');
  await waitFor(() => woken.includes(target.id), { what: 'a NOTIFY with the id', timeoutMs: 5000 });

  const again = await post(`/events/stripe:${target.event_id}/replay`);
  t.equal(again.status, 200, 'replaying a queued event again is harmless');

  const before = await snapshot();
  const leased = await post(`/events/${rows.leased.id}/replay`);
  t.equal(leased.status, 409, 'a worker holds it: refused');
  t.match(leased.body, { error: /being folded/ });
  t.same(await snapshot(), before, 'and nothing changed');
  t.equal((await post('/events/999999999/replay')).status, 404);
  t.equal((await post('/events/nope/replay')).status, 400);
});

t.test('POST /events/replay: dry run counts and samples and changes nothing', async (t) => {
  const before = await snapshot();
  const { status, body } = await post('/events/replay', { status: 'FAILED', dry_run: true });
  t.equal(status, 200);
  t.match(body, { dry_run: true, matched: 2 });
  t.same(body.sample.map((i: any) => i.event_id), [rows.oldFailed.event_id, rows.failed.event_id], 'oldest first, the order replay takes');
  t.same(await snapshot(), before, 'nothing changed');
  const limited = await post('/events/replay', { type: 'invoice.*', limit: 1, dry_run: true });
  t.match(limited.body, { matched: 1, sample: [{ event_id: rows.oldProcessed.event_id }] });
  const all = await post('/events/replay', { from: '1970-01-01', dry_run: true });
  const [free] = await db.sql`select count(*)::int as n from events where id <> ${rows.leased.id}`;
  t.equal(all.body.matched, free!.n, 'everything except the leased event');
});

t.test('POST /events/replay: bad bodies answer 400 naming the field', async (t) => {
  const cases: [unknown, string][] = [
    ['{not json', 'body'],
    ['[1]', 'body'],
    [{}, 'body'],
    [{ dry_run: true }, 'body'],
    [{ type: '*' }, 'body'],
    [{ status: 'NOPE' }, 'status'],
    [{ status: ['FAILED', 'NOPE'] }, 'status'],
    [{ status: 'FAILED', limit: 0 }, 'limit'],
    [{ status: 'FAILED', limit: '5' }, 'limit'],
    [{ status: 'FAILED', dry_run: 'yes' }, 'dry_run'],
    [{ status: 'FAILED', from: 'last night' }, 'from'],
    [{ status: 'FAILED', everything: true }, 'everything'],
  ];
  const before = await snapshot();
  for (const [body, parameter] of cases) {
    const res = await post('/events/replay', body);
    t.equal(res.status, 400, JSON.stringify(body));
    t.equal(res.body.parameter, parameter, `${JSON.stringify(body)}: ${res.body.error}`);
  }
  t.same(await snapshot(), before, 'nothing changed');
});

t.test('POST /events/replay re-queues the matching events in batches and says how many', async (t) => {
  const mine = await createTestDatabase(t);
  const mineApp = testApp(mine.sql, { ADMIN_TOKEN: TOKEN });
  const failed = [];
  for (let i = 0; i < 25; i++) failed.push(await seedEvent(mine.sql, { type: 'invoice.paid', status: 'FAILED', lastError: `e${i}`, age: '1 hour' }));
  const processed = await seedEvent(mine.sql, { type: 'invoice.paid', status: 'PROCESSED', age: '1 hour' });
  const leased = await seedEvent(mine.sql, { type: 'invoice.paid', status: 'RECEIVED', dueIn: '1 minute', age: '1 hour' });
  const other = await seedEvent(mine.sql, { type: 'invoice.paid', status: 'FAILED', age: '3 days' });

  const res = await mineApp.request('/events/replay', {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ status: ['FAILED'], from: '1d', limit: 20 }),
  });
  t.equal(res.status, 200);
  t.same(await res.json(), { dry_run: false, matched: 20, replayed: 20 });
  const counts = await mine.sql`select status, count(*)::int as n from events group by status order by status`;
  t.same(counts.map((r) => [r.status, r.n]), [['FAILED', 6], ['PROCESSED', 1], ['RECEIVED', 21]]);
  const first20 = failed.slice(0, 20).map((r) => r.id);
  const requeued = await mine.sql`select id::text from events where status = 'RECEIVED' and id <> ${leased.id} order by events.id`;
  t.same(requeued.map((r) => r.id), first20, 'the oldest 20');

  const rest = await mineApp.request('/events/replay', {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'invoice.*', from: '1d' }),
  });
  t.same(await rest.json(), { dry_run: false, matched: 26, replayed: 26 }, 'the rest, the processed one, and the due ones again; not the leased one');
  const [l] = await mine.sql`select attempts, locked_by from events where id = ${leased.id}`;
  t.match(l, { attempts: 0, locked_by: 'test:1:0' }, 'the leased event was left to its worker');
  const [o] = await mine.sql`select status from events where id = ${other.id}`;
  t.equal(o!.status, 'FAILED', 'outside the window');
  const [p] = await mine.sql`select status from events where id = ${processed.id}`;
  t.equal(p!.status, 'RECEIVED', 'a PROCESSED event can be replayed too');
});

const T0 = 1_760_000_000;
let seq = 0;
const ev = (type: string, object: Record<string, unknown>) =>
  stripeEv(`evt_admin${String(++seq).padStart(6, '0')}`, type, T0 + seq, { created: T0, livemode: false, ...object });

t.test('GET /events/:id lists the links the event parked, until their parent arrives', async (t) => {
  const mine = await createTestDatabase(t);
  const mineApp = testApp(mine.sql, { ADMIN_TOKEN: TOKEN });
  const show = async (ref: string) => (await (await mineApp.request(`/events/${ref}`, { headers: auth })).json()) as any;
  const invoice = ev('invoice.created', { id: 'in_orphan', object: 'invoice', status: 'draft', customer: 'cus_late', currency: 'eur', amount_due: 100 });
  await storeEvents(mine.sql, [invoice]);
  await drain(mine.sql);
  const parked = await show(invoice.id);
  t.equal(parked.status, 'PROCESSED');
  t.match(parked.result, { objects: [{ table: 'invoices', id: 'in_orphan', action: 'created' }], parked: [{ parent_id: 'cus_late' }] });
  t.match(parked.parked, [
    { child_table: 'invoices', child_id: 'in_orphan', link_column: 'customer_id', parent_table: 'customers', parent_id: 'cus_late', since: String },
  ]);
  t.equal(parked.parked.length, 1);

  await storeEvents(mine.sql, [ev('customer.created', { id: 'cus_late', object: 'customer', email: 'late@example.com' })]);
  await drain(mine.sql);
  t.same((await show(invoice.id)).parked, [], 'resolved: nothing waits any more');
  t.equal((await show(invoice.id)).result.parked.length, 1, 'the result still records what it parked');
});

t.test('replay leaves a leased event to its worker, and brings a retry waiting out its backoff forward', async (t) => {
  const mine = await createTestDatabase(t);
  const mineApp = testApp(mine.sql, { ADMIN_TOKEN: TOKEN });
  const replay = (id: string) => mineApp.request(`/events/${id}/replay`, { method: 'POST', headers: auth });
  const e = await seedEvent(mine.sql, { status: 'RECEIVED' });
  const [claimed] = await claimEvents(mine.sql, { limit: 1, leaseSeconds: 60, workerId: 'test-worker' });
  t.equal(claimed!.id, e.id, 'a worker holds it');
  t.equal((await replay(e.id)).status, 409, 'leased: refused');
  const bulk = await mineApp.request('/events/replay', { method: 'POST', headers: auth, body: JSON.stringify({ status: 'RECEIVED' }) });
  t.same(await bulk.json(), { dry_run: false, matched: 0, replayed: 0 }, 'and skipped by a bulk replay');

  await failAttempt(mine.sql, e.id, 'deadline exceeded', 3_600_000);
  const [waiting] = await mine.sql`select next_attempt_at > now() + interval '10 minutes' as later, locked_until from events where id = ${e.id}`;
  t.match(waiting, { later: true, locked_until: null }, 'the worker failed it and it waits an hour');
  t.equal((await replay(e.id)).status, 200);
  const [now] = await mine.sql`select status, attempts, next_attempt_at <= now() as due, last_error from events where id = ${e.id}`;
  t.same(now, { status: 'RECEIVED', attempts: 0, due: true, last_error: 'deadline exceeded' }, 'due now, attempts reset');
});

t.test('replay of FAILED events after a fix ends PROCESSED', async (t) => {
  const mine = await createTestDatabase(t);
  const mineApp = testApp(mine.sql, { ADMIN_TOKEN: TOKEN });
  // The "bug": every write to customers fails, so each event exhausts its (one) attempt.
  await mine.sql.unsafe(`
    create function broken() returns trigger language plpgsql as $$ begin raise exception 'bug 42: customers are read-only'; end $$;
    create trigger broken before insert or update on customers for each row execute function broken();`);
  const events = [1, 2, 3].map((i) => ev('customer.created', { id: `cus_fix${i}`, object: 'customer', email: `c${i}@example.com` }));
  await storeEvents(mine.sql, events);
  await drain(mine.sql, { env: { WORKER_MAX_ATTEMPTS: '1' } });
  const failed = await mine.sql`select status, last_error from events order by id`;
  t.same(failed.map((r) => r.status), ['FAILED', 'FAILED', 'FAILED']);
  t.match(failed[0]!.last_error, /bug 42/);

  await mine.sql.unsafe('drop trigger broken on customers'); // the fix is deployed
  const dry = await mineApp.request('/events/replay', { method: 'POST', headers: auth, body: JSON.stringify({ status: 'FAILED', dry_run: true }) });
  t.match(await dry.json(), { dry_run: true, matched: 3 });
  const res = await mineApp.request('/events/replay', { method: 'POST', headers: auth, body: JSON.stringify({ status: 'FAILED' }) });
  t.same(await res.json(), { dry_run: false, matched: 3, replayed: 3 });
  await drain(mine.sql);
  const after = await mine.sql`select status, attempts, last_error from events order by id`;
  t.same(after.map((r) => r.status), ['PROCESSED', 'PROCESSED', 'PROCESSED'], 'folded this time');
  t.same(after.map((r) => r.attempts), [1, 1, 1], 'counted from zero again');
  const customers = await mine.sql`select id from customers order by id`;
  t.same(customers.map((r) => r.id), ['cus_fix1', 'cus_fix2', 'cus_fix3']);
});

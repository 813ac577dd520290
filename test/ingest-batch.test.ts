// Group commit (src/db/ingest-batch.ts): concurrent deliveries share statements, each learns
// whether it was stored or a duplicate, a row Postgres refuses fails only itself, a lone delivery
// goes at once in a statement of its own, and a delivery still queued at its deadline is dropped.
// The database says which rows one statement stored: they share one transaction id (xmin).
import t from 'tap';
import { createIngestBatcher, IngestExpiredError, isUnstorable, type IngestBatcher } from '../src/db/ingest-batch.ts';
import type { NewEvent } from '../src/db/events.ts';
import { createHttp } from '../src/http/app.ts';
import { silentLogger } from '../src/log.ts';
import { createTestDatabase } from './helpers/db.ts';
import { eventId, post, signStripe, stripeEvent, testConfig } from './helpers/app.ts';

const db = await createTestDatabase(t);

const newEvent = (id = eventId(), body?: string): NewEvent => ({
  source: 'stripe',
  eventId: id,
  type: 'customer.updated',
  apiVersion: null,
  account: null,
  livemode: false,
  created: 1_760_000_000,
  body: body ?? JSON.stringify({ id, type: 'customer.updated' }),
});
const xmins = async (ids: string[]) =>
  (await db.sql<{ xmin: string }[]>`select distinct xmin::text from events where event_id in ${db.sql(ids)}`).map((r) => r.xmin);
const stored = async (ids: string[]) =>
  (await db.sql<{ event_id: string }[]>`select event_id from events where event_id in ${db.sql(ids)}`).map((r) => r.event_id).sort();
const batcher = (options: Partial<{ maxRows: number; maxBytes: number; maxInFlight: number }> = {}): IngestBatcher =>
  createIngestBatcher(db.sql, { maxRows: 32, maxBytes: 1 << 20, maxInFlight: 1, ...options });

t.test('a lone event goes at once, in a statement of its own', async (t) => {
  const b = batcher();
  t.equal(await b.insert(newEvent()), 'stored');
  t.same(b.stats(), { statements: 1, rows: 1, largest: 1 });
});

t.test('events queued together share one statement; a duplicate within it is told so', async (t) => {
  const b = batcher();
  const [a, c] = [eventId(), eventId()];
  const outcomes = await Promise.all([b.insert(newEvent(a)), b.insert(newEvent(c)), b.insert(newEvent(a)), b.insert(newEvent())]);
  t.same(outcomes, ['stored', 'stored', 'duplicate', 'stored'], 'the first of two equal ids is stored, the second is a duplicate');
  t.same(b.stats(), { statements: 1, rows: 4, largest: 4 });
  t.equal((await xmins([a, c])).length, 1, 'the rows share one transaction');
  t.same(await b.insert(newEvent(c)), 'duplicate', 'and a later delivery of a stored id is a duplicate');
});

t.test('while a statement is in flight, arrivals wait and go together in the next', async (t) => {
  const b = batcher();
  const first = eventId();
  const rest = Array.from({ length: 16 }, () => eventId());
  const pending = [b.insert(newEvent(first))];
  // The first statement is sent at the end of this turn; the next 16 arrive while it is in flight.
  await new Promise((r) => setImmediate(r));
  pending.push(...rest.map((id) => b.insert(newEvent(id))));
  t.same(new Set(await Promise.all(pending)), new Set(['stored']));
  t.same(b.stats(), { statements: 2, rows: 17, largest: 16 });
  t.equal((await xmins(rest)).length, 1, 'the 16 share one transaction');
  t.not((await xmins([first]))[0], (await xmins(rest))[0], 'the first had its own');
});

t.test('batches are bounded by rows and by bytes, in statements of 1, 2, 4, 8... rows', async (t) => {
  const byRows = batcher({ maxRows: 4 });
  await Promise.all(Array.from({ length: 10 }, () => byRows.insert(newEvent())));
  t.same(byRows.stats(), { statements: 3, rows: 10, largest: 4 });
  const seven = batcher();
  const ids = Array.from({ length: 7 }, () => eventId());
  await Promise.all(ids.map((id) => seven.insert(newEvent(id))));
  t.same(seven.stats(), { statements: 3, rows: 7, largest: 4 }, '7 queued together: 4 + 2 + 1');
  t.equal((await xmins(ids)).length, 3);

  const big = (id: string) => newEvent(id, JSON.stringify({ id, pad: 'x'.repeat(3000) }));
  const byBytes = batcher({ maxBytes: 7000 });
  await Promise.all(Array.from({ length: 5 }, () => byBytes.insert(big(eventId()))));
  t.same(byBytes.stats(), { statements: 3, rows: 5, largest: 2 }, 'two 3 KB rows fit in 7,000 bytes, three do not');
  const huge = batcher({ maxBytes: 1024 });
  t.equal(await huge.insert(big(eventId())), 'stored', 'a row larger than the bound still goes, alone');
});

t.test('a row Postgres refuses fails only itself; the rest of its batch is stored', async (t) => {
  const b = batcher();
  const good = [eventId(), eventId(), eventId()];
  const poison = eventId();
  // Valid JSON, but jsonb cannot hold \u0000: Postgres refuses the row (22P05).
  const results = await Promise.allSettled([
    b.insert(newEvent(good[0])),
    b.insert(newEvent(poison, `{"id":"${poison}","bad":"\\u0000"}`)),
    b.insert(newEvent(good[1])),
    b.insert(newEvent(good[2])),
  ]);
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
  const refused = results[1] as PromiseRejectedResult;
  t.ok(isUnstorable(refused.reason), `refused as the sender's fault (${(refused.reason as Error).message})`);
  t.same(await stored([...good, poison]), [...good].sort(), 'the good rows are stored, the poison one is not');
  t.same(b.stats(), { statements: 5, rows: 8, largest: 4 }, 'the batch failed, then each row went alone');
});

t.test('an event still queued at its deadline is dropped, not stored', async (t) => {
  const b = batcher();
  const blocker = eventId();
  const late = eventId();
  // Hold the table so the first statement waits; the second event queues behind it.
  const locked = db.sql.begin(async (tx) => {
    await tx`lock table events in exclusive mode`;
    const inFlight = b.insert(newEvent(blocker));
    await new Promise((r) => setImmediate(r));
    const queued = b.insert(newEvent(late), performance.now() + 50);
    await new Promise((r) => setTimeout(r, 100));
    return { inFlight, queued };
  });
  const { inFlight, queued } = await locked;
  t.equal(await inFlight, 'stored', 'the statement in flight commits once the lock is gone');
  await t.rejects(queued, IngestExpiredError, 'the queued one was past its deadline when its turn came');
  t.same(await stored([blocker, late]), [blocker]);
});

t.test('through HTTP: concurrent deliveries share statements; duplicates and a poison body among them', async (t) => {
  const http = createHttp({ sql: db.sql, config: testConfig({ INGEST_STATEMENTS_IN_FLIGHT: '1' }), log: silentLogger() });
  const send = (event: Record<string, unknown> | string) => {
    const body = typeof event === 'string' ? event : JSON.stringify(event);
    return http.app.request('/webhooks/stripe', post(body, signStripe(body)));
  };
  const events = Array.from({ length: 30 }, () => stripeEvent({}, 2000));
  const ids = events.map((e) => e.id as string);
  const poisonId = eventId();
  const poison = `{"id":"${poisonId}","object":"event","type":"customer.updated","data":{"object":{"x":"\\u0000"}}}`;
  const answers = await Promise.all([...events.map(send), send(events[0]!), send(events[1]!), send(poison)]);
  t.same(answers.slice(0, 32).map((r) => r.status), Array(32).fill(200), 'every good delivery and both duplicates answered 200');
  t.equal(answers[32]!.status, 400, 'the poison body answered 400');
  t.same(await stored(ids), [...ids].sort(), 'each event stored once');
  t.same(await stored([poisonId]), []);
  const { statements, rows } = http.batcher!.stats();
  t.ok(statements < rows, `${rows} rows in ${statements} statements`);
  t.ok((await xmins(ids)).length < ids.length, `the 30 events were stored by ${(await xmins(ids)).length} transactions`);
});

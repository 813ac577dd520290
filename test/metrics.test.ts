// GET /metrics: the Prometheus text an operator scrapes, fed by real deliveries and fold outcomes,
// with the database-wide gauges read from the events table at scrape time.
import t from 'tap';
import { createMetrics } from '../src/metrics.ts';
import { createApp } from '../src/http/app.ts';
import { silentLogger } from '../src/log.ts';
import { createTestDatabase } from './helpers/db.ts';
import { post, signStripe, stripeEvent, testConfig } from './helpers/app.ts';
import { seedEvent } from './helpers/events.ts';

const db = await createTestDatabase(t);
const config = testConfig();
const metrics = createMetrics({ sql: db.sql, log: silentLogger(), sources: ['stripe', 'acme'], fullCountEveryMs: 0 });
const app = createApp({ sql: db.sql, config, log: silentLogger(), metrics });

const scrape = async () => {
  const res = await app.request('/metrics');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain/);
  return res.text();
};
const value = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

t.test('deliveries by source and outcome, and the ack latency histogram', async (t) => {
  const event = stripeEvent();
  const body = JSON.stringify(event);
  t.equal((await app.request('/webhooks/stripe', post(body, signStripe(body)))).status, 200);
  t.equal((await app.request('/webhooks/stripe', post(body, signStripe(body)))).status, 200);
  t.equal((await app.request('/webhooks/stripe', post(body, { 'stripe-signature': 't=1,v1=00' }))).status, 400);
  t.equal((await app.request('/webhooks/made-up-123', post(body, {}))).status, 404);
  const text = await scrape();
  t.equal(value(text, 'webhook_inbox_deliveries_total{source="stripe",outcome="stored"}'), 1);
  t.equal(value(text, 'webhook_inbox_deliveries_total{source="stripe",outcome="duplicate"}'), 1);
  t.equal(value(text, 'webhook_inbox_deliveries_total{source="stripe",outcome="SignatureError"}'), 1);
  t.equal(
    value(text, 'webhook_inbox_deliveries_total{source="unknown",outcome="UnknownSourceError"}'),
    1,
    'an unknown source from the URL does not become a label value',
  );
  t.notMatch(text, /made-up-123/);
  t.equal(value(text, 'webhook_inbox_ack_seconds_count{source="stripe",outcome="stored"}'), 1);
  // Buckets by source and outcome (which bucket depends on the machine's speed: not asserted).
  t.match(text, /^webhook_inbox_ack_seconds_bucket\{le="\+Inf",source="stripe",outcome="stored"\} 1$/m);
});

t.test('events by status, oldest unprocessed age, database up', async (t) => {
  await db.sql`delete from events`;
  await seedEvent(db.sql, { status: 'RECEIVED', age: '10 minutes' });
  await seedEvent(db.sql, { status: 'RECEIVED', age: '1 minute' });
  await seedEvent(db.sql, { status: 'FAILED' });
  await seedEvent(db.sql, { status: 'IGNORED' });
  const text = await scrape();
  t.equal(value(text, 'webhook_inbox_events{status="RECEIVED"}'), 2);
  t.equal(value(text, 'webhook_inbox_events{status="FAILED"}'), 1);
  t.equal(value(text, 'webhook_inbox_events{status="IGNORED"}'), 1);
  t.equal(value(text, 'webhook_inbox_events{status="PROCESSED"}'), 0, 'a status with no events reads 0');
  const age = value(text, 'webhook_inbox_oldest_unprocessed_seconds')!;
  t.ok(age >= 600 && age < 700, `oldest unprocessed is about 10 minutes (${age})`);
  t.equal(value(text, 'webhook_inbox_database_up'), 1);
  await db.sql`delete from events where status = 'RECEIVED'`;
  t.equal(value(await scrape(), 'webhook_inbox_oldest_unprocessed_seconds'), 0, 'no backlog: 0');
});

t.test('fold outcomes: duration histogram, retries, failures', async (t) => {
  metrics.observeFold('processed', 3);
  metrics.observeFold('processed', 40);
  metrics.observeFold('ignored', 1);
  metrics.observeFold('retry', 7);
  metrics.observeFold('failed', 9);
  metrics.observeFold('failed', 9);
  const text = await scrape();
  t.equal(value(text, 'webhook_inbox_fold_seconds_count{outcome="processed"}'), 2);
  t.ok(Math.abs(value(text, 'webhook_inbox_fold_seconds_sum{outcome="processed"}')! - 0.043) < 1e-9, 'sum in seconds');
  t.equal(value(text, 'webhook_inbox_fold_seconds_bucket{le="0.005",outcome="processed"}'), 1);
  t.equal(value(text, 'webhook_inbox_fold_retries_total'), 1);
  t.equal(value(text, 'webhook_inbox_fold_failures_total'), 2);
  t.match(text, /^webhook_inbox_process_cpu_seconds_total /m, 'process metrics too');
});

t.test('fold pauses add up in seconds', async (t) => {
  t.equal(value(await scrape(), 'webhook_inbox_fold_paused_seconds_total'), 0);
  metrics.observePause(0.02);
  metrics.observePause(0.5);
  t.ok(Math.abs(value(await scrape(), 'webhook_inbox_fold_paused_seconds_total')! - 0.52) < 1e-9);
});

t.test('pending links and the age of the oldest', async (t) => {
  t.equal(value(await scrape(), 'webhook_inbox_pending_links'), 0);
  await db.sql`
    insert into pending_links (child_table, child_id, link_column, parent_table, parent_id, since, event_id)
    values ('invoices', 'in_m1', 'customer_id', 'customers', 'cus_m1', now() - interval '5 minutes', 'evt_m1'),
           ('charges', 'ch_m1', 'customer_id', 'customers', 'cus_m1', now(), 'evt_m2')`;
  const text = await scrape();
  t.equal(value(text, 'webhook_inbox_pending_links'), 2);
  const age = value(text, 'webhook_inbox_oldest_pending_link_seconds')!;
  t.ok(age >= 300 && age < 400, `about 5 minutes (${age})`);
});

t.test('PROCESSED and IGNORED are recounted only every fullCountEveryMs; RECEIVED and FAILED always', async (t) => {
  const slow = createMetrics({ sql: db.sql, log: silentLogger(), sources: ['stripe'], fullCountEveryMs: 3_600_000 });
  await db.sql`delete from events`;
  const first = await slow.render();
  t.equal(value(first, 'webhook_inbox_events{status="IGNORED"}'), 0);
  await seedEvent(db.sql, { status: 'IGNORED' });
  await seedEvent(db.sql, { status: 'FAILED' });
  const second = await slow.render();
  t.equal(value(second, 'webhook_inbox_events{status="FAILED"}'), 1, 'FAILED is exact');
  t.equal(value(second, 'webhook_inbox_events{status="IGNORED"}'), 0, 'IGNORED waits for the next full count');
});

// Thin events (object "v2.core.event", signed like other Stripe webhooks with a secret of their
// own) through POST /webhooks/stripe-thin and the real workers: stored like any event, then their
// related object is read from the fake Stripe with the event's context and folded. Without an API
// key they wait, RECEIVED, never FAILED, and fold once a key is configured.
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { post, signStripe, testApp } from './helpers/app.ts';
import { fixtureObject, startFakeStripe, type FakeStripe } from './helpers/fake-stripe.ts';
import { resetGraph } from './helpers/fold.ts';
import { apiEnv, runWorkers } from './helpers/stripe-api.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { KEY_WAIT_S } from '../src/worker/thin-events.ts';

const THIN_SECRET = 'whsec_thin_test_0123456789abcdef';
const db = await createTestDatabase(t);
const sql = db.sql;
const app = testApp(sql, { STRIPE_THIN_WEBHOOK_SECRET: THIN_SECRET });

async function fake(t: { teardown: (fn: () => unknown) => void }): Promise<FakeStripe> {
  const f = await startFakeStripe();
  t.teardown(() => f.close());
  return f;
}

function thinEvent(related: { id: string; type: string } | null, fields: Record<string, unknown> = {}) {
  const id = `evt_test_thin${randomBytes(8).toString('hex')}`;
  return {
    id,
    object: 'v2.core.event',
    type: related ? `v1.${related.type}.updated` : 'v1.billing.meter.error_report_triggered',
    livemode: false,
    created: new Date(Date.now() - 60_000).toISOString(),
    ...(related ? { related_object: { ...related, url: `/v1/${related.type}s/${related.id}` } } : {}),
    ...fields,
  };
}

/** Delivers a thin event the way Stripe does: signed with the destination's secret. */
async function deliver(event: object, secret = THIN_SECRET) {
  const body = JSON.stringify(event);
  return app.request('/webhooks/stripe-thin', post(body, signStripe(body, { secret })));
}

const row = async (eventId: string) => (await sql`select * from events where source = 'stripe-thin' and event_id = ${eventId}`)[0];

t.test('a signed thin event is stored like any event; a forged or misplaced one is refused', async (t) => {
  const event = thinEvent({ id: 'cus_thin_store', type: 'customer' }, { context: 'acct_thin_1' });
  const res = await deliver(event);
  t.equal(res.status, 200);
  t.match(await row(event.id), {
    source: 'stripe-thin',
    type: 'v1.customer.updated',
    account: 'acct_thin_1',
    livemode: false,
    status: 'RECEIVED',
    payload: { object: 'v2.core.event', related_object: { id: 'cus_thin_store' } },
  });
  t.equal((await deliver(event)).status, 200, 'a duplicate is answered 200');
  t.equal((await sql`select count(*)::int as n from events where event_id = ${event.id}`)[0]!.n, 1, 'and stored once');

  const forged = await deliver(thinEvent({ id: 'cus_x', type: 'customer' }), 'whsec_someone_else');
  t.equal(forged.status, 400);
  t.match(await forged.json(), { error: 'signature does not match' });

  const v1 = { id: 'evt_v1_here', object: 'event', type: 'customer.updated', created: 1, data: { object: {} } };
  const misplaced = await deliver(v1);
  t.equal(misplaced.status, 400);
  t.match(await misplaced.json(), { error: /send it to \/webhooks\/stripe/ });
  t.equal(await row('evt_v1_here'), undefined, 'nothing stored');

  const unset = await testApp(sql).request('/webhooks/stripe-thin', post(JSON.stringify(event), signStripe(JSON.stringify(event), { secret: THIN_SECRET })));
  t.equal(unset.status, 503, 'without STRIPE_THIN_WEBHOOK_SECRET Stripe is asked to retry');
  t.match(await unset.json(), { error: /STRIPE_THIN_WEBHOOK_SECRET is not set/ });
  // The package's own parser agrees with what was stored.
  const body = JSON.stringify(event);
  const parsed = new Stripe('sk_test_x').parseEventNotification(body, signStripe(body, { secret: THIN_SECRET })['stripe-signature']!, THIN_SECRET);
  t.equal(parsed.id, event.id);
});

t.test('the workers read the related object with the event\'s context and fold it; the event is PROCESSED with it', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  f.put(fixtureObject('customer', { id: 'cus_thin_1', created: 1_751_328_000, email: 'thin@example.com' }), { account: 'acct_thin_2' });
  f.put(fixtureObject('customer', { id: 'cus_thin_2', created: 1_751_328_000, email: 'platform@example.com' }));
  const connected = thinEvent({ id: 'cus_thin_1', type: 'customer' }, { context: 'acct_thin_2' });
  const platform = thinEvent({ id: 'cus_thin_2', type: 'customer' });
  t.equal((await deliver(connected)).status, 200);
  t.equal((await deliver(platform)).status, 200);

  const workers = await runWorkers(sql, apiEnv(f));
  try {
    await waitFor(async () => (await sql`select 1 from events where source = 'stripe-thin' and status = 'RECEIVED'`).length === 0, { what: 'the thin events to fold' });
  } finally {
    await workers.stop();
  }
  const customers = await sql`select id, email, account, last_event_id from customers order by id`;
  t.match([...customers], [
    { id: 'cus_thin_1', email: 'thin@example.com', account: 'acct_thin_2', last_event_id: /^api_/ },
    { id: 'cus_thin_2', email: 'platform@example.com', account: null, last_event_id: /^api_/ },
  ]);
  const thin = await row(connected.id);
  t.match(thin, { status: 'PROCESSED', result: { objects: [{ table: 'customers', id: 'cus_thin_1', action: 'created' }], snapshot: customers[0]!.last_event_id } });
  t.match(await sql`select type, source, payload ->> 'reason' as reason from events where event_id = ${customers[0]!.last_event_id}`, [
    { type: 'customer.fetched', source: 'stripe-api', reason: `thin event ${connected.id}` },
  ]);
  // The context went as Stripe-Context, which the fake reads as the account.
  t.same(f.requests.map((r) => [r.path, r.account]).sort(), [['/v1/customers/cus_thin_1', 'acct_thin_2'], ['/v1/customers/cus_thin_2', undefined]]);
});

t.test('without a key a thin event waits, RECEIVED and not FAILED, and folds once a key is configured', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  f.put(fixtureObject('customer', { id: 'cus_thin_wait', created: 1_751_328_000 }));
  const event = thinEvent({ id: 'cus_thin_wait', type: 'customer' });
  t.equal((await deliver(event)).status, 200);

  const noKey = await runWorkers(sql, { WORKER_POLL_MS: '20' });
  try {
    await waitFor(async () => (await row(event.id))?.last_error !== null, { what: 'the thin event to be looked at' });
  } finally {
    await noKey.stop();
  }
  const waiting = await row(event.id);
  t.match(waiting, { status: 'RECEIVED', attempts: 0, last_error: /^waiting for STRIPE_API_KEY/, locked_until: null });
  const [due] = await sql`select next_attempt_at > now() as later, next_attempt_at <= now() + make_interval(secs => ${KEY_WAIT_S}) as within
                           from events where event_id = ${event.id}`;
  t.same({ ...due }, { later: true, within: true }, `not due now; looked at again within ${KEY_WAIT_S} s`);
  t.equal(f.requests.length, 0, 'nothing read');

  const withKey = await runWorkers(sql, apiEnv(f));
  try {
    await waitFor(async () => (await row(event.id))?.status === 'PROCESSED', { what: 'the waiting thin event to fold once a key is set' });
  } finally {
    await withKey.stop();
  }
  t.equal((await sql`select count(*)::int as n from customers where id = 'cus_thin_wait'`)[0]!.n, 1);
});

t.test('an object Stripe does not have, or one the inbox does not fold: IGNORED with the reason', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  const missing = thinEvent({ id: 'cus_thin_missing', type: 'customer' });
  const meter = thinEvent({ id: 'mtr_1', type: 'billing.meter' });
  const none = thinEvent(null);
  for (const e of [missing, meter, none]) t.equal((await deliver(e)).status, 200);
  const workers = await runWorkers(sql, apiEnv(f));
  try {
    await waitFor(async () => (await sql`select 1 from events where source = 'stripe-thin' and status = 'RECEIVED'`).length === 0, { what: 'the thin events to settle' });
  } finally {
    await workers.stop();
  }
  t.match((await row(missing.id))!.result, { ignored: /no customer cus_thin_missing: No such customer/ });
  t.match((await row(meter.id))!.result, { ignored: 'webhook-inbox does not fold billing.meter objects' });
  t.match((await row(none.id))!.result, { ignored: /names no related_object/ });
  t.same(f.requests.map((r) => r.path), ['/v1/customers/cus_thin_missing'], 'only the folded type was read');
});

t.test('Stripe failing or rate limiting: the thin event is retried until it folds, never FAILED', async (t) => {
  const f = await fake(t);
  await resetGraph(sql);
  f.put(fixtureObject('customer', { id: 'cus_thin_retry', created: 1_751_328_000 }));
  // More failures in a row than the client retries (3 tries), then a rate limit.
  f.fault({ kind: 'server_error', times: 4 });
  f.fault({ kind: 'rate_limit', times: 3, retryAfter: 1 });
  const event = thinEvent({ id: 'cus_thin_retry', type: 'customer' });
  t.equal((await deliver(event)).status, 200);
  const workers = await runWorkers(sql, apiEnv(f, { WORKER_MAX_ATTEMPTS: '1' }));
  try {
    await waitFor(async () => (await row(event.id))?.status === 'PROCESSED', { timeoutMs: 60_000, what: 'the thin event to fold after the faults' });
  } finally {
    await workers.stop();
  }
  const done = await row(event.id);
  t.ok((done!.attempts as number) > 1, `${done!.attempts} attempts, past WORKER_MAX_ATTEMPTS=1, and not FAILED`);
  t.same(f.requests.map((r) => r.status), [500, 500, 500, 500, 429, 429, 429, 200]);
});

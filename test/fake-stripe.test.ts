// The fake Stripe API behaves like Stripe where our client depends on it, shown through the real
// `stripe` package over real HTTP; and what the package itself does with 429, 500, Retry-After and
// Stripe-Should-Retry, which the client in src/stripe-api builds on.
import t from 'tap';
import Stripe from 'stripe';
import { COLLECTIONS, TEST_KEY, busiestWindow, rejection, fixtureObject, startFakeStripe, type FakeStripe, type StripeObject } from './helpers/fake-stripe.ts';
import { waitFor } from '../scripts/lib/wait.ts';

async function fake(t: { teardown: (fn: () => unknown) => void }, options?: Parameters<typeof startFakeStripe>[0]): Promise<FakeStripe> {
  const f = await startFakeStripe(options);
  t.teardown(() => f.close());
  return f;
}

const customer = (id: string, created: number, fields: Partial<StripeObject> = {}) => fixtureObject('customer', { id, created, ...fields });
const event = (id: string, type: string, created: number, fields: Partial<StripeObject> = {}) =>
  fixtureObject('event', { id, type, created, data: { object: customer(`cus_of_${id}`, created) }, ...fields });

t.test('every collection path serves its objects by id, as built from the fixtures', async (t) => {
  const f = await fake(t);
  const stripe = f.client();
  for (const [path, type] of Object.entries(COLLECTIONS)) {
    const object = fixtureObject(type, { id: `${type.replace(/\W/g, '_')}_fake1`, created: 1_751_328_000 });
    f.put(object);
    t.same(await stripe.rawRequest('GET', `/v1/${path}/${object.id}`), object, path);
  }
  // The package's own typed methods reach the same routes.
  t.equal((await stripe.checkout.sessions.retrieve('checkout_session_fake1')).object, 'checkout.session');
  t.equal((await stripe.radar.earlyFraudWarnings.retrieve('radar_early_fraud_warning_fake1')).object, 'radar.early_fraud_warning');
  t.equal((await stripe.events.retrieve('event_fake1')).object, 'event');
});

t.test('a missing object is a 404 resource_missing, as Stripe words it', async (t) => {
  const f = await fake(t);
  const error = await rejection(f.client().customers.retrieve('cus_x'));
  t.ok(error instanceof Stripe.errors.StripeInvalidRequestError);
  t.match(error, { statusCode: 404, code: 'resource_missing', param: 'id', message: "No such customer: 'cus_x'" });
  t.match(error.raw, { type: 'invalid_request_error' });
  // A price and a plan may share an id; each is found only under its own path.
  f.put(fixtureObject('plan', { id: 'price_shared' }));
  t.equal((await f.client().plans.retrieve('price_shared')).object, 'plan');
  t.match(await rejection(f.client().prices.retrieve('price_shared')), { statusCode: 404, message: "No such price: 'price_shared'" });
  t.match(await rejection(f.client().rawRequest('GET', '/v1/nothing_here')), { statusCode: 404, message: /^Unrecognized request URL/ });
});

t.test('a deleted object answers { id, object, deleted: true } and leaves the lists', async (t) => {
  const f = await fake(t);
  f.put(customer('cus_gone', 10));
  f.put(customer('cus_kept', 20));
  f.markDeleted('customer', 'cus_gone');
  t.same(await f.client().customers.retrieve('cus_gone'), { id: 'cus_gone', object: 'customer', deleted: true });
  t.same((await f.client().customers.list()).data.map((c) => c.id), ['cus_kept']);
  f.remove('customer', 'cus_kept');
  t.match(await rejection(f.client().customers.retrieve('cus_kept')), { statusCode: 404 });
});

t.test('an API key is required and recorded; live keys are refused', async (t) => {
  const f = await fake(t, { keys: [TEST_KEY, 'rk_test_restricted'] });
  await f.client({ key: 'rk_test_restricted' }).customers.list();
  t.equal(f.requests.at(-1)?.key, 'rk_test_restricted');
  for (const key of ['sk_test_unknown', 'sk_live_0123456789']) {
    const error = await rejection(f.client({ key }).customers.list());
    t.ok(error instanceof Stripe.errors.StripeAuthenticationError, key);
    t.match(error, { statusCode: 401, message: /^Invalid API Key provided/ });
    t.notMatch(error.message, key, 'the key is masked in the message');
  }
  const bare = await fetch(`${f.url}/v1/customers`);
  t.equal(bare.status, 401);
  t.match(await bare.json(), { error: { type: 'invalid_request_error', message: /You did not provide an API key/ } });
});

t.test('lists page newest first with limit, starting_after, ending_before and has_more', async (t) => {
  const f = await fake(t);
  // 25 customers over 13 seconds, two per second: same-second ones stay in the order put.
  const ids = Array.from({ length: 25 }, (_, n) => `cus_${String(n).padStart(2, '0')}`);
  ids.forEach((id, n) => f.put(customer(id, 1000 + Math.floor(n / 2))));
  const newestFirst = [...ids].reverse();
  const stripe = f.client();

  const first = await stripe.customers.list({ limit: 10 });
  t.same(first.data.map((c) => c.id), newestFirst.slice(0, 10));
  t.equal(first.has_more, true);
  t.equal(first.url, '/v1/customers');
  const second = await stripe.customers.list({ limit: 10, starting_after: first.data.at(-1)!.id });
  t.same(second.data.map((c) => c.id), newestFirst.slice(10, 20));
  const last = await stripe.customers.list({ limit: 10, starting_after: second.data.at(-1)!.id });
  t.same(last.data.map((c) => c.id), newestFirst.slice(20));
  t.equal(last.has_more, false);
  // ending_before walks back toward the newest: the page just before the cursor, still newest first.
  const back = await stripe.customers.list({ limit: 10, ending_before: last.data[0]!.id });
  t.same(back.data.map((c) => c.id), newestFirst.slice(10, 20));
  t.equal(back.has_more, true);

  t.same((await stripe.customers.list({ limit: 100 }).autoPagingToArray({ limit: 1000 })).map((c) => c.id), newestFirst);
  t.same((await stripe.customers.list({ limit: 100, created: { gte: 1003, lte: 1004 } })).data.map((c) => c.id), ['cus_09', 'cus_08', 'cus_07', 'cus_06']);
  t.same((await stripe.customers.list({ created: 1012 })).data.map((c) => c.id), ['cus_24']);

  t.match(await rejection(stripe.customers.list({ limit: 101 })), { statusCode: 400, param: 'limit' });
  t.match(await rejection(stripe.customers.list({ starting_after: 'cus_nope' })), { statusCode: 404, param: 'starting_after' });
  t.match(await rejection(stripe.customers.list({ starting_after: 'cus_01', ending_before: 'cus_02' })), { statusCode: 400 });
  t.match(await rejection(stripe.rawRequest('GET', '/v1/customers?colour=red')), { statusCode: 400, message: 'Received unknown parameter: colour' });
});

t.test('lists filter on their parent, like ?customer= on invoices', async (t) => {
  const f = await fake(t);
  f.put(fixtureObject('invoice', { id: 'in_a', customer: 'cus_a', created: 1 }));
  f.put(fixtureObject('invoice', { id: 'in_b', customer: 'cus_b', created: 2 }));
  t.same((await f.client().invoices.list({ customer: 'cus_a' })).data.map((i) => i.id), ['in_a']);
});

t.test('GET /v1/events filters by created, type and types, and pages like any list', async (t) => {
  const f = await fake(t);
  f.addEvent(event('evt_1', 'customer.created', 100));
  f.addEvent(event('evt_2', 'invoice.paid', 101));
  f.addEvent(event('evt_3', 'customer.updated', 102));
  f.addEvent(event('evt_4', 'charge.succeeded', 103));
  f.addEvent(event('evt_5', 'customer.updated', 104));
  f.addEvent(event('evt_acct', 'customer.updated', 104, { account: 'acct_connected' }));
  const stripe = f.client();
  const ids = (list: { data: { id: string }[] }) => list.data.map((e) => e.id);

  t.same(ids(await stripe.events.list()), ['evt_5', 'evt_4', 'evt_3', 'evt_2', 'evt_1']);
  t.same(ids(await stripe.events.list({ created: { gt: 101, lte: 103 } })), ['evt_4', 'evt_3']);
  t.same(ids(await stripe.events.list({ created: { gte: 101, lt: 103 } })), ['evt_3', 'evt_2']);
  t.same(ids(await stripe.events.list({ type: 'customer.*' })), ['evt_5', 'evt_3', 'evt_1']);
  t.same(ids(await stripe.events.list({ type: 'invoice.paid' })), ['evt_2']);
  t.same(ids(await stripe.events.list({ types: ['invoice.paid', 'charge.succeeded'] })), ['evt_4', 'evt_2']);
  t.match(f.requests.at(-1)!.query.get('types[0]'), 'invoice.paid', 'the package sends types as an indexed array');

  const page = await stripe.events.list({ limit: 2, type: 'customer.*' });
  t.same([ids(page), page.has_more], [['evt_5', 'evt_3'], true]);
  const next = await stripe.events.list({ limit: 2, type: 'customer.*', starting_after: 'evt_3' });
  t.same([ids(next), next.has_more], [['evt_1'], false]);

  t.same(ids(await stripe.events.list({}, { stripeAccount: 'acct_connected' })), ['evt_acct']);
  t.match(await rejection(stripe.events.list({ type: 'a', types: ['b'] })), { statusCode: 400 });
  const tooMany = Array.from({ length: 21 }, (_, n) => `t.${n}`);
  t.match(await rejection(stripe.events.list({ types: tooMany })), { statusCode: 400, param: 'types' });
});

t.test('Stripe-Account scopes objects and events; requests record the account', async (t) => {
  const f = await fake(t);
  f.put(customer('cus_platform', 1));
  f.put(customer('cus_connected', 1), { account: 'acct_1' });
  const stripe = f.client();
  t.equal((await stripe.customers.retrieve('cus_connected', {}, { stripeAccount: 'acct_1' })).id, 'cus_connected');
  t.match(await rejection(stripe.customers.retrieve('cus_connected')), { statusCode: 404 });
  t.match(await rejection(stripe.customers.retrieve('cus_platform', {}, { stripeAccount: 'acct_1' })), { statusCode: 404 });
  t.same((await stripe.customers.list({}, { stripeAccount: 'acct_2' })).data, []);
  t.same(
    f.requests.map((r) => [r.method, r.path, r.account, r.status]),
    [
      ['GET', '/v1/customers/cus_connected', 'acct_1', 200],
      ['GET', '/v1/customers/cus_connected', undefined, 404],
      ['GET', '/v1/customers/cus_platform', 'acct_1', 404],
      ['GET', '/v1/customers', 'acct_2', 200],
    ],
  );
});

t.test('a thin event: parseEventNotification, then fetchRelatedObject and fetchEvent reach the fake', async (t) => {
  const f = await fake(t);
  const secret = 'whsec_thin_0123456789';
  f.put(customer('cus_thin', 1, { email: 'thin@example.com' }), { account: 'acct_thin' });
  const thin = {
    id: 'evt_test_65R9Ijk8Zc1QXc0lWTrh9JSXGuUQSMMgIRTDfRqAqGI',
    object: 'v2.core.event',
    type: 'v1.customer.updated',
    created: '2025-07-01T00:00:00.000Z',
    livemode: false,
    context: 'acct_thin',
    related_object: { id: 'cus_thin', type: 'customer', url: '/v1/customers/cus_thin' },
  };
  f.addThinEvent({ ...thin, data: {}, reason: null });
  const payload = JSON.stringify(thin);
  const signature = Stripe.webhooks.generateTestHeaderString({ payload, secret });
  const notification = f.client().parseEventNotification(payload, signature, secret);
  if (notification.type !== 'v1.customer.updated') throw new Error(`parsed as ${notification.type}`);

  t.match(await notification.fetchRelatedObject(), { id: 'cus_thin', email: 'thin@example.com' });
  t.match(await notification.fetchEvent(), { id: thin.id, object: 'v2.core.event', context: 'acct_thin' });
  // The package sends the notification's context as Stripe-Context, not Stripe-Account.
  t.same(f.requests.map((r) => [r.path, r.account, r.status]), [
    ['/v1/customers/cus_thin', 'acct_thin', 200],
    [`/v2/core/events/${thin.id}`, 'acct_thin', 200],
  ]);
});

t.test('faults: for the next N requests, a ratio, or until cleared; by path', async (t) => {
  const f = await fake(t);
  f.put(customer('cus_1', 1));
  const stripe = f.client();
  const get = () => stripe.customers.retrieve('cus_1').then(() => 200, (e) => e.statusCode as number);

  const twice = f.fault({ kind: 'server_error', times: 2, path: '/v1/customers' });
  t.same([await get(), await get(), await get()], [500, 500, 200]);
  t.equal(twice.hits, 2);

  const other = f.fault({ kind: 'server_error', path: /^\/v1\/prices\// });
  t.equal(await get(), 200, 'a fault on another path leaves this one alone');
  other.clear();

  const half = f.fault({ kind: 'server_error', ratio: 0.5 });
  t.same([await get(), await get(), await get(), await get()], [200, 500, 200, 500]);
  half.clear();

  f.fault({ kind: 'not_found' });
  const missing = await rejection(stripe.customers.retrieve('cus_1'));
  t.match(missing, { statusCode: 404, code: 'resource_missing', message: "No such customer: 'cus_1'" });
  t.equal(await get(), 404, 'until cleared');
  f.clearFaults();
  t.equal(await get(), 200);
  t.same(f.requests.map((r) => r.fault ?? null).slice(-3), ['not_found', 'not_found', null]);
});

t.test('the stripe package with maxNetworkRetries: what it retries, and how long it waits', async (t) => {
  const f = await fake(t);
  f.put(customer('cus_1', 1));
  const stripe = f.client({ maxNetworkRetries: 2 });
  const path = '/v1/customers/cus_1';
  const attempts = () => f.requests.filter((r) => r.path === path);

  await t.test('a 500 is retried, and the retry succeeds', async (t) => {
    f.requests.length = 0;
    f.fault({ kind: 'server_error', times: 1 });
    t.equal((await stripe.customers.retrieve('cus_1')).id, 'cus_1');
    t.same(attempts().map((r) => r.status), [500, 200]);
  });

  await t.test('Stripe-Should-Retry: false stops the retries of a 500', async (t) => {
    f.requests.length = 0;
    f.fault({ kind: 'server_error', times: 1, shouldRetry: false });
    t.match(await rejection(stripe.customers.retrieve('cus_1')), { statusCode: 500 });
    t.same(attempts().map((r) => r.status), [500]);
  });

  await t.test('a 429 without Stripe-Should-Retry is not retried at all', async (t) => {
    f.requests.length = 0;
    f.fault({ kind: 'rate_limit', times: 1, retryAfter: 1 });
    const error = await rejection(stripe.customers.retrieve('cus_1'));
    t.ok(error instanceof Stripe.errors.StripeRateLimitError);
    t.match(error, { statusCode: 429, code: 'rate_limit', headers: { 'retry-after': '1' } });
    t.same(attempts().map((r) => r.status), [429]);
  });

  await t.test('a 429 with Stripe-Should-Retry: true is retried, without waiting for Retry-After', async (t) => {
    f.requests.length = 0;
    f.fault({ kind: 'rate_limit', times: 1, retryAfter: 30, shouldRetry: true });
    t.equal((await stripe.customers.retrieve('cus_1')).id, 'cus_1');
    const [limited, retried] = attempts();
    t.same([limited?.status, retried?.status], [429, 200]);
    // Retry-After said 30 s; the package slept its own backoff (0.5 s for a first retry). So the
    // client in src/stripe-api pauses its rate limiter itself on a 429.
    t.ok(retried!.at - limited!.at < 30_000, `retried after ${retried!.at - limited!.at} ms, not 30 s`);
  });

  await t.test('a slow answer past the timeout is a connection error, retried like one', async (t) => {
    f.requests.length = 0;
    const slow = f.fault({ kind: 'slow', delayMs: 5_000 });
    const error = await rejection(f.client({ timeout: 100, maxNetworkRetries: 1 }).customers.retrieve('cus_1'));
    slow.clear();
    t.ok(error instanceof Stripe.errors.StripeConnectionError);
    t.match(error.message, /timeout/);
    await waitFor(async () => attempts().length === 2 && attempts().every((r) => r.aborted), { timeoutMs: 10_000, what: 'both attempts to be abandoned' });
  });
});

t.test('busiestWindow counts the most requests inside any one window', async (t) => {
  t.equal(busiestWindow([]), 0);
  t.equal(busiestWindow([0, 999, 1000, 1500, 1999].map((at) => ({ at }))), 3);
  t.equal(busiestWindow([0, 10, 20].map((at) => ({ at })), 15), 2);
});

// The Stripe API client against the fake Stripe over real HTTP: retrieve and its 404, Connect
// accounts, pagination, the events list, the rate limit as the fake counts it, Retry-After, 5xx
// and timeouts. Assertions are on what the fake recorded, not on how long our code took.
import pino from 'pino';
import t from 'tap';
import { createStripeApi, encodeQuery, StripeApiError, type Page, type StripeApiOptions } from '../src/stripe-api/client.ts';
import { createRateLimiter } from '../src/stripe-api/rate-limit.ts';
import { TEST_KEY, busiestWindow, fixtureObject, rejection, startFakeStripe, type FakeStripe } from './helpers/fake-stripe.ts';
import { waitFor } from '../scripts/lib/wait.ts';

type Setup = { fake: FakeStripe; api: ReturnType<typeof createStripeApi>; logs: Record<string, unknown>[] };

async function setup(t: { teardown: (fn: () => unknown) => void }, options: Partial<StripeApiOptions> = {}): Promise<Setup> {
  const fake = await startFakeStripe();
  t.teardown(() => fake.close());
  const logs: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const api = createStripeApi({ apiKey: TEST_KEY, apiBase: fake.url, log, ...options });
  return { fake, api, logs };
}

const customer = (id: string, created = 1_751_328_000) => fixtureObject('customer', { id, created });

async function pages(iterable: AsyncIterable<Page>): Promise<Page[]> {
  const all: Page[] = [];
  for await (const page of iterable) all.push(page);
  return all;
}

t.test('retrieve: found, deleted, and not found', async (t) => {
  const { fake, api } = await setup(t);
  fake.put(customer('cus_1'));
  fake.put(fixtureObject('checkout.session', { id: 'cs_test_1' }));
  fake.put(fixtureObject('radar.early_fraud_warning', { id: 'issfr_1' }));
  fake.put(customer('cus_deleted'));
  fake.markDeleted('customer', 'cus_deleted');

  const found = await api.retrieve('customers', 'cus_1');
  t.match(found, { found: true, deleted: false, object: { id: 'cus_1', object: 'customer' } });
  t.ok(found.fetchedAt instanceof Date);
  t.match(await api.retrieve('checkout/sessions', 'cs_test_1'), { found: true, object: { object: 'checkout.session' } });
  t.match(await api.retrieve('radar/early_fraud_warnings', 'issfr_1'), { found: true, object: { object: 'radar.early_fraud_warning' } });
  t.match(await api.retrieve('customers', 'cus_deleted'), { found: true, deleted: true, object: { id: 'cus_deleted', object: 'customer', deleted: true } });

  const missing = await api.retrieve('customers', 'cus_nope');
  t.match(missing, { found: false, reason: "No such customer: 'cus_nope'" });
  t.equal(fake.requests.filter((r) => r.path === '/v1/customers/cus_nope').length, 1, 'a 404 is an answer, not retried');
  t.ok(fake.requests.every((r) => r.key === TEST_KEY), 'every request carries the key');
});

t.test('retrieve sends Stripe-Account for a connected account', async (t) => {
  const { fake, api } = await setup(t);
  fake.put(customer('cus_connected'), { account: 'acct_1' });
  t.match(await api.retrieve('customers', 'cus_connected', { account: 'acct_1' }), { found: true });
  t.match(await api.retrieve('customers', 'cus_connected'), { found: false });
  t.same(fake.requests.map((r) => r.account), ['acct_1', undefined]);
});

t.test('ids are escaped and paths checked before anything is sent', async (t) => {
  const { fake, api } = await setup(t);
  t.match(await api.retrieve('customers', 'cus_1/../../v1/charges'), { found: false });
  t.equal(fake.requests[0]?.path, '/v1/customers/cus_1%2F..%2F..%2Fv1%2Fcharges');
  for (const path of ['/v1/customers', 'customers/', 'customers?limit=1', '', 'Customers']) {
    await t.rejects(api.retrieve(path, 'cus_1'), TypeError, JSON.stringify(path));
  }
  await t.rejects(api.retrieve('customers', ''), TypeError);
  t.equal(fake.requests.length, 1);
  t.throws(() => createStripeApi({ apiKey: TEST_KEY, apiBase: 'https://api.stripe.com/v1', log: pino({ level: 'silent' }) }), /no path/);
  t.throws(() => createStripeApi({ apiKey: TEST_KEY, apiBase: 'api.stripe.com', log: pino({ level: 'silent' }) }), /not a URL/);
  t.throws(() => createStripeApi({ apiKey: 'pk_test_publishable', log: pino({ level: 'silent' }) }), /secret \(sk_...\) or restricted/);
});

t.test('list pages through a whole collection with starting_after', async (t) => {
  const { fake, api } = await setup(t);
  const ids = Array.from({ length: 250 }, (_, n) => `cus_${String(n).padStart(3, '0')}`);
  ids.forEach((id, n) => fake.put(customer(id, 1_700_000_000 + n)));
  fake.put(customer('cus_elsewhere'), { account: 'acct_2' });

  const all = await pages(api.list('customers'));
  t.same(all.map((p) => [p.data.length, p.hasMore]), [[100, true], [100, true], [50, false]]);
  t.same(all.flatMap((p) => p.data.map((c) => c.id)), [...ids].reverse(), 'newest first, each once');
  t.same(
    fake.requests.map((r) => [r.query.get('limit'), r.query.get('starting_after')]),
    [['100', null], ['100', 'cus_150'], ['100', 'cus_050']],
  );

  const window = await pages(api.list('customers', { created: { gte: 1_700_000_010, lt: 1_700_000_013 } }));
  t.same(window.flatMap((p) => p.data.map((c) => c.id)), ['cus_012', 'cus_011', 'cus_010']);
  const connected = await pages(api.list('customers', {}, { account: 'acct_2' }));
  t.same(connected.flatMap((p) => p.data.map((c) => c.id)), ['cus_elsewhere']);
  t.equal(fake.requests.at(-1)?.account, 'acct_2');
});

t.test('listEvents: a window of whole seconds, types, per account', async (t) => {
  const { fake, api } = await setup(t);
  const at = 1_751_328_000;
  const event = (id: string, type: string, created: number, account?: string) =>
    fixtureObject('event', { id, type, created, ...(account ? { account } : {}) });
  fake.addEvent(event('evt_before', 'customer.created', at - 1));
  fake.addEvent(event('evt_first', 'customer.created', at));
  fake.addEvent(event('evt_paid', 'invoice.paid', at + 5));
  fake.addEvent(event('evt_last', 'customer.updated', at + 10));
  fake.addEvent(event('evt_after', 'customer.updated', at + 11));
  fake.addEvent(event('evt_connected', 'customer.updated', at + 5, 'acct_3'));
  const ids = async (iterable: AsyncIterable<Page>) => (await pages(iterable)).flatMap((p) => p.data.map((e) => e.id));

  // Whole seconds: 0.3 s after `at` still takes evt_first (created `at`, maybe at .1 or .9), and
  // 10.2 s after takes evt_last (created at + 10) but not evt_after (at + 11, surely later).
  const since = new Date(at * 1000 + 300);
  const until = new Date((at + 10) * 1000 + 200);
  t.same(await ids(api.listEvents({ since, until })), ['evt_last', 'evt_paid', 'evt_first']);
  t.same(await ids(api.listEvents({ since: new Date(at * 1000), until: new Date((at + 10) * 1000) })), ['evt_last', 'evt_paid', 'evt_first'], 'exact seconds');
  t.same(await ids(api.listEvents({ since: new Date(at * 1000), types: ['invoice.paid', 'customer.updated'] })), ['evt_after', 'evt_last', 'evt_paid']);
  t.same(await ids(api.listEvents({ since: new Date(0), account: 'acct_3' })), ['evt_connected']);
  const query = fake.requests[2]!.query;
  t.same([query.get('created[gte]'), query.get('types[0]'), query.get('types[1]')], [String(at), 'invoice.paid', 'customer.updated']);
  t.throws(() => api.listEvents({ since: new Date(0), types: Array.from({ length: 21 }, (_, n) => `t.${n}`) }), /at most 20/);
});

t.test('encodeQuery writes Stripe form encoding', async (t) => {
  t.equal(decodeURIComponent(encodeQuery({ limit: 100, created: { gte: 5 }, types: ['a.b', 'c'], skip: undefined })), 'limit=100&created[gte]=5&types[0]=a.b&types[1]=c');
});

t.test('the rate limit holds for every call of the client together', async (t) => {
  const rps = 5;
  const { fake, api } = await setup(t, { rps });
  for (let n = 0; n < 12; n++) fake.put(customer(`cus_${n}`, n));
  // Retrieves and list pages at once, far more than 5 at a time.
  const calls: Promise<unknown>[] = Array.from({ length: 12 }, (_, n) => api.retrieve('customers', `cus_${n}`));
  calls.push(pages(api.list('customers', { limit: 3 })));
  const results = await Promise.all(calls);
  t.ok(results.slice(0, 12).every((r) => (r as { found: boolean }).found));
  t.equal(fake.requests.length, 12 + 4, '12 retrieves and 4 list pages');
  const busiest = busiestWindow(fake.requests, 1000);
  t.ok(busiest <= rps + api.limiter.burst, `at most ${rps} + burst ${api.limiter.burst} in any second: ${busiest}`);
});

t.test('a 429 pauses the whole client for Retry-After, then the call succeeds', async (t) => {
  const { fake, api, logs } = await setup(t, { rps: 20 });
  fake.put(customer('cus_1'));
  fake.put(customer('cus_2'));
  fake.fault({ kind: 'rate_limit', times: 1, retryAfter: 2, path: '/v1/customers/cus_1' });

  const first = api.retrieve('customers', 'cus_1');
  await waitFor(async () => fake.requests.some((r) => r.status === 429), { timeoutMs: 10_000, what: 'the 429' });
  // Another call made during the pause waits for it too.
  const second = api.retrieve('customers', 'cus_2');
  t.match(await Promise.all([first, second]), [{ found: true }, { found: true }]);

  const limited = fake.requests.find((r) => r.status === 429)!;
  const after = fake.requests.filter((r) => r.at > limited.at);
  t.same(after.map((r) => [r.path, r.status]).sort(), [['/v1/customers/cus_1', 200], ['/v1/customers/cus_2', 200]]);
  // Timer and clock granularity aside, nothing reached the fake before the 2 s were up.
  t.ok(after.every((r) => r.at - limited.at >= 1990), `next requests ${after.map((r) => r.at - limited.at)} ms after the 429`);
  t.match(logs.find((l) => l.msg === 'stripe api rate limited: pausing every request'), { retryAfterSeconds: 2, path: '/v1/customers/cus_1' });
  t.notOk(JSON.stringify(logs).includes(TEST_KEY), 'the key never reaches the log');
});

t.test('a 429 the package retries itself (Stripe-Should-Retry: true) still waits for Retry-After', async (t) => {
  const { fake, api } = await setup(t);
  fake.put(customer('cus_1'));
  fake.fault({ kind: 'rate_limit', times: 1, retryAfter: 2, shouldRetry: true });
  t.match(await api.retrieve('customers', 'cus_1'), { found: true });
  const [limited, retried] = fake.requests;
  t.same([limited?.status, retried?.status, fake.requests.length], [429, 200, 2]);
  t.ok(retried!.at - limited!.at >= 1990, `retried ${retried!.at - limited!.at} ms after the 429 (the package alone waits 500)`);
});

t.test('429s past the retries: a retryable error with the Retry-After', async (t) => {
  const { fake, api } = await setup(t, { maxNetworkRetries: 2 });
  fake.fault({ kind: 'rate_limit', retryAfter: 0 });
  const error = await rejection(api.retrieve('customers', 'cus_1'));
  t.ok(error instanceof StripeApiError);
  t.match(error, { kind: 'rate_limited', retryable: true, retryAfterSeconds: 0, status: 429, path: '/v1/customers/cus_1' });
  t.equal(fake.requests.length, 3, 'one try and two retries');
});

t.test('a 500 is retried by the stripe package; one that lasts is a retryable error', async (t) => {
  const { fake, api } = await setup(t, { maxNetworkRetries: 2 });
  fake.put(customer('cus_1'));
  fake.fault({ kind: 'server_error', times: 1 });
  t.match(await api.retrieve('customers', 'cus_1'), { found: true });
  t.same(fake.requests.map((r) => r.status), [500, 200]);

  fake.requests.length = 0;
  fake.fault({ kind: 'server_error' });
  const error = await rejection(api.retrieve('customers', 'cus_1'));
  t.match(error, { name: 'StripeApiError', kind: 'server', retryable: true, status: 500, requestId: /^req_/ });
  t.same(fake.requests.map((r) => r.status), [500, 500, 500]);
  fake.clearFaults();

  fake.fault({ kind: 'server_error', times: 1, shouldRetry: false });
  t.match(await rejection(api.retrieve('customers', 'cus_1')), { kind: 'server', retryable: false }, 'Stripe-Should-Retry: false is believed');
});

t.test('a slow answer is a timeout, retried, then a retryable error', async (t) => {
  const { fake, api } = await setup(t, { timeoutMs: 150, maxNetworkRetries: 1 });
  fake.put(customer('cus_1'));
  const slow = fake.fault({ kind: 'slow', delayMs: 5000 });
  const error = await rejection(api.retrieve('customers', 'cus_1'));
  t.match(error, { name: 'StripeApiError', kind: 'timeout', retryable: true, path: '/v1/customers/cus_1' });
  t.match(error.message, /timed out/);
  await waitFor(async () => fake.requests.length === 2 && fake.requests.every((r) => r.aborted), { timeoutMs: 10_000, what: 'both attempts to be abandoned' });
  slow.clear();
  t.match(await api.retrieve('customers', 'cus_1'), { found: true });
});

t.test('a wrong key: an auth error that is not retryable, tried once', async (t) => {
  const { fake } = await setup(t);
  const api = createStripeApi({ apiKey: 'sk_live_0123456789', apiBase: fake.url, log: pino({ level: 'silent' }) });
  const error = await rejection(api.retrieve('customers', 'cus_1'));
  t.match(error, { kind: 'auth', retryable: false, status: 401 });
  t.match(error.message, /check the Stripe API key/);
  t.notMatch(error.message, 'sk_live_0123456789');
  t.equal(fake.requests.length, 1);
});

t.test('the limiter: a pause holds everyone, then one token at a time', async (t) => {
  const limiter = createRateLimiter({ rps: 1000 });
  t.throws(() => createRateLimiter({ rps: 0 }), RangeError);
  t.throws(() => createRateLimiter({ rps: 10, burst: 0 }), RangeError);
  limiter.pause(200);
  const granted: number[] = [];
  const started = performance.now();
  await Promise.all([1, 2, 3].map((n) => limiter.take().then(() => granted.push(n))));
  t.same(granted, [1, 2, 3], 'in the order asked');
  t.ok(performance.now() - started >= 199, 'nothing before the pause ended');
  t.equal(limiter.waiting, 0);
});

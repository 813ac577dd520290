// The service as npm start runs it (src/service.ts with the real workers and pg-boss), against the
// fake Stripe: with STRIPE_API_KEY a webhook whose parent never comes gets it from the API, a thin
// event delivered over HTTP is folded, reconcile-events is scheduled, and /metrics counts it all;
// without a key the startup log says these are off and everything else works as before.
import pino from 'pino';
import t from 'tap';
import { startService } from '../src/service.ts';
import { startWorkers } from '../src/worker/index.ts';
import { createTestDatabase } from './helpers/db.ts';
import { signStripe, stripeEvent, testConfig } from './helpers/app.ts';
import { TEST_KEY, fixtureObject, startFakeStripe } from './helpers/fake-stripe.ts';
import { waitFor } from '../scripts/lib/wait.ts';

const THIN_SECRET = 'whsec_thin_service_0123456789';
const db = await createTestDatabase(t);
const fake = await startFakeStripe();
t.teardown(() => fake.close());

function capture() {
  const lines: Record<string, any>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { lines, log };
}

async function start(env: Record<string, string>) {
  const { lines, log } = capture();
  const config = testConfig({
    DATABASE_URL: db.url,
    PORT: '0',
    HOST: '127.0.0.1',
    STRIPE_THIN_WEBHOOK_SECRET: THIN_SECRET,
    WORKER_POLL_MS: '20',
    ...env,
  });
  const service = await startService({ config, log, startWorkers });
  return { service, lines };
}

const post = (url: string, body: string, headers: Record<string, string>) => fetch(url, { method: 'POST', body, headers });

t.test('with a key: parents fetched, thin events folded, reconcile scheduled, all counted in /metrics', async (t) => {
  const { service, lines } = await start({ STRIPE_API_KEY: TEST_KEY, STRIPE_API_BASE: fake.url, PARENT_FETCH_AFTER_S: '0', RECONCILE_EVERY: '5m' });
  t.teardown(() => service.stop());
  t.notOk(lines.some((l) => /STRIPE_API_KEY is not set/.test(l.msg)), 'no "off" line');
  const schedules = lines.find((l) => l.msg === 'pg-boss schedules started');
  t.match(schedules?.sweeps, ['sweep-links (* * * * *)', 'recover-leases (* * * * *)', 'purge-outbox (*/10 * * * *)', 'purge-events (*/10 * * * *)', 'reconcile-events (*/5 * * * *)']);
  const [scheduled] = await db.sql`select name, cron from pgboss.schedule where name = 'reconcile-events'`;
  t.match(scheduled, { cron: '*/5 * * * *' }, 'pg-boss keeps the schedule');

  // A webhook whose customer was created before the endpoint existed.
  fake.put(fixtureObject('customer', { id: 'cus_svc_old', created: 1_700_000_000, email: 'old@example.com' }));
  const invoice = stripeEvent({ type: 'invoice.created', data: { object: { ...fixtureObject('invoice', { id: 'in_svc_1', customer: 'cus_svc_old' }), parent: null, subscription: null, lines: { object: 'list', data: [], has_more: false, url: '/v1/invoices/in_svc_1/lines' } } } });
  const body = JSON.stringify(invoice);
  t.equal((await post(`${service.url}/webhooks/stripe`, body, signStripe(body))).status, 200);

  // A thin event about another customer.
  fake.put(fixtureObject('customer', { id: 'cus_svc_thin', created: 1_700_000_000 }));
  const thin = JSON.stringify({
    id: 'evt_test_svc_thin_1',
    object: 'v2.core.event',
    type: 'v1.customer.updated',
    livemode: false,
    created: new Date().toISOString(),
    related_object: { id: 'cus_svc_thin', type: 'customer', url: '/v1/customers/cus_svc_thin' },
  });
  t.equal((await post(`${service.url}/webhooks/stripe-thin`, thin, signStripe(thin, { secret: THIN_SECRET }))).status, 200);

  await waitFor(
    async () => {
      const [row] = await db.sql`select (select customer_id from invoices where id = 'in_svc_1') as linked, (select count(*)::int from customers where id = 'cus_svc_thin') as thin`;
      return row!.linked === 'cus_svc_old' && row!.thin === 1;
    },
    { what: 'the parent fetched and the thin event folded' },
  );
  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  t.match(metrics, /webhook_inbox_parent_fetches_total\{outcome="fetched"\} 1\b/);
  t.match(metrics, /webhook_inbox_thin_events_total\{outcome="processed"\} 1\b/);
  t.match(metrics, /webhook_inbox_fold_seconds_count\{outcome="deferred"\} 1\b/, 'the claim loop handed the thin event over');
  t.match(metrics, /webhook_inbox_unresolvable_links 0\b/);
  t.notOk(JSON.stringify(lines).includes(TEST_KEY), 'the key never reaches the log');
});

t.test('without a key: the startup log says the features are off, and a thin event waits', async (t) => {
  const { service, lines } = await start({});
  t.teardown(() => service.stop());
  t.ok(lines.some((l) => /^STRIPE_API_KEY is not set: parent fetch, reconciliation of missed events and thin-event folding are off/.test(l.msg)), 'says so at startup');
  t.notMatch(lines.find((l) => l.msg === 'pg-boss schedules started')?.sweeps.join(' '), /reconcile-events/, 'no reconcile schedule');
  t.ok(lines.some((l) => l.msg === 'pg-boss schedule removed: this configuration does not run it' && l.sweep === 'reconcile-events'), 'the one the run with a key left is removed');
  t.equal((await db.sql`select count(*)::int as n from pgboss.schedule where name = 'reconcile-events'`)[0]!.n, 0);
  const thin = JSON.stringify({ id: 'evt_test_svc_thin_2', object: 'v2.core.event', type: 'v1.customer.updated', created: new Date().toISOString(), related_object: { id: 'cus_x', type: 'customer', url: '/v1/customers/cus_x' } });
  t.equal((await post(`${service.url}/webhooks/stripe-thin`, thin, signStripe(thin, { secret: THIN_SECRET }))).status, 200);
  await waitFor(async () => (await db.sql`select last_error from events where event_id = 'evt_test_svc_thin_2'`)[0]?.last_error !== null, { what: 'the thin event to be looked at' });
  t.match((await db.sql`select status, last_error from events where event_id = 'evt_test_svc_thin_2'`)[0], { status: 'RECEIVED', last_error: /^waiting for STRIPE_API_KEY/ });
  t.ok(lines.some((l) => /thin events arrive but STRIPE_API_KEY is not set/.test(l.msg)), 'and warns once');
});

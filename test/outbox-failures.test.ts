// The relay against receivers that fail, for real (local HTTP servers): one answering 500 for a
// while then 200 (retries, its circuit opens, probes, closes; nothing is lost; the other subscriber
// gets everything meanwhile), one that hangs (the timeout fires, the others are served), one that
// answers 410 (its subscription is disabled), a 429 with Retry-After (honoured), and a rotated
// secret (both signatures, a receiver holding the old one still verifies).
import t, { type Test } from 'tap';
import type postgres from 'postgres';
import { createSubscription, rotateSecret } from '../src/db/subscriptions.ts';
import { createLogger, silentLogger } from '../src/log.ts';
import { createMetrics } from '../src/metrics.ts';
import { generateSecret } from '../src/outbox/sign.ts';
import { startWorkers } from '../src/worker/index.ts';
import { startReceiver, type Answer, type Receiver, type Received } from '../scripts/lib/receiver.ts';
import { buildStream } from '../scripts/lib/stream.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { testConfig } from './helpers/app.ts';
import { createTestDatabase } from './helpers/db.ts';
import { storeEvents, unfinished } from './helpers/fold.ts';

const testLog = () => (process.env.TEST_LOG ? createLogger(process.env.TEST_LOG, { pretty: false }) : silentLogger());

const ENV = {
  OUTBOX_ALLOW_NETWORKS: '127.0.0.0/8',
  OUTBOX_ALLOW_HTTP: 'true',
  OUTBOX_POLL_MS: '50',
  WORKER_POLL_MS: '20',
  // Quick retries, many of them: the probes of an open circuit use attempts too.
  OUTBOX_RETRY_SCHEDULE: Array.from({ length: 40 }, (_, i) => (i === 0 ? '0s' : '200ms')).join(','),
  OUTBOX_BREAKER_FAILURES: '3',
  OUTBOX_BREAKER_COOL_DOWN: '1s',
};

async function setup(t: Test, env: Record<string, string> = {}) {
  const db = await createTestDatabase(t);
  const config = testConfig({ ...ENV, ...env });
  let workers: Awaited<ReturnType<typeof startWorkers>> | undefined;
  const receivers: Receiver[] = [];
  const metrics = createMetrics({ sql: db.sql, log: silentLogger(), sources: [] });
  t.teardown(async () => {
    await workers?.stop();
    for (const r of receivers) await r.close();
  });
  return {
    sql: db.sql,
    metrics,
    async receiver(answer?: (r: Received) => Answer): Promise<Receiver & { subscription: string }> {
      const r = await startReceiver({ answer });
      receivers.push(r);
      const secret = generateSecret();
      r.secrets = [secret];
      const s = await createSubscription(db.sql, { url: r.url, secret });
      return Object.assign(r, { subscription: s.id });
    },
    async start() {
      workers = await startWorkers({ sql: db.sql, databaseUrl: '', config, log: testLog(), schedules: false, outboxMetrics: metrics.outbox });
    },
  };
}

const waitingFor = async (sql: postgres.Sql, subscription: string) =>
  (await sql`select count(*)::int as n from deliveries where subscription_id = ${subscription} and status in ('PENDING', 'FAILED')`)[0]!.n as number;
const circuit = async (sql: postgres.Sql, subscription: string) =>
  (await sql`select circuit_state, enabled, disabled_reason from outbox_subscriptions where id = ${subscription}`)[0]!;
const transitions = async (sql: postgres.Sql, subscription: string) =>
  (await sql`select from_state || '>' || to_state || ':' || reason as t from circuit_transitions where subscription_id = ${subscription} order by id`).map((r) => r.t as string);

t.test('500 for a while, then 200: retries, the circuit opens and closes, nothing lost, the other subscriber served meanwhile', async (t) => {
  const o = await setup(t);
  let failing = true;
  const flaky = await o.receiver(() => (failing ? { status: 500, body: 'down for maintenance' } : { status: 200 }));
  const healthy = await o.receiver();
  await storeEvents(o.sql, buildStream({ seed: 61, customers: 2 }));
  await o.start();

  await waitFor(async () => (await transitions(o.sql, flaky.subscription)).some((x) => x.startsWith('half_open>open:probe_failed')), {
    what: 'the flaky subscriber\'s circuit to open, and a probe to fail',
    timeoutMs: 30_000,
  });
  await waitFor(async () => (await unfinished(o.sql)) === 0 && (await waitingFor(o.sql, healthy.subscription)) === 0, {
    what: 'the healthy subscriber to have everything',
    timeoutMs: 30_000,
  });
  t.not((await circuit(o.sql, flaky.subscription)).circuit_state, 'closed', 'the healthy subscriber got everything while the other circuit was open');
  // While open, only probes go. Sends claimed before the relay recorded the opening may still
  // start after it: at most two claims' worth of this subscription's slots (16 each).
  const [opened] = await o.sql`select at from circuit_transitions where subscription_id = ${flaky.subscription} and to_state = 'open' order by id limit 1`;
  const probes = (await o.sql`select count(*)::int as n from circuit_transitions where subscription_id = ${flaky.subscription} and to_state = 'half_open'`)[0]!.n;
  const [{ n: whileOpen }] = (await o.sql`
    select count(*)::int as n from delivery_attempts a join deliveries d on d.id = a.delivery_id
     where d.subscription_id = ${flaky.subscription} and a.attempted_at > ${opened!.at}`) as unknown as [{ n: number }];
  t.ok(whileOpen <= probes + 32, `while its circuit was open it got hardly more than the probes (${whileOpen} requests, ${probes} probes)`);

  failing = false;
  await waitFor(async () => (await waitingFor(o.sql, flaky.subscription)) === 0, { what: 'the flaky subscriber to catch up', timeoutMs: 30_000 });
  t.equal((await circuit(o.sql, flaky.subscription)).circuit_state, 'closed');
  const seen = await transitions(o.sql, flaky.subscription);
  t.match(seen, ['closed>open:consecutive_failures', 'open>half_open:cool_down_elapsed', 'half_open>open:probe_failed'], 'opened, probed, failed');
  t.equal(seen.at(-1), 'half_open>closed:probe_succeeded', 'closed by a successful probe');

  // Nothing lost: each object's newest version reached both, and nothing died.
  const dead = await o.sql`select id from deliveries where status = 'DEAD'`;
  t.same(dead, [], 'no delivery DEAD');
  const rows = await o.sql`select distinct on (object_id) object_id, version::int as version from outbox_messages order by object_id, version desc`;
  for (const r of [flaky, healthy]) {
    const last = new Map<string, number>();
    for (const x of r.accepted()) last.set(x.body.object_id, Math.max(last.get(x.body.object_id) ?? 0, x.body.version));
    t.same(rows.filter((m) => last.get(m.object_id) !== m.version).map((m) => m.object_id), [], 'every object\'s newest version arrived');
    t.ok(r.received.every((x) => x.verified), 'every signature verifies');
  }
  const retried = flaky.accepted().filter((x) => flaky.received.some((y) => y.id === x.id && y.status === 500));
  t.ok(retried.length > 0, `${retried.length} messages accepted on a retry, with the webhook-id of the failed attempt`);
  const text = await o.metrics.render();
  t.match(text, /webhook_inbox_outbox_circuit_transitions_total\{from="closed",to="open",reason="consecutive_failures"\} 1/, 'the transitions are counted in /metrics');
  t.match(text, /webhook_inbox_outbox_attempts_total\{outcome="http",status="FAILED"\} [1-9]/);
  t.match(text, /webhook_inbox_outbox_latency_seconds_count [1-9]/);
  t.match(text, new RegExp(`webhook_inbox_outbox_subscription_circuit\\{subscription="${flaky.subscription}",state="closed"\\} 1`));
  const superseded = (await o.sql`select count(*)::int as n from deliveries where subscription_id = ${flaky.subscription} and status = 'SUPERSEDED'`)[0]!.n;
  t.comment(`flaky subscriber: ${flaky.received.length} requests, ${flaky.accepted().length} accepted, ${superseded} superseded while waiting; healthy: ${healthy.accepted().length}`);
});

t.test('a receiver that hangs: the timeout fires, the relay serves the others', async (t) => {
  const o = await setup(t, { OUTBOX_TIMEOUT_MS: '300', OUTBOX_LEASE_S: '6' });
  const hanging = await o.receiver(() => 'hang');
  const healthy = await o.receiver();
  await storeEvents(o.sql, buildStream({ seed: 62, customers: 1 }));
  await o.start();
  await waitFor(async () => (await unfinished(o.sql)) === 0 && (await waitingFor(o.sql, healthy.subscription)) === 0, {
    what: 'the healthy subscriber to have everything',
    timeoutMs: 30_000,
  });
  await waitFor(async () => (await circuit(o.sql, hanging.subscription)).circuit_state !== 'closed', { what: 'the hanging one\'s circuit to open' });
  const attempts = await o.sql`
    select a.outcome, a.error, a.duration_ms from delivery_attempts a join deliveries d on d.id = a.delivery_id
     where d.subscription_id = ${hanging.subscription}`;
  t.ok(attempts.length >= 3, `${attempts.length} attempts to the hanging receiver`);
  t.ok(attempts.every((a) => a.outcome === 'timeout' && /no answer within 300 ms/.test(a.error)), 'each ended by the timeout');
  t.ok(hanging.received.length >= 3, 'the requests did reach it');
});

t.test('a receiver that answers 410 Gone disables its subscription', async (t) => {
  const o = await setup(t);
  const gone = await o.receiver(() => ({ status: 410 }));
  const healthy = await o.receiver();
  await storeEvents(o.sql, buildStream({ seed: 63, customers: 1 }));
  await o.start();
  await waitFor(async () => !(await circuit(o.sql, gone.subscription)).enabled, { what: 'the subscription disabled' });
  t.match(await circuit(o.sql, gone.subscription), { enabled: false, circuit_state: 'disabled', disabled_reason: 'gone' });
  t.same(await transitions(o.sql, gone.subscription), ['closed>disabled:gone']);
  await waitFor(async () => (await unfinished(o.sql)) === 0 && (await waitingFor(o.sql, healthy.subscription)) === 0, { what: 'the other subscriber served' });
  const before = (await o.sql`select count(*)::int as n from outbox_messages`)[0]!.n;
  await storeEvents(o.sql, buildStream({ seed: 64, customers: 1 }));
  await waitFor(async () => (await unfinished(o.sql)) === 0 && (await waitingFor(o.sql, healthy.subscription)) === 0, { what: 'more changes served' });
  const after = await o.sql`select count(*)::int as n from deliveries d join outbox_messages m on m.id = d.message_id
                             where d.subscription_id = ${gone.subscription} and m.created_at > (select disabled_at from outbox_subscriptions where id = ${gone.subscription})`;
  t.ok((await o.sql`select count(*)::int as n from outbox_messages`)[0]!.n > before, 'changes went on');
  t.equal(after[0]!.n, 0, 'no delivery is created for a disabled subscription');
});

t.test('429 with Retry-After is honoured; a rotated secret signs twice', async (t) => {
  const o = await setup(t);
  let first = true;
  const busy = await o.receiver(() => {
    if (!first) return { status: 200 };
    first = false;
    return { status: 429, headers: { 'retry-after': '3' } };
  });
  const oldSecret = busy.secrets[0]!;
  await rotateSecret(o.sql, busy.subscription, generateSecret(), 3_600_000);
  busy.secrets = [oldSecret]; // a receiver not yet told of the new secret
  await storeEvents(o.sql, buildStream({ seed: 65, customers: 1 }).slice(0, 1));
  await o.start();
  await waitFor(async () => (await waitingFor(o.sql, busy.subscription)) === 0 && busy.accepted().length > 0, { what: 'the delivery after its Retry-After' });
  const [a1, a2] = await o.sql`
    select a.attempted_at, a.status_code from delivery_attempts a join deliveries d on d.id = a.delivery_id
     where d.subscription_id = ${busy.subscription} order by a.id`;
  t.equal(a1!.status_code, 429);
  t.equal(a2!.status_code, 200);
  t.ok(a2!.attempted_at.getTime() - a1!.attempted_at.getTime() >= 3000, 'the retry waited for Retry-After (3 s), not the schedule (200 ms)');
  t.ok(busy.received.every((r) => r.verified), 'verified with the previous secret');
  t.equal(String(busy.received[0]!.headers['webhook-signature']).split(' ').length, 2, 'two signatures during the rotation');
  t.equal(busy.received[0]!.id, busy.received[1]!.id, 'the same webhook-id on the retry');
});

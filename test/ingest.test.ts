// POST /webhooks/:source through app.request() against a real database: what is stored, what is
// refused, and that nothing is acknowledged without a commit.
import { createServer } from 'node:http';
import t from 'tap';
import { connect } from '../src/db/client.ts';
import { createHttp } from '../src/http/app.ts';
import { silentLogger } from '../src/log.ts';
import { EVENTS_CHANNEL } from '../src/db/events.ts';
import { createTestDatabase } from './helpers/db.ts';
import {
  ACME_SECRET,
  STRIPE_OLD_SECRET,
  eventId,
  post,
  signStandard,
  signStripe,
  stripeEvent,
  testApp,
  testConfig,
} from './helpers/app.ts';
import { startProxy } from './helpers/proxy.ts';
import { waitFor } from '../scripts/lib/wait.ts';

const db = await createTestDatabase(t);
const app = testApp(db.sql);

const countRows = async (id: string) =>
  Number((await db.sql`select count(*)::int as n from events where event_id = ${id}`)[0]!.n);

t.test('a signed Stripe event is stored exactly as sent and answered 200', async (t) => {
  const event = stripeEvent({ type: 'invoice.paid', account: 'acct_123' }, 5000);
  const body = JSON.stringify(event);
  const res = await app.request('/webhooks/stripe', post(body, signStripe(body)));
  t.equal(res.status, 200);
  t.same(await res.json(), { status: 'success' });
  const [row] = await db.sql`select * from events where event_id = ${event.id as string}`;
  t.ok(row, 'row stored');
  t.strictSame(row!.payload, event, 'payload equals the body');
  t.match(row, {
    source: 'stripe',
    type: 'invoice.paid',
    api_version: '2025-03-31.basil',
    account: 'acct_123',
    livemode: false,
    status: 'RECEIVED',
    attempts: 0,
  });
  t.equal((row!.created as Date).getTime(), (event.created as number) * 1000);
});

t.test('a duplicate delivery is answered 200 and changes nothing', async (t) => {
  const event = stripeEvent();
  const body = JSON.stringify(event);
  const first = await app.request('/webhooks/stripe', post(body, signStripe(body)));
  t.equal(first.status, 200);
  const [before] = await db.sql`select received_at, id from events where event_id = ${event.id as string}`;
  // A retry by Stripe carries a new timestamp and signature for the same bytes.
  const again = await app.request('/webhooks/stripe', post(body, signStripe(body)));
  t.equal(again.status, 200);
  t.same(await again.json(), { status: 'success' });
  const rows = await db.sql`select received_at, id from events where event_id = ${event.id as string}`;
  t.equal(rows.length, 1);
  t.same(rows[0], before, 'received_at and id untouched');
});

t.test('50 concurrent deliveries of one event store one row, all answered 200', async (t) => {
  const event = stripeEvent();
  const body = JSON.stringify(event);
  const answers = await Promise.all(
    Array.from({ length: 50 }, () => app.request('/webhooks/stripe', post(body, signStripe(body)))),
  );
  t.same(
    answers.map((r) => r.status),
    Array(50).fill(200),
  );
  t.equal(await countRows(event.id as string), 1);
});

t.test('a stored event wakes the workers after its commit; a duplicate or a forged delivery does not', async (t) => {
  const heard: number[] = [];
  const listener = await db.sql.listen(EVENTS_CHANNEL, async () => {
    heard.push(await countRows(event.id as string));
  });
  t.teardown(() => listener.unlisten());
  const event = stripeEvent();
  const body = JSON.stringify(event);
  t.equal((await app.request('/webhooks/stripe', post(body, signStripe(body)))).status, 200);
  await waitFor(() => heard.length > 0, { timeoutMs: 5000, intervalMs: 10, what: 'the wake-up' });
  t.same(heard, [1], 'one wake-up, sent when the row was already visible to other sessions');

  heard.length = 0;
  t.equal((await app.request('/webhooks/stripe', post(body, signStripe(body)))).status, 200);
  t.equal((await app.request('/webhooks/stripe', post(body, { 'stripe-signature': 't=1,v1=00' }))).status, 400);
  await new Promise((r) => setTimeout(r, 200));
  t.same(heard, [], 'no wake-up for a duplicate or a rejected delivery');
});

t.test('a burst of stored events shares wake-ups, and the last commit is still announced', async (t) => {
  const events = Array.from({ length: 40 }, () => stripeEvent());
  const ids = events.map((e) => e.id as string);
  const seen: number[] = [];
  const listener = await db.sql.listen(EVENTS_CHANNEL, async () => {
    seen.push(Number((await db.sql`select count(*)::int as n from events where event_id in ${db.sql(ids)}`)[0]!.n));
  });
  t.teardown(() => listener.unlisten());
  const answers = await Promise.all(
    events.map((e) => {
      const body = JSON.stringify(e);
      return app.request('/webhooks/stripe', post(body, signStripe(body)));
    }),
  );
  t.same(new Set(answers.map((r) => r.status)), new Set([200]));
  await new Promise((r) => setTimeout(r, 300));
  t.ok(seen.length >= 1 && seen.length < events.length, `fewer wake-ups than events (${seen.length} for ${events.length})`);
  t.equal(Math.max(...seen), events.length, 'a wake-up came after the last of them committed');
});

t.test('rotated secrets: the old and the new both verify', async (t) => {
  for (const secret of [undefined, STRIPE_OLD_SECRET]) {
    const event = stripeEvent();
    const body = JSON.stringify(event);
    const res = await app.request('/webhooks/stripe', post(body, signStripe(body, { secret })));
    t.equal(res.status, 200);
    t.equal(await countRows(event.id as string), 1);
  }
});

t.test('bad Stripe deliveries answer 400 and store nothing', async (t) => {
  const cases: [string, () => { body: string; headers: Record<string, string>; id: string }][] = [
    ['missing signature', () => {
      const e = stripeEvent();
      const body = JSON.stringify(e);
      return { body, headers: { 'content-type': 'application/json' }, id: e.id as string };
    }],
    ['signature from an unknown secret', () => {
      const e = stripeEvent();
      const body = JSON.stringify(e);
      return { body, headers: signStripe(body, { secret: 'whsec_forged' }), id: e.id as string };
    }],
    ['signature for another body', () => {
      const e = stripeEvent();
      const body = JSON.stringify(e);
      const other = JSON.stringify({ ...e, type: 'charge.refunded' });
      return { body: other, headers: signStripe(body), id: e.id as string };
    }],
    ['timestamp older than the tolerance', () => {
      const e = stripeEvent();
      const body = JSON.stringify(e);
      return { body, headers: signStripe(body, { timestamp: Math.floor(Date.now() / 1000) - 301 }), id: e.id as string };
    }],
    ['garbage signature header', () => {
      const e = stripeEvent();
      const body = JSON.stringify(e);
      return { body, headers: { 'stripe-signature': 't=abc,v1=zz' }, id: e.id as string };
    }],
    ['signed body that is not JSON', () => {
      const id = eventId();
      const body = `{"id":"${id}","type":"x"`;
      return { body, headers: signStripe(body), id };
    }],
    ['signed JSON without id', () => {
      const e = stripeEvent();
      delete e.id;
      const body = JSON.stringify(e);
      return { body, headers: signStripe(body), id: '' };
    }],
    ['signed JSON without type', () => {
      const e = stripeEvent();
      delete e.type;
      const body = JSON.stringify(e);
      return { body, headers: signStripe(body), id: e.id as string };
    }],
    ['signed JSON that is an array', () => {
      const body = '[1,2,3]';
      return { body, headers: signStripe(body), id: '' };
    }],
    ['signed JSON with a NUL character Postgres cannot store', () => {
      const e = stripeEvent({ type: 'customer.updated' });
      const body = JSON.stringify(e).replace('"metadata":{}', '"metadata":{"k":"\\u0000"}');
      return { body, headers: signStripe(body), id: e.id as string };
    }],
  ];
  const before = Number((await db.sql`select count(*)::int as n from events`)[0]!.n);
  for (const [name, make] of cases) {
    const { body, headers, id } = make();
    const res = await app.request('/webhooks/stripe', post(body, headers));
    t.equal(res.status, 400, name);
    const answer = (await res.json()) as { error?: string };
    t.type(answer.error, 'string', `${name}: says why (${answer.error})`);
    if (id) t.equal(await countRows(id), 0, `${name}: nothing stored`);
  }
  const after = Number((await db.sql`select count(*)::int as n from events`)[0]!.n);
  t.equal(after, before, 'no rows at all');
});

t.test('a signed body that is not UTF-8 answers 400', async (t) => {
  const e = stripeEvent();
  const text = JSON.stringify(e);
  const bytes = Buffer.concat([Buffer.from(text.slice(0, -1)), Buffer.from([0x2c, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])]);
  // The sender signs what it sends; Stripe's helper signs a string, so sign the latin1 view of it.
  const res = await app.request('/webhooks/stripe', post(bytes, signStripe(bytes.toString('latin1'))));
  t.equal(res.status, 400);
  t.equal(await countRows(e.id as string), 0);
});

t.test('an oversized body answers 413 and is not read past the limit', async (t) => {
  const small = testApp(db.sql, { WEBHOOK_MAX_BODY_BYTES: '2048' });
  const e = stripeEvent({}, 4000);
  const body = JSON.stringify(e);
  const res = await small.request('/webhooks/stripe', post(body, signStripe(body)));
  t.equal(res.status, 413);
  t.match(await res.json(), { error: /WEBHOOK_MAX_BODY_BYTES/ });
  t.equal(await countRows(e.id as string), 0);

  // A streamed body without Content-Length: reading stops at the limit, the rest is never pulled.
  let pulled = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled += 1024;
      controller.enqueue(new Uint8Array(1024).fill(0x20));
      if (pulled > 10 * 1024 * 1024) controller.close();
    },
  });
  const streamed = await small.request('/webhooks/stripe', {
    method: 'POST',
    body: stream,
    headers: { 'stripe-signature': 't=1,v1=x' },
    // Node's fetch needs duplex for a streamed request body.
    duplex: 'half',
  });
  t.equal(streamed.status, 413);
  t.ok(pulled < 64 * 1024, `stopped after ${pulled} bytes`);
});

t.test('an unknown source answers 404 and stores nothing', async (t) => {
  const e = stripeEvent();
  const body = JSON.stringify(e);
  const res = await app.request('/webhooks/paypal', post(body, signStripe(body)));
  t.equal(res.status, 404);
  t.equal(await countRows(e.id as string), 0);
});

t.test('Stripe without STRIPE_WEBHOOK_SECRET answers 503 so Stripe retries', async (t) => {
  const unconfigured = testApp(db.sql, { STRIPE_WEBHOOK_SECRET: undefined });
  const e = stripeEvent();
  const body = JSON.stringify(e);
  const res = await unconfigured.request('/webhooks/stripe', post(body, signStripe(body)));
  t.equal(res.status, 503);
  t.match(await res.json(), { error: /STRIPE_WEBHOOK_SECRET/ });
  t.equal(await countRows(e.id as string), 0);
});

t.test('a Standard Webhooks source', async (t) => {
  const body = JSON.stringify({ type: 'order.created', timestamp: new Date().toISOString(), data: { id: 'o_1' } });
  const headers = signStandard(body);
  const id = headers['webhook-id']!;
  const res = await app.request('/webhooks/acme', post(body, headers));
  t.equal(res.status, 200);
  const [row] = await db.sql`select source, type, payload, status from events where event_id = ${id}`;
  t.match(row, { source: 'acme', type: 'order.created', status: 'RECEIVED' });
  t.strictSame(row!.payload, JSON.parse(body));

  const dup = await app.request('/webhooks/acme', post(body, signStandard(body, { id })));
  t.equal(dup.status, 200, 'duplicate accepted');
  t.equal(await countRows(id), 1, 'and stored once');

  const bad: [string, Record<string, string>][] = [
    ['forged', signStandard(body, { secret: `whsec_${Buffer.from('other').toString('base64')}` })],
    ['stale', signStandard(body, { timestamp: new Date(Date.now() - 301_000) })],
    ['from the future', signStandard(body, { timestamp: new Date(Date.now() + 301_000) })],
    ['no headers', { 'content-type': 'application/json' }],
  ];
  for (const [name, h] of bad) {
    const r = await app.request('/webhooks/acme', post(body, h));
    t.equal(r.status, 400, name);
    if (h['webhook-id']) t.equal(await countRows(h['webhook-id']), 0, `${name}: nothing stored`);
  }
  const noType = JSON.stringify({ data: {} });
  const h = signStandard(noType, { secret: ACME_SECRET });
  t.equal((await app.request('/webhooks/acme', post(noType, h))).status, 400, 'body without type');
});

t.test('database down or hanging: 503 quickly, never 200; the next delivery after it returns succeeds', async (t) => {
  const target = new URL(db.url);
  const proxy = await startProxy({ host: target.hostname, port: Number(target.port) });
  const sql = connect(proxy.url(db.url), { max: 4, connectTimeoutMs: 500, statementTimeoutMs: 500 });
  t.teardown(async () => {
    await sql.end({ timeout: 1 });
    await proxy.close();
  });
  const viaProxy = testApp(sql, { INGEST_TIMEOUT_MS: '800' });
  const deliver = async () => {
    const e = stripeEvent();
    const body = JSON.stringify(e);
    const started = Date.now();
    const res = await viaProxy.request('/webhooks/stripe', post(body, signStripe(body)));
    return { status: res.status, ms: Date.now() - started, id: e.id as string };
  };

  t.equal((await deliver()).status, 200, 'up: stored');

  await proxy.down();
  const refused = await deliver();
  t.equal(refused.status, 503, 'connection refused -> 503');
  t.comment(`refused: answered in ${refused.ms} ms`);
  t.equal(await countRows(refused.id), 0);

  proxy.hang();
  await proxy.up();
  proxy.hang();
  const hung = await deliver();
  t.equal(hung.status, 503, 'database accepts but never answers -> 503');
  t.comment(`hung: answered in ${hung.ms} ms (INGEST_TIMEOUT_MS 800)`);

  await proxy.up();
  const back = await deliver();
  t.equal(back.status, 200, 'back up: the next delivery succeeds without a restart');
  t.equal(await countRows(back.id), 1);
});

t.test("Node's request listener answers webhooks as Hono does, and hands every other route to Hono", async (t) => {
  const http = createHttp({ sql: db.sql, config: testConfig({ WEBHOOK_MAX_BODY_BYTES: '2048' }), log: silentLogger() });
  const server = createServer(http.listener);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const both = async (path: string, init: RequestInit) => {
    const [viaNode, viaHono] = [await fetch(`${base}${path}`, init), await http.app.request(path, init)];
    return { node: { status: viaNode.status, type: viaNode.headers.get('content-type'), body: await viaNode.text(), id: viaNode.headers.get('x-request-id') }, hono: { status: viaHono.status, type: viaHono.headers.get('content-type'), body: await viaHono.text() } };
  };

  const e = stripeEvent();
  const body = JSON.stringify(e);
  const ok = await both('/webhooks/stripe', { ...post(body, { ...signStripe(body), 'x-request-id': 'req-abc_1' }) });
  t.same(ok.node, { status: 200, type: 'application/json', body: '{"status":"success"}', id: 'req-abc_1' }, 'stored: 200, and the caller\'s request id echoed');
  t.same(ok.hono, { status: 200, type: 'application/json', body: '{"status":"success"}' }, 'the second delivery (Hono) is a duplicate, also 200');
  t.equal(await countRows(e.id as string), 1);

  const cases: [string, string, RequestInit][] = [
    ['forged', '/webhooks/stripe', post(body, signStripe(body, { secret: 'whsec_forged' }))],
    ['unknown source', '/webhooks/paypal', post(body, signStripe(body))],
    ['over the limit', '/webhooks/stripe', post(JSON.stringify(stripeEvent({}, 4000)), { 'stripe-signature': 't=1,v1=x' })],
    ['no such route', '/webhooks/stripe/extra', post(body, signStripe(body))],
    ['a probe', '/healthz', { method: 'GET' }],
  ];
  for (const [name, path, init] of cases) {
    const r = await both(path, init);
    t.same(r.node.status, r.hono.status, `${name}: same status (${r.node.status})`);
    t.same(r.node.body, r.hono.body, `${name}: same body`);
    t.match(r.node.id, /^[\w-]{8,}$/, `${name}: a request id`);
  }
});

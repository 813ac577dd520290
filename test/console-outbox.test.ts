// The console's outbox pages through app.request() against a real database: a subscription
// created from the form (its secret shown once, the admin API's URL checks), edited, disabled,
// its secret rotated and its failures recovered; deliveries folded from a real stream, the
// dead-letter queue with attempt details, and bulk replay behind a confirmation; the overview's
// failing subscriptions. Every POST carries the session's CSRF token.
import t from 'tap';
import { buildStream } from '../scripts/lib/stream.ts';
import { createSubscription } from '../src/db/subscriptions.ts';
import { generateSecret } from '../src/outbox/sign.ts';
import { createTestDatabase } from './helpers/db.ts';
import { drain, storeEvents, type Ev } from './helpers/fold.ts';
import { consoleApp, csrfToken, form, getPage, signIn } from './helpers/console.ts';

const db = await createTestDatabase(t);
const sql = db.sql;
const app = consoleApp(sql, { OUTBOX_ALLOW_NETWORKS: '127.0.0.0/8', OUTBOX_ALLOW_HTTP: 'true' });
const cookie = await signIn(app);
const csrf = await csrfToken(app, cookie);
const page = (path: string) => getPage(app, cookie, path);
const post = (path: string, fields: Record<string, string | string[]>) => app.request(path, form({ csrf, ...fields }, { cookie }));
const text = (html: string) => html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');

let id = '';

t.test('create a subscription from the form: checked like the API, its secret shown once', async (t) => {
  const refused = await post('/console/subscriptions', { url: 'http://169.254.169.254/latest', types: 'invoice.*' });
  t.equal(refused.status, 400, 'a private address is refused');
  t.match(text(await refused.text()), /url: /);
  const badType = await post('/console/subscriptions', { url: 'http://127.0.0.1:9/hooks', types: 'Invoice Paid!' });
  t.equal(badType.status, 400);
  t.match(text(await badType.text()), /types: expected a message type/);
  t.same(await sql`select id from outbox_subscriptions`, [], 'nothing stored');

  const res = await post('/console/subscriptions', { url: 'http://127.0.0.1:9/hooks', description: 'billing', types: 'customer.*, invoice.*' });
  t.equal(res.status, 201);
  const html = await res.text();
  const secret = /<code class="mono">(whsec_[^<]+)<\/code>/.exec(html)?.[1];
  const [row] = await sql<{ id: string; secret: string; types: string[] }[]>`select id, secret, types from outbox_subscriptions`;
  t.equal(secret, row!.secret, 'the secret, shown once');
  t.same(row!.types, ['customer.*', 'invoice.*']);
  id = row!.id;
  const list = await page('/console/subscriptions');
  t.match(text(list.html), new RegExp(`${id} billing http://127.0.0.1:9/hooks customer\\.\\*, invoice\\.\\* closed`));
  t.notOk(list.html.includes(row!.secret), 'never again');
  t.notOk((await page(`/console/subscriptions/${id}`)).html.includes(row!.secret));
});

t.test('edit, disable, rotate the secret, recover', async (t) => {
  const saved = await post(`/console/subscriptions/${id}`, { url: 'http://127.0.0.1:9/hooks', description: 'billing v2', types: 'customer.*' });
  t.equal(saved.status, 200);
  t.match(text(await saved.text()), /Saved\. .*disabled/, 'saved; the enabled box was not ticked, so it is disabled');
  let [row] = await sql`select description, types, enabled, disabled_reason, circuit_state, secret from outbox_subscriptions where id = ${id}`;
  t.match(row, { description: 'billing v2', types: ['customer.*'], enabled: false, disabled_reason: 'by_request' });
  await post(`/console/subscriptions/${id}`, { url: 'http://127.0.0.1:9/hooks', description: 'billing v2', types: 'customer.*', enabled: 'on' });
  [row] = await sql`select enabled, secret from outbox_subscriptions where id = ${id}`;
  t.equal(row!.enabled, true, 'enabled again');

  const before = row!.secret as string;
  const rotated = await post(`/console/subscriptions/${id}/rotate-secret`, {});
  const shown = /<code class="mono">(whsec_[^<]+)<\/code>/.exec(await rotated.text())?.[1];
  const [after] = await sql`select secret, previous_secret from outbox_subscriptions where id = ${id}`;
  t.equal(shown, after!.secret, 'the new secret, shown once');
  t.equal(after!.previous_secret, before, 'the old one still signs during the overlap');

  const bad = await post(`/console/subscriptions/${id}/recover`, { since: 'yesterday' });
  t.equal(bad.status, 400);
  t.match(text(await bad.text()), /since: expected an ISO-8601 time/);
  const ok = await post(`/console/subscriptions/${id}/recover`, { since: '24h' });
  t.match(text(await ok.text()), /0 deliveries will be sent again/);
  t.equal((await page('/console/subscriptions/ep_000000000000000000000000')).status, 404);
  t.equal((await page('/console/subscriptions/nope')).status, 400);
});

t.test('deliveries and the dead-letter queue: attempts shown, bulk replay behind a confirmation', async (t) => {
  await storeEvents(sql, buildStream({ seed: 12, customers: 2 }) as unknown as Ev[]);
  await drain(sql); // no relay: the deliveries wait
  const deliveries = await sql<{ id: string }[]>`select id::text from deliveries where subscription_id = ${id} order by id`;
  t.ok(deliveries.length >= 2, `${deliveries.length} deliveries of customer changes`);
  const [dead, dead2] = deliveries;
  for (const d of [dead!, dead2!]) {
    await sql`update deliveries set status = 'DEAD', attempts = 2, finished_at = now(), last_attempt_at = now(), last_status = 500, last_error = 'answered 500' where id = ${d.id}`;
    await sql`insert into delivery_attempts (delivery_id, attempt, attempted_at, duration_ms, status_code, outcome, error, response_body)
              values (${d.id}, 1, now(), 41, 500, 'http', 'answered 500', '<h1>oops</h1>'), (${d.id}, 2, now(), 35, 500, 'http', 'answered 500', 'oops')`;
  }

  const dlq = await page('/console/deliveries?status=DEAD');
  t.equal(dlq.status, 200);
  t.match(text(dlq.html), /Dead letters/);
  t.equal([...dlq.html.matchAll(/name="ids" value="(\d+)"/g)].length, 2, 'both can be ticked');

  const one = await page(`/console/deliveries/${dead!.id}`);
  t.match(text(one.html), /HTTP 500 answered 500 &lt;h1&gt;oops&lt;\/h1&gt;/, 'every attempt, the response body escaped');

  // Tick one: the confirmation counts, then the confirmed POST sends it again.
  const confirm = await post('/console/deliveries/replay', { ids: [dead!.id] });
  t.match(text(await confirm.text()), /Send 1 deliveries again\?/);
  t.equal((await sql`select status from deliveries where id = ${dead!.id}`)[0]!.status, 'DEAD', 'nothing changed yet');
  const sent = await post('/console/deliveries/replay', { ids: [dead!.id], confirmed: '1' });
  t.equal(sent.status, 303);
  t.equal((await sql`select status from deliveries where id = ${dead!.id}`)[0]!.status, 'PENDING');
  t.equal((await sql`select status from deliveries where id = ${dead2!.id}`)[0]!.status, 'DEAD', 'only the ticked one');

  // All a filter matches.
  const all = await page(`/console/deliveries/replay?status=DEAD&subscription=${id}`);
  t.match(text(all.html), /Send 1 deliveries again\?/);
  await post('/console/deliveries/replay', { status: 'DEAD', subscription: id, confirmed: '1' });
  t.equal((await sql`select status from deliveries where id = ${dead2!.id}`)[0]!.status, 'PENDING');
  t.equal((await page('/console/deliveries?status=NOPE')).status, 400);

  const noToken = await app.request('/console/deliveries/replay', form({ ids: [dead!.id], confirmed: '1' }, { cookie }));
  t.equal(noToken.status, 403, 'CSRF token required here too');
});

t.test('the overview: failing subscriptions, and deliveries sent per minute', async (t) => {
  await sql`update outbox_subscriptions set circuit_state = 'open',
              breaker = jsonb_set(breaker, '{failingSince}', to_jsonb((extract(epoch from now() - interval '2 hours') * 1000)::bigint))
             where id = ${id}`;
  const { html } = await page('/console');
  t.match(text(html), /Failing subscriptions 1 of 1, failing since 2 h/);
  const [attempts] = await sql`select count(*)::int as n from delivery_attempts where attempted_at > now() - interval '1 hour'`;
  t.ok(attempts!.n >= 4);
  t.match(text(html), new RegExp(`sent: ${attempts!.n} in all`), 'every attempt of the last hour');
  const list = await page('/console/subscriptions');
  t.match(list.html, /status bad">open</, 'its circuit, on the list');
});

t.test("a subscription's charts count its own attempts only, and say their numbers in words", async (t) => {
  // Another subscription's attempt, in the same minute: on the overview, not on this page.
  const other = await createSubscription(sql, { url: 'http://127.0.0.1:9/other', secret: generateSecret() });
  const [d] = await sql<{ id: string }[]>`
    insert into deliveries (message_id, subscription_id, object_id, version)
    select message_id, ${other.id}, object_id, version from deliveries where subscription_id = ${id} limit 1 returning id::text`;
  await sql`insert into delivery_attempts (delivery_id, attempt, attempted_at, duration_ms, status_code, outcome) values (${d!.id}, 1, now(), 12, 200, 'success')`;
  const [mine] = await sql<{ n: number; failed: number }[]>`
    select count(*)::int as n, count(*) filter (where a.outcome <> 'success')::int as failed
      from delivery_attempts a join deliveries d on d.id = a.delivery_id
     where d.subscription_id = ${id} and a.attempted_at > now() - interval '1 hour'`;
  t.ok(mine!.n >= 4, `${mine!.n} attempts of its own`);
  const { html } = await page(`/console/subscriptions/${id}`);
  t.match(text(html), new RegExp(`Attempts per minute, last hour .*sent: ${mine!.n} in all.*failed: ${mine!.failed} in all`));
  t.match(text(html), new RegExp(`last 24 hours .*sent: ${mine!.n} in all`));
  t.equal([...html.matchAll(/data-chart=/g)].length, 2, 'two charts for the browser to draw');
  t.match(html, /uPlot\.iife\.min\.js/, 'with the charting script');
  t.match(text((await page('/console')).html), new RegExp(`sent: ${mine!.n + 1} in all`), 'the overview counts both');
});

t.test('what a subscriber or receiver says is escaped on every outbox page; no inline script', async (t) => {
  const evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
  await post(`/console/subscriptions/${id}`, { url: 'http://127.0.0.1:9/hooks', description: evil, types: 'customer.*', enabled: 'on' });
  t.equal((await sql`select description from outbox_subscriptions where id = ${id}`)[0]!.description, evil, 'stored as typed');
  const [d] = await sql<{ id: string }[]>`select id::text from deliveries where subscription_id = ${id} order by id limit 1`;
  await sql`update deliveries set status = 'DEAD', last_error = ${evil} where id = ${d!.id}`;
  await sql`update delivery_attempts set error = ${evil}, response_body = ${evil} where delivery_id = ${d!.id}`;
  for (const path of ['/console/subscriptions', `/console/subscriptions/${id}`, '/console/deliveries?status=DEAD', `/console/deliveries/${d!.id}`, `/console/deliveries/replay?subscription=${id}`]) {
    const { status, html } = await page(path);
    t.equal(status, 200, path);
    t.ok(html.includes('&lt;script&gt;window.__pwned=1&lt;/script&gt;'), `${path}: shown, escaped`);
    t.notOk(html.includes('<script>window'), `${path}: the script is text`);
    t.notOk(/<img[^>]*onerror/i.test(html), `${path}: no injected element`);
    t.notOk(/<script(?![^>]*\ssrc=)[^>]*>/i.test(html), `${path}: every script has a src`);
    t.notOk(/<style|\sstyle="/i.test(html), `${path}: no inline style`);
    t.notOk(/\son[a-z]+="/i.test(html), `${path}: no inline event handler`);
  }
});

t.test('every outbox form is refused without the session CSRF token, and changes nothing', async (t) => {
  const before = await sql`select id, url, description, enabled, secret, circuit_state from outbox_subscriptions order by id`;
  const deliveries = await sql`select id, status from deliveries order by id`;
  const posts: [string, Record<string, string>][] = [
    ['/console/subscriptions', { url: 'http://127.0.0.1:9/new' }],
    [`/console/subscriptions/${id}`, { url: 'http://127.0.0.1:9/changed', enabled: 'on' }],
    [`/console/subscriptions/${id}/rotate-secret`, {}],
    [`/console/subscriptions/${id}/recover`, { since: '24h' }],
    ['/console/deliveries/replay', { status: 'DEAD', confirmed: '1' }],
  ];
  for (const [path, fields] of posts) {
    t.equal((await app.request(path, form(fields, { cookie }))).status, 403, `${path}: no token`);
    t.equal((await app.request(path, form({ ...fields, csrf }, { cookie, origin: 'https://evil.example' }))).status, 403, `${path}: another origin`);
  }
  t.same(await sql`select id, url, description, enabled, secret, circuit_state from outbox_subscriptions order by id`, before, 'no subscription changed');
  t.same(await sql`select id, status from deliveries order by id`, deliveries, 'no delivery changed');
});

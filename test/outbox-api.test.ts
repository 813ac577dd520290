// The outbox's API through app.request(): subscriptions (create with a generated secret shown once,
// header values never shown, change, disable and enable, rotate, delete keeping history), the SSRF
// refusal of private addresses, deliveries listed with their attempts, the dead-letter queue's
// replay (and the /dlqs aliases), statistics, and bad input to every route: 400 naming the field.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { Webhook } from 'standardwebhooks';
import { root } from '../scripts/lib/service.ts';
import { buildStream } from '../scripts/lib/stream.ts';
import { ConfigError } from '../src/config.ts';
import { purgeOutbox } from '../src/db/retention.ts';
import { testApp, testConfig } from './helpers/app.ts';
import { createTestDatabase } from './helpers/db.ts';
import { drain, storeEvents } from './helpers/fold.ts';

const TOKEN = 'admin-token-0123456789abcdef';
const db = await createTestDatabase(t);
const sql = db.sql;
const app = testApp(sql, { ADMIN_TOKEN: TOKEN, OUTBOX_ALLOW_NETWORKS: '127.0.0.0/8', OUTBOX_ALLOW_HTTP: 'true' });
const strict = testApp(sql, { ADMIN_TOKEN: TOKEN });
const auth = { authorization: `Bearer ${TOKEN}` };

const call = (method: string, path: string, body?: unknown, on = app) =>
  on.request(path, {
    method,
    headers: { ...auth, 'content-type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });

async function json(res: Response): Promise<any> {
  return res.json();
}

t.test('without the bearer token every outbox route answers 401', async (t) => {
  for (const [method, path] of [
    ['GET', '/subscriptions'], ['POST', '/subscriptions'], ['GET', '/stats'], ['GET', '/deliveries'],
    ['POST', '/deliveries/replay'], ['GET', '/dlqs'], ['POST', '/dlqs'],
  ] as const) {
    t.equal((await app.request(path, { method })).status, 401, `${method} ${path}`);
  }
});

t.test('register, read, change, rotate and delete a subscription', async (t) => {
  const res = await call('POST', '/subscriptions', {
    url: 'http://127.0.0.1:9/hooks',
    description: 'billing',
    types: ['invoice.*', 'customer.created'],
    headers: { Authorization: 'Bearer their-own-credential' },
  });
  t.equal(res.status, 201);
  const created = await json(res);
  t.match(created, { id: /^ep_[0-9a-f]{24}$/, url: 'http://127.0.0.1:9/hooks', types: ['invoice.*', 'customer.created'], header_names: ['Authorization'], enabled: true, circuit: { state: 'closed' } });
  t.match(created.secret, /^whsec_/, 'a generated secret, shown at creation');
  t.doesNotThrow(() => new Webhook(created.secret).sign('msg_1', new Date(), '{}'), 'a secret the standardwebhooks package accepts');

  const got = await json(await call('GET', `/subscriptions/${created.id}`));
  t.notOk('secret' in got, 'the secret is not shown again');
  t.notOk(JSON.stringify(got).includes('their-own-credential'), 'header values are never returned');
  t.match(got, { circuit: { state: 'closed', transitions: [] }, stats: { pending: 0, last_hour: { delivered: 0 }, last_day: { dead: 0 } } });
  t.notOk(JSON.stringify(await json(await call('GET', '/subscriptions'))).includes('their-own-credential'));

  t.match(await json(await call('PATCH', `/subscriptions/${created.id}`, { enabled: false })), { enabled: false, disabled_reason: 'by_request' });
  t.match(await json(await call('PATCH', `/subscriptions/${created.id}`, { enabled: true, types: null })), { enabled: true, disabled_reason: null, types: null });

  const rotated = await json(await call('POST', `/subscriptions/${created.id}/rotate-secret`));
  t.match(rotated.secret, /^whsec_/);
  t.not(rotated.secret, created.secret);
  t.ok(Date.parse(rotated.previous_secret_expires_at) > Date.now() + 23 * 3600_000, 'the old secret signs beside it for 24 h');
  const [row] = await sql`select secret, previous_secret from outbox_subscriptions where id = ${created.id}`;
  t.same([row!.secret, row!.previous_secret], [rotated.secret, created.secret]);

  t.same(await json(await call('DELETE', `/subscriptions/${created.id}`)), { id: created.id, deleted: true });
  t.equal((await call('DELETE', `/subscriptions/${created.id}`)).status, 404, 'deleted once');
  t.notOk((await json(await call('GET', '/subscriptions'))).items.some((s: any) => s.id === created.id), 'no longer listed');
  t.match(await json(await call('GET', `/subscriptions/${created.id}`)), { deleted_at: String, enabled: false }, 'its record stays');
});

t.test('a URL that resolves to a non-public address is refused, and http unless allowed', async (t) => {
  for (const url of ['https://127.0.0.1/hooks', 'https://10.1.2.3/hooks', 'https://169.254.169.254/latest', 'https://[::1]/x', 'https://100.64.0.1/x', 'https://localhost/x']) {
    const res = await call('POST', '/subscriptions', { url }, strict);
    t.equal(res.status, 400, url);
    t.match(await json(res), { parameter: 'url', error: /url: .*(address|resolves)/ }, url);
  }
  const http = await json(await call('POST', '/subscriptions', { url: 'http://example.com/hooks' }, strict));
  t.match(http, { parameter: 'url', error: /https only|OUTBOX_ALLOW_HTTP/ });
  t.same(await sql`select id from outbox_subscriptions where url like '%169.254%' or url like '%10.1.2.3%'`, [], 'nothing stored');
});

t.test('bad input to every route answers 400 naming the field', async (t) => {
  const id = (await json(await call('POST', '/subscriptions', { url: 'http://127.0.0.1:9/x' }))).id;
  const cases: [string, string, unknown, string][] = [
    ['POST', '/subscriptions', {}, 'url'],
    ['POST', '/subscriptions', { url: 'not a url' }, 'url'],
    ['POST', '/subscriptions', { url: 'ftp://127.0.0.1/x' }, 'url'],
    ['POST', '/subscriptions', { url: 'http://user:pw@127.0.0.1/x' }, 'url'],
    ['POST', '/subscriptions', { url: 'http://127.0.0.1/x', types: ['Invoice Paid'] }, 'types'],
    ['POST', '/subscriptions', { url: 'http://127.0.0.1/x', types: [] }, 'types'],
    ['POST', '/subscriptions', { url: 'http://127.0.0.1/x', headers: { 'webhook-id': 'x' } }, 'headers'],
    ['POST', '/subscriptions', { url: 'http://127.0.0.1/x', headers: { 'bad name': 'x' } }, 'headers'],
    ['POST', '/subscriptions', { url: 'http://127.0.0.1/x', headers: { 'X-A': 'line\nbreak' } }, 'headers'],
    ['POST', '/subscriptions', { url: 'http://127.0.0.1/x', secret: 'hunter2' }, 'secret'],
    ['POST', '/subscriptions', { url: 'http://127.0.0.1/x', colour: 'blue' }, 'colour'],
    ['POST', '/subscriptions', '[1,2]', 'body'],
    ['POST', '/subscriptions', '{not json', 'body'],
    ['GET', '/subscriptions/nope', undefined, 'id'],
    ['PATCH', `/subscriptions/${id}`, {}, 'body'],
    ['PATCH', `/subscriptions/${id}`, { enabled: 'yes' }, 'enabled'],
    ['PATCH', `/subscriptions/${id}`, { url: 'https://10.0.0.1/' }, 'url'],
    ['POST', `/subscriptions/${id}/rotate-secret`, { secret: 'whsec_short' }, 'secret'],
    ['POST', `/subscriptions/${id}/recover`, {}, 'since'],
    ['POST', `/subscriptions/${id}/recover`, { since: 'yesterday' }, 'since'],
    ['POST', `/subscriptions/${id}/recover`, { since: '1h', until: '2h' }, 'until'],
    ['GET', '/deliveries?status=LOST', undefined, 'status'],
    ['GET', '/deliveries?limit=0', undefined, 'limit'],
    ['GET', '/deliveries?cursor=abc', undefined, 'cursor'],
    ['GET', '/deliveries?subscription=ep_x', undefined, 'subscription'],
    ['GET', '/deliveries?from=2024-13-45', undefined, 'from'],
    ['GET', '/deliveries?sort=asc', undefined, 'sort'],
    ['GET', '/deliveries/abc', undefined, 'id'],
    ['POST', '/deliveries/replay', {}, 'body'],
    ['POST', '/deliveries/replay', { ids: [] }, 'ids'],
    ['POST', '/deliveries/replay', { ids: ['x'] }, 'ids'],
    ['POST', '/deliveries/replay', { status: 'GONE' }, 'status'],
    ['GET', '/dlqs?skip=-1', undefined, 'skip'],
    ['GET', '/dlqs?limit=100000', undefined, 'limit'],
    ['POST', '/dlqs', { dlqs: [] }, 'dlqs'],
    ['POST', '/dlqs', { ids: ['1'] }, 'ids'],
  ];
  for (const [method, path, body, field] of cases) {
    const res = await call(method, path, body);
    const answer = await json(res);
    t.equal(res.status, 400, `${method} ${path} ${JSON.stringify(body)}: ${answer.error}`);
    if (field === 'body' && answer.parameter !== 'body') t.match(answer.error, /give|body/, `${method} ${path}: says what to give`);
    else t.equal(answer.parameter, field, `${method} ${path} ${JSON.stringify(body)} names ${field}`);
  }
});

t.test('deliveries: listed with their attempts, one looked up, the dead-letter queue replayed', async (t) => {
  await sql`truncate outbox_subscriptions, outbox_messages, deliveries, delivery_attempts, delivery_streams, circuit_transitions`;
  const sub = await json(await call('POST', '/subscriptions', { url: 'http://127.0.0.1:9/x', types: ['customer.*'] }));
  await storeEvents(sql, buildStream({ seed: 41, customers: 2 }));
  // Folded without a relay: the deliveries wait.
  await drain(sql, { env: { OUTBOX_CONCURRENCY: '0' } });
  const [{ n }] = (await sql`select count(*)::int as n from deliveries where subscription_id = ${sub.id}`) as any;
  t.ok(n >= 2, `${n} deliveries of customer changes`);
  const types = (await sql`select distinct type from outbox_messages`).map((r) => r.type as string);
  t.ok(types.length > 0 && types.every((x) => x.startsWith('customer.')), `only the types it wants: ${types.join(', ')}`);

  const [dead] = await sql`select id::text as id from deliveries order by id limit 1`;
  await sql`update deliveries set status = 'DEAD', attempts = 10, finished_at = now(), last_attempt_at = now(), last_error = 'answered 500' where id = ${dead!.id}`;
  await sql`insert into delivery_attempts (delivery_id, attempt, attempted_at, duration_ms, status_code, outcome, error, response_body)
            values (${dead!.id}, 10, now(), 12, 500, 'http', 'answered 500', 'oops')`;

  const page1 = await json(await call('GET', `/deliveries?subscription=${sub.id}&limit=1`));
  t.equal(page1.items.length, 1);
  t.ok(page1.next_cursor);
  const page2 = await json(await call('GET', `/deliveries?subscription=${sub.id}&limit=1000&cursor=${page1.next_cursor}`));
  t.equal(page1.items.length + page2.items.length, n, 'two pages hold them all');
  t.ok(BigInt(page1.items[0].id) > BigInt(page2.items[0].id), 'newest first');
  const listed = await json(await call('GET', '/deliveries?status=DEAD'));
  t.match(listed.items, [{ id: dead!.id, status: 'DEAD', attempts: [{ attempt: 10, status_code: 500, duration_ms: 12, error: 'answered 500', response_body: 'oops' }] }]);
  t.match(await json(await call('GET', `/deliveries/${dead!.id}`)), { id: dead!.id, message_id: /^msg_/, body: { data: { object: 'customer' } } });
  t.equal((await call('GET', '/deliveries/999999999')).status, 404);

  t.match(await json(await call('GET', '/dlqs?skip=0&limit=100')), { dlqs: [{ id: dead!.id }] });
  t.match(await json(await call('POST', '/deliveries/replay', { status: 'DEAD', dry_run: true })), { dry_run: true, matched: 1, sample: [{ id: dead!.id }] });
  t.equal((await sql`select status from deliveries where id = ${dead!.id}`)[0]!.status, 'DEAD', 'a dry run changes nothing');
  t.match(await json(await call('POST', '/dlqs', { dlqs: [dead!.id] })), { replayed: 1, ids: [dead!.id] });
  t.match((await sql`select status, attempts from deliveries where id = ${dead!.id}`)[0], { status: 'PENDING', attempts: 0 }, 'pending again, attempts afresh');
  t.match(await json(await call('POST', '/deliveries/replay', { ids: [dead!.id] })), { replayed: 0 }, 'a pending one is not replayed');

  await sql`update deliveries set status = 'FAILED', last_attempt_at = now() - interval '2 hours' where id = ${dead!.id}`;
  t.match(await json(await call('POST', `/subscriptions/${sub.id}/recover`, { since: '1h' })), { recovered: 0 }, 'outside the window');
  t.match(await json(await call('POST', `/subscriptions/${sub.id}/recover`, { since: '3h', until: '1h' })), { recovered: 1 });

  const stats = await json(await call('GET', '/stats'));
  t.match(stats, { pending: n, oldest_pending_age_s: Number, last_hour: { delivered: 0, failed_attempts: 1 }, last_day: { success_rate: 0 } });
  t.match(await json(await call('GET', `/subscriptions/${sub.id}/stats`)), { pending: n });
});

t.test('the outbox routes are in /openapi.json', async (t) => {
  const doc = await json(await app.request('/openapi.json'));
  for (const p of ['/subscriptions', '/subscriptions/{id}/recover', '/deliveries/replay', '/dlqs', '/stats']) t.ok(doc.paths[p], p);
});

t.test('the outbox\'s SQL recipes (docs/outbox.md) run against these tables', async (t) => {
  const section = await readFile(path.join(root, 'docs/outbox.md'), 'utf8');
  const recipes = [...section.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
  t.ok(recipes.length >= 3, `${recipes.length} recipes`);
  const [d] = await sql`select id::text as id, subscription_id, object_id from deliveries order by id limit 1`;
  for (const recipe of recipes) {
    const text = recipe
      .replaceAll('ep_0123456789abcdef01234567', d!.subscription_id)
      .replaceAll("'in_1Abc'", `'${d!.object_id}'`)
      .replaceAll('12345', d!.id);
    const rows = await sql.unsafe(text).catch((err: Error) => err);
    t.notOk(rows instanceof Error, `${recipe.split('\n')[0]}: ${rows instanceof Error ? rows.message : 'runs'}`);
    if (recipe.includes('about invoice Y') || recipe.startsWith('select d.id')) t.ok((rows as unknown[]).length > 0, 'what we sent: rows');
  }
});

t.test('retention purges finished deliveries, their attempts and messages; never a waiting one', async (t) => {
  const [old] = await sql`select id, message_id from deliveries order by id limit 1`;
  await sql`update deliveries set status = 'DELIVERED', finished_at = now() - interval '40 days' where id = ${old!.id}`;
  await sql`update outbox_messages set created_at = now() - interval '40 days' where id = ${old!.message_id}`;
  await sql`update deliveries set created_at = now() - interval '40 days' where status = 'PENDING'`;
  t.ok((await sql`select count(*)::int as n from deliveries where status = 'PENDING'`)[0]!.n > 0, 'some wait');
  const waitingBefore = (await sql`select count(*)::int as n from deliveries where status = 'PENDING'`)[0]!.n;
  const purged = await purgeOutbox(sql, { olderThanDays: 30, batchSize: 10 });
  t.equal(purged.deliveries, 1);
  t.same(await sql`select id from deliveries where id = ${old!.id}`, []);
  t.same(await sql`select id from delivery_attempts where delivery_id = ${old!.id}`, [], 'its attempts went with it');
  const shared = (await sql`select count(*)::int as n from deliveries where message_id = ${old!.message_id}`)[0]!.n;
  t.equal((await sql`select count(*)::int as n from outbox_messages where id = ${old!.message_id}`)[0]!.n, shared > 0 ? 1 : 0, 'the message goes once no delivery needs it');
  t.equal((await sql`select count(*)::int as n from deliveries where status = 'PENDING'`)[0]!.n, waitingBefore, 'waiting deliveries stay');
});

t.test('a bad outbox setting stops the service naming the variable', async (t) => {
  const err = (() => {
    try {
      testConfig({ OUTBOX_ALLOW_NETWORKS: '10.0.0.0/33', OUTBOX_RETRY_SCHEDULE: '5s,soon', OUTBOX_DISABLE_AFTER: 'forever' });
    } catch (e) {
      return e as ConfigError;
    }
  })();
  t.type(err, ConfigError);
  const problems = err!.problems.join('\n');
  t.match(problems, /OUTBOX_ALLOW_NETWORKS: '10\.0\.0\.0\/33' is not a network/);
  t.match(problems, /OUTBOX_RETRY_SCHEDULE: retry schedule entry 2 \('soon'\)/);
  t.match(problems, /OUTBOX_DISABLE_AFTER: expected a duration/);
  t.throws(() => testConfig({ OUTBOX_TIMEOUT_MS: '60000' }), /OUTBOX_LEASE_S: must be at least OUTBOX_TIMEOUT_MS \+ 5 s \(65\)/);
});

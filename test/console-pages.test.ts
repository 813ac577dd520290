// What the console's pages show, through app.request() against a real database holding a
// realistic stream folded by the real workers: the overview's numbers, the events filters and
// pages, following new events, one event's fold result, an object's parents, children, waiting
// links and timeline, the orphans, and bulk replay.
import t from 'tap';
import { minuteSeries } from '../src/db/console.ts';
import { buildStream } from '../scripts/lib/stream.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { createTestDatabase } from './helpers/db.ts';
import { seedEvent } from './helpers/events.ts';
import { drain, storeEvents, type Ev } from './helpers/fold.ts';
import { consoleApp, csrfToken, form, getPage, signIn } from './helpers/console.ts';

const db = await createTestDatabase(t);
const app = consoleApp(db.sql);
const cookie = await signIn(app);
const page = (path: string) => getPage(app, cookie, path);

// A realistic stream, without one customer's own events: its invoices and subscriptions wait for it.
const stream = buildStream({ seed: 42, customers: 4 }) as unknown as Ev[];
const missing = stream.find((e) => e.type === 'customer.created')!.data.object.id as string;
await storeEvents(db.sql, stream.filter((e) => !(e.data.object.object === 'customer' && e.data.object.id === missing)));
await drain(db.sql);
const failed = await seedEvent(db.sql, { type: 'invoice.paid', status: 'FAILED', lastError: 'statement timeout', attempts: 8, age: '10 minutes' });

/** Text between tags, for readable assertions. */
const text = (html: string) => html.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');
const rowsOf = (html: string) => [...html.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => text(m[1]!));

t.test('overview: failures and since when, the backlog, pending links, and the charts with their numbers', async (t) => {
  const [pending] = await db.sql`select count(*)::int as n from pending_links`;
  t.ok(pending!.n > 0, 'the missing customer left links waiting');
  const { status, html } = await page('/console');
  t.equal(status, 200);
  const body = text(html);
  t.match(body, /Failed 1 since 10 min ago/);
  t.match(body, /Waiting to be folded 0 none/);
  t.match(body, new RegExp(`Pending links ${pending!.n} oldest waits`));
  const received = stream.length - stream.filter((e) => e.data.object.object === 'customer' && e.data.object.id === missing).length + 1;
  t.match(body, new RegExp(`received: ${received.toLocaleString('en-US')} in all`), 'the hour counts every delivery received');
  t.equal([...html.matchAll(/data-chart="/g)].length, 4, 'four charts for the hour');
  // The day is read in the background, and shown once it has been.
  let day = '';
  await waitFor(async () => (day = (await page('/console')).html).includes('Last 24 hours') && /day-received/.test(day), { what: "the day's charts" });
  t.equal([...day.matchAll(/data-chart="/g)].length, 8, 'and four for the day');
  t.match(text(day), /Processed \d+ counted/, 'the finished events, counted in the background too');
  const spec = JSON.parse(/data-chart="([^"]+)"/.exec(html)![1]!.replaceAll('&quot;', '"'));
  t.equal(spec.x.length, 60, 'one point a minute over the hour');
});

t.test('minuteSeries: counts per minute, and the backlog worked back from now', async (t) => {
  const s = await minuteSeries(db.sql, 10, 3);
  t.equal(s.minutes.length, 10);
  t.equal(s.backlog.at(-1), 3, 'the last minute ends with the backlog now');
  const received = s.received.reduce((a, b) => a + b, 0);
  const folded = s.folded.reduce((a, b) => a + b, 0);
  t.ok(received > 0 && folded > 0);
  // Before the window everything here had not arrived yet: the backlog then is now's, less what arrived, plus what was folded.
  t.equal(s.backlog[0]! - s.received[0]! + s.folded[0]!, Math.max(0, 3 - received + folded + (s.received[0]! - s.folded[0]!) - (s.received[0]! - s.folded[0]!)));
});

t.test('events: filters as the admin API has them, keyset pages, and a bad filter named', async (t) => {
  const failedPage = await page('/console/events?status=FAILED');
  t.equal(failedPage.status, 200);
  const rows = rowsOf(failedPage.html).slice(1);
  t.equal(rows.length, 1);
  t.match(rows[0], new RegExp(`${failed.event_id} invoice.paid stripe FAILED 8 statement timeout`));

  const invoices = rowsOf((await page('/console/events?type=invoice.*')).html).slice(1);
  t.ok(invoices.length > 0);
  t.ok(invoices.every((r) => / invoice\./.test(r)), 'only invoice.* types');

  const first = await page('/console/events?source=stripe');
  const next = /href="([^"]*cursor=[^"]+)"/.exec(first.html)?.[1]?.replaceAll('&amp;', '&');
  t.ok(next, 'an older page');
  const second = await page(next!);
  const ids = (html: string) => [...html.matchAll(/\/console\/events\/(\d+)"/g)].map((m) => m[1]);
  const firstIds = ids(first.html);
  const secondIds = ids(second.html);
  t.equal(firstIds.length, 50);
  t.same(firstIds.filter((id) => secondIds.includes(id)), [], 'no row on both pages');
  t.ok(Number(secondIds[0]) < Number(firstIds.at(-1)), 'older');

  const bad = await page('/console/events?from=yesterday');
  t.equal(bad.status, 400);
  t.match(text(bad.html), /from: expected an ISO-8601 time/);
  t.match(bad.html, /name="from" value="yesterday"/, 'the form keeps what was typed');
});

t.test('following: a poll shows what arrived after the rows on screen, once', async (t) => {
  // Everything so far arrived an hour ago: settled.
  await db.sql`update events set received_at = received_at - interval '1 hour'`;
  const { html } = await page('/console/events?follow=1');
  const poll = /id="follow" hx-get="([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
  t.ok(poll, 'the follow row polls');
  // Settled events only move the cursor; one received 5 s ago and one now.
  const older = await seedEvent(db.sql, { type: 'customer.updated', age: '5 seconds' });
  const now = await seedEvent(db.sql, { type: 'customer.updated' });
  const first = await page(poll!);
  t.equal(first.status, 200);
  t.ok(first.html.includes(older.event_id) && first.html.includes(now.event_id), 'both new events shown');
  const again = /id="follow" hx-get="([^"]+)"/.exec(first.html)![1]!.replaceAll('&amp;', '&');
  const second = await page(again);
  t.notOk(second.html.includes(older.event_id), 'a settled event is not shown twice');
  t.notOk(second.html.includes(now.event_id), 'nor an unsettled one, which the poll fetched again');
  // An event whose commit came late, behind the unsettled one: found by the next poll.
  const late = await seedEvent(db.sql, { type: 'customer.updated', age: '1 second' });
  const third = await page(again);
  t.ok(third.html.includes(late.event_id), 'the late one appears');
});

t.test('one event: what the fold did, as links, and what it parked', async (t) => {
  const [ev] = await db.sql<{ id: string; event_id: string }[]>`
    select id::text, event_id from events
     where type like 'invoice.%' and object_customer = ${missing}
       and result -> 'parked' @> ${JSON.stringify([{ link_column: 'customer_id', parent_id: missing }])}::text::jsonb
     limit 1`;
  const { status, html } = await page(`/console/events/${ev!.id}`);
  t.equal(status, 200);
  const body = text(html);
  t.match(body, /invoice\./);
  t.match(body, /PROCESSED/);
  t.match(html, /href="\/console\/objects\/in_[^"]+">in_/, 'the invoice it wrote, as a link');
  t.match(body, new RegExp(`customer_id → ${missing} still waits`), 'the link it parked still waits');
  t.match(html, /<details open="">/, 'the payload folds');
  t.equal((await page(`/console/events/stripe:${ev!.event_id}`)).status, 200, 'also by source:event_id');
  t.equal((await page(`/console/events/${ev!.event_id}`)).status, 200, 'and by evt_ id');
  t.equal((await page('/console/events/999999999')).status, 404);
  t.equal((await page('/console/events/not-a-ref')).status, 400);
});

t.test('an object: its row, parents, children, waiting links and timeline with the snapshot that won', async (t) => {
  const [sub] = await db.sql<{ id: string; customer_id: string; last_event_id: string }[]>`
    select id, customer_id, last_event_id from subscriptions where customer_id is not null limit 1`;
  const { status, html } = await page(`/console/objects/${sub!.id}`);
  t.equal(status, 200);
  const body = text(html);
  t.match(body, new RegExp(`subscription ${sub!.id}`));
  t.match(html, new RegExp(`customer_id</span>: <a class="mono" href="/console/objects/${sub!.customer_id}"`), 'parent link');
  t.match(body, /subscription_items\.subscription_id \(\d+\)/, 'children: its items');
  const timeline = rowsOf(html.slice(html.indexOf('<h2>Timeline')));
  t.ok(timeline.length >= 2, 'several events');
  const current = timeline.filter((r) => r.includes('current'));
  t.equal(current.length, 1, 'one snapshot won');
  t.match(current[0], sub!.last_event_id);

  // An item: it has no event of its own; the subscription events that wrote it are its timeline.
  const [item] = await db.sql<{ id: string }[]>`select id from subscription_items limit 1`;
  const itemPage = await page(`/console/objects/${item!.id}`);
  t.match(text(itemPage.html), /customer\.subscription\.created .* created → v1/);

  // The missing customer has no row, but its children wait for it.
  const none = await page(`/console/objects/${missing}`);
  t.equal(none.status, 404);
  t.match(text(none.html), /Children waiting for it/);

  const [inv] = await db.sql<{ id: string }[]>`select id from invoices where customer_id is null limit 1`;
  const waiting = text((await page(`/console/objects/${inv!.id}`)).html);
  t.match(waiting, new RegExp(`customer_id : waits for ${missing} since`));

  const find = await app.request(`/console/objects?id=${encodeURIComponent(` ${sub!.id} `)}`, { headers: { cookie } });
  t.equal(find.headers.get('location'), `/console/objects/${sub!.id}`, 'the search box goes to the object');
  const findEvent = await app.request(`/console/objects?id=${failed.event_id}`, { headers: { cookie } });
  t.equal(findEvent.headers.get('location'), `/console/events/${failed.event_id}`, 'or to an event');
  t.equal((await page('/console/objects/a%20b')).status, 400);
});

t.test('orphans: pending links by age, with the event that parked them', async (t) => {
  const { html } = await page('/console/orphans');
  const [n] = await db.sql`select count(*)::int as n from pending_links`;
  t.match(text(html), new RegExp(`${n!.n} links wait`));
  const rows = rowsOf(html).slice(1);
  t.equal(rows.length, n!.n);
  t.ok(rows.every((r) => r.includes(missing)));
  t.match(html, /href="\/console\/events\/\d+"/, 'the parking event, as a link');
});

t.test('bulk replay: the confirmation counts, the POST replays exactly those', async (t) => {
  const confirm = await page('/console/events/replay?status=FAILED');
  t.match(text(confirm.html), /Replay 1 events\?/);
  t.match(confirm.html, /name="status" value="FAILED"/);
  const everything = await page('/console/events/replay');
  t.equal(everything.status, 400, 'an empty filter is not offered');
  const csrf = await csrfToken(app, cookie);
  const res = await app.request('/console/events/replay', form({ csrf, status: 'FAILED' }, { cookie }));
  t.equal(res.status, 303);
  t.match(res.headers.get('location'), /replayed=1/);
  const [row] = await db.sql`select status, attempts from events where id = ${failed.id}`;
  t.same({ ...row }, { status: 'RECEIVED', attempts: 0 });
  const [others] = await db.sql`select count(*)::int as n from events where status = 'RECEIVED'`;
  t.equal(others!.n, 1, 'nothing else');
});

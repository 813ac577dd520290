// `npm run bench:console`: how fast each console page answers on a database of a million events.
//   1. fill: a realistic Stripe stream folded by the real workers (scripts/lib/console-seed.ts),
//      then its events copied by SQL (new event and object ids, arrival spread over 30 days, 0.3%
//      FAILED) up to --events; skipped when the database already has that many
//      (with one subscriber, so the outbox's pages have deliveries to show)
//   2. time: the service started as users run it (ROLE=api, so nothing folds meanwhile), signed in
//      through /console/signin, each page fetched --rounds times one after another over real HTTP
// Prints one table: p50, p95 and max in ms, and the page's size. Use DATABASE_URL to keep the
// filled database between runs; by default it fills a fresh embedded Postgres.
import { parseArgs } from 'node:util';
import { connect } from '../src/db/client.ts';
import { listEvents } from '../src/db/event-lookup.ts';
import { migrate } from '../src/db/migrate.ts';
import { benchDatabase, percentile, printTable } from './bench-lib.ts';
import { seedConsoleData } from './lib/console-seed.ts';
import { startService } from './lib/service.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    rounds: { type: 'string', default: '30' },
    days: { type: 'string', default: '30' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log(`usage: npm run bench:console -- [--events N] [--rounds N] [--days N]

  --events N   events in the database before timing (default 1000000)
  --rounds N   requests per page, after 3 not counted (default 30)
  --days N     the copies' arrival times are spread over this many days (default 30, RETENTION_DAYS)

DATABASE_URL=postgres://... fills (once) and times that database instead of a fresh embedded one.`);
  process.exit(0);
}
const target = Number(args.events);
const rounds = Number(args.rounds);
const days = Number(args.days);
const progress = (msg: string) => process.stderr.write(`bench:console: ${msg}\n`);

const db = await benchDatabase();
progress(`database: ${db.label}`);
const sql = connect(db.url, { max: 4, statementTimeoutMs: 0, connectTimeoutMs: 5000 });
await migrate(sql);

// ---- 1. fill ----------------------------------------------------------------------------------------
const eventCount = async () => Number((await sql`select count(*)::bigint as n from events`)[0]!.n);
let have = await eventCount();
if (have < target) {
  if (have === 0) {
    const started = Date.now();
    const seeded = await seedConsoleData(sql, db.url, { customers: 120, subscriber: true });
    progress(`folded a realistic stream of ${seeded} events in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    have = await eventCount();
  }
  const original = sql`select count(*)::bigint as n from events where event_id not like '%\\_copy%'`;
  const base = Number((await original)[0]!.n);
  const started = Date.now();
  // Copies of the folded events with new event ids and object ids: every object keeps a timeline
  // of realistic length, and the payloads keep Stripe's sizes (and so their TOAST compression).
  for (let copy = 1 + Math.ceil((have - base) / base); have < target; ) {
    const copies = Math.max(1, Math.min(50, Math.ceil((target - have) / base)));
    await sql`
      insert into events (source, event_id, type, api_version, account, livemode, created, payload, received_at,
                          status, attempts, next_attempt_at, processed_at, last_error, result)
      select source, event_id || '_copy' || g, type, api_version, account, livemode, at - interval '2 s',
             jsonb_set(jsonb_set(payload, '{id}', to_jsonb(event_id || '_copy' || g)),
                       '{data,object,id}', to_jsonb(coalesce(payload #>> '{data,object,id}', 'x') || '_copy' || g)),
             at, status, attempts, at, at + interval '150 ms',
             case when status = 'FAILED' then coalesce(last_error, 'canceling statement due to statement timeout') end, result
        from (
          select b.source, b.event_id, b.type, b.api_version, b.account, b.livemode, b.payload, b.attempts,
                 b.last_error, b.result, g, now() - random() * make_interval(days => ${days}) as at,
                 case when b.status = 'RECEIVED' then 'PROCESSED' when random() < 0.003 then 'FAILED' else b.status end as status
            from events b, generate_series(${copy}::int, ${copy + copies - 1}::int) g
           where b.event_id not like '%\\_copy%'
           limit ${target - have}
        ) s
      on conflict (source, event_id) do nothing`;
    copy += copies;
    have = await eventCount();
    progress(`${have} events (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  }
  progress('vacuum analyze');
  await sql`vacuum analyze events`;
  await sql`vacuum analyze pending_links`;
}
progress(`${have} events`);

// ---- 2. time -------------------------------------------------------------------------------------------
const token = 'console-bench-token-0123456789';
const service = await startService(db.url, { ADMIN_TOKEN: token, ROLE: 'api', LOG_LEVEL: 'warn' });
try {
  const signin = await fetch(`${service.url}/console/signin`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: service.url },
    body: new URLSearchParams({ token, next: '/console' }),
  });
  const cookie = signin.headers.get('set-cookie')?.split(';')[0];
  if (signin.status !== 303 || !cookie) throw new Error(`sign-in answered ${signin.status}`);

  const [richEvent] = await sql<{ id: string }[]>`
    select id::text from events where status = 'PROCESSED' and jsonb_array_length(result -> 'objects') >= 3
     order by received_at desc limit 1`;
  const [customer] = await sql<{ id: string }[]>`
    select c.id from customers c join invoices i on i.customer_id = c.id group by c.id order by count(*) desc limit 1`;
  const [item] = await sql<{ id: string }[]>`select id from subscription_items order by id limit 1`;
  const [invoice] = await sql<{ id: string }[]>`select id from invoices order by id limit 1`;
  const [orphan] = await sql<{ child_id: string }[]>`select child_id from pending_links order by since limit 1`;
  const older = await listEvents(sql, {}, { limit: 50 });

  const pages: [string, string, number?][] = [
    ['overview', '/console'],
    ['events, newest 50', '/console/events'],
    ['events, second page', `/console/events?cursor=${older.next_cursor}`],
    ['events, FAILED', '/console/events?status=FAILED'],
    ['events, invoice.* in the last 24 h', '/console/events?type=invoice.*&from=24h'],
    ['events, following (first page)', '/console/events?follow=1'],
    ['events, a follow poll', `/console/events/follow?after=${older.next_cursor}`],
    ['replay FAILED: confirmation (counts them)', '/console/events/replay?status=FAILED'],
    ['event', `/console/events/${richEvent!.id}`],
    ['event: replay confirmation', `/console/events/${richEvent!.id}/replay`],
    ['object: customer', `/console/objects/${customer!.id}`],
    ['object: invoice', `/console/objects/${invoice!.id}`],
    ['object: subscription item (embedded)', `/console/objects/${item!.id}`],
    ['object: an orphan', `/console/objects/${orphan?.child_id ?? invoice!.id}`],
    ['object: unknown id (404)', '/console/objects/cus_doesnotexist', 404],
    ['orphans', '/console/orphans'],
  ];
  // The outbox's pages, on the seed's subscriber (its deliveries come from the folded stream only:
  // the copies above are events, not changes the relay sent).
  const [sub] = await sql<{ id: string }[]>`select id from outbox_subscriptions order by created_at limit 1`;
  const [delivery] = await sql<{ id: string }[]>`select id::text from deliveries order by attempts desc, id desc limit 1`;
  if (sub && delivery) {
    pages.push(
      ['subscriptions', '/console/subscriptions'],
      ['subscription (stats, charts, recent)', `/console/subscriptions/${sub.id}`],
      ['deliveries, newest 50', '/console/deliveries'],
      ['dead letters and failed', '/console/deliveries?status=DEAD&status=FAILED'],
      ['delivery (attempts)', `/console/deliveries/${delivery.id}`],
      ['replay FAILED deliveries: confirmation', '/console/deliveries/replay?status=FAILED'],
    );
  } else {
    progress('no subscription in this database: the outbox pages are not timed');
  }
  const rows: Record<string, string | number>[] = [];
  for (const [name, path, expected = 200] of pages) {
    const times: number[] = [];
    let bytes = 0;
    for (let i = 0; i < rounds + 3; i++) {
      const t0 = performance.now();
      const res = await fetch(service.url + path, { headers: { cookie } });
      const body = await res.arrayBuffer();
      const ms = performance.now() - t0;
      if (res.status !== expected) throw new Error(`${path} answered ${res.status}`);
      bytes = body.byteLength;
      if (i >= 3) times.push(ms);
    }
    times.sort((a, b) => a - b);
    rows.push({
      page: name,
      'p50 ms': percentile(times, 50).toFixed(1),
      'p95 ms': percentile(times, 95).toFixed(1),
      'max ms': times.at(-1)!.toFixed(1),
      KB: (bytes / 1024).toFixed(0),
    });
  }
  console.log(`\nconsole pages on ${have.toLocaleString('en-US')} events, ${rounds} requests each, one at a time (${db.label})\n`);
  printTable(rows);
} finally {
  await service.stop();
  await sql.end();
  await db.stop();
}

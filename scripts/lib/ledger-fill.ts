// Fills `events` with a long-lived ledger by SQL, for the bench's ledger phase: millions of rows in
// minutes, not hours of HTTP. Every row is a copy of a real event of scripts/lib/stream.ts (its
// payload and the result its real fold wrote) with fresh ids. Writes only the database it is given.
import { connect } from '../../src/db/client.ts';
import { insertEvents } from '../../src/db/import.ts';
import { buildStream } from './stream.ts';
import { startService } from './service.ts';

/** The 6 characters every id of the template stream carries (its seed in base62, stream.ts). */
const TEMPLATE_TOKEN = '1Wq8Kz';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const TEMPLATE_SEED = [...TEMPLATE_TOKEN].reduce((n, c) => n * 62 + BASE62.indexOf(c), 0);

export type LedgerFill = {
  /** Rows stored. */
  rows: number;
  /** Distinct template events (one stream folded for real). */
  templates: number;
  /** Seconds: fold the templates, copy, build the indexes, VACUUM ANALYZE. */
  seconds: { templates: number; copy: number; indexes: number; vacuum: number };
  /** pg_total_relation_size('events') and of its indexes, bytes. */
  tableBytes: number;
  indexBytes: number;
};

export type LedgerOptions = {
  databaseUrl: string;
  serviceEnv: Record<string, string>;
  rows: number;
  /** received_at spreads evenly from this many days back (one more than retention keeps)... */
  days: number;
  /** ...to this many days back (default 0: now). The purge's baseline is one old day alone. */
  newestDaysAgo?: number;
  progress: (message: string) => void;
};

/**
 * Fills an empty, migrated database with `rows` events received over the last `days` days, as a
 * table a service has run on for that long would hold them:
 * - the payloads are the events of one realistic stream (customers, subscriptions, invoices,
 *   payments, refunds, disputes, payouts: stream.ts), each copy with its own ids (the stream's
 *   seed characters replaced by 6 others per copy), so object_id and object_customer, which
 *   Postgres computes from the payload, are as many and as spread as in life;
 * - the results are what folding that stream for real wrote (the service folds it first);
 * - statuses: 97.9% PROCESSED, 1.9% IGNORED, 0.18% FAILED (8 attempts, an error), and RECEIVED
 *   for 0.02% of the last hour (waiting out a retry backoff, due in a day, so no worker takes them);
 * - ids grow with received_at, as arrivals do, so the heap is in received_at order.
 * The indexes are dropped during the copy and built again from their own definitions (a copy
 * through them took ~4x as long), then VACUUM ANALYZE leaves the table as autovacuum would.
 */
export async function fillLedger(options: LedgerOptions): Promise<LedgerFill> {
  // Its own connection: building an index of millions of rows outlasts any statement timeout.
  const sql = connect(options.databaseUrl, { max: 2, statementTimeoutMs: 0, connectTimeoutMs: 5000, applicationName: 'bench-ledger-fill' });
  try {
    return await fill(sql, options);
  } finally {
    await sql.end();
  }
}

async function fill(sql: ReturnType<typeof connect>, options: LedgerOptions): Promise<LedgerFill> {
  const { progress } = options;
  const [existing] = await sql<{ n: number }[]>`select count(*)::int as n from (select 1 from events limit 1) x`;
  if (existing!.n > 0) throw new Error('fillLedger: events is not empty; it fills a fresh database only');

  // 1. One stream, stored and folded by the service as any events are: its results are real.
  let t0 = performance.now();
  const stream = buildStream({ seed: TEMPLATE_SEED, customers: 100 });
  for (let i = 0; i < stream.length; i += 500) {
    await insertEvents(
      sql,
      stream.slice(i, i + 500).map((e) => ({
        source: 'stripe', eventId: e.id, type: e.type, apiVersion: e.api_version, account: null,
        livemode: e.livemode, created: e.created, body: JSON.stringify(e),
      })),
    );
  }
  progress(`ledger: folding the ${stream.length} template events`);
  const folder = await startService(options.databaseUrl, { ...options.serviceEnv, WORKER_CONCURRENCY: '4', RETENTION_DAYS: '3650' });
  try {
    for (;;) {
      const [row] = await sql<{ left: boolean }[]>`select exists (select 1 from events where status = 'RECEIVED') as left`;
      if (!row!.left) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  } finally {
    await folder.stop();
  }
  await sql`drop table if exists bench_ledger_templates`;
  await sql`
    create unlogged table bench_ledger_templates as
    select (row_number() over (order by id) - 1)::int as n, event_id, type, api_version, livemode,
           payload::text as body, result::text as result
      from events where source = 'stripe' and status = 'PROCESSED'`;
  const [{ n: templates }] = (await sql`select count(*)::int as n from bench_ledger_templates`) as unknown as [{ n: number }];
  // The token must appear only inside ids: each copy's event id must differ from every other's.
  await sql`delete from events`;
  const templateSeconds = (performance.now() - t0) / 1000;

  // 2. The copy, with every index but the primary key dropped and its definition kept (a unique
  // one as the constraint it backs, re-added as such).
  const indexes = await sql<{ name: string; drop: string; create: string }[]>`
    select i.relname as name,
           case when c.conname is null then format('drop index %I', i.relname)
                else format('alter table events drop constraint %I', c.conname) end as drop,
           case when c.conname is null then pg_get_indexdef(i.oid)
                else format('alter table events add constraint %I %s', c.conname, pg_get_constraintdef(c.oid)) end as create
      from pg_index x join pg_class i on i.oid = x.indexrelid
      left join pg_constraint c on c.conindid = i.oid and c.conrelid = 'events'::regclass
     where x.indrelid = 'events'::regclass and not x.indisprimary`;
  for (const ix of indexes) await sql.unsafe(ix.drop);
  // Per copy of the stream, 6 characters: 'z' (no 32-bit seed's token starts with it, so a bench
  // stream never collides with a copy) and 5 more, a one-to-one scramble of the copy's number.
  const copies = Math.ceil(options.rows / templates);
  await sql`drop table if exists bench_ledger_copies`;
  await sql`
    create unlogged table bench_ledger_copies as
    select c as copy, 'z' || string_agg(substr(${BASE62}, ((c::bigint * 387420489 % 916132832) / (62::bigint ^ i)::bigint % 62)::int + 1, 1), '' order by i desc) as token
      from generate_series(0, ${copies - 1}) c, generate_series(0, 4) i group by c`;
  await sql`alter table bench_ledger_copies add primary key (copy)`;
  t0 = performance.now();
  const chunk = 100_000;
  const newest = `${options.newestDaysAgo ?? 0} days`;
  const span = `${options.days - (options.newestDaysAgo ?? 0)} days`;
  // Two statements at a time: one INSERT ... SELECT keeps only one core busy.
  let next = 0;
  let done = 0;
  const lane = async () => {
    for (;;) {
      const lo = next;
      if (lo >= options.rows) return;
      next += chunk;
      const hi = Math.min(options.rows, lo + chunk);
      await sql`
          insert into events (source, event_id, type, api_version, account, livemode, created, payload, received_at,
                              status, attempts, next_attempt_at, locked_by, processed_at, last_error, result, recovered_at)
          select 'stripe', replace(t.event_id, ${TEMPLATE_TOKEN}, c.token), t.type, t.api_version, null, t.livemode,
                 r.at - interval '1 second', replace(t.body, ${TEMPLATE_TOKEN}, c.token)::jsonb, r.at,
                 s.status,
                 case s.status when 'FAILED' then 8 when 'RECEIVED' then 2 else 1 end,
                 case s.status when 'RECEIVED' then now() + interval '1 day' else r.at + interval '200 milliseconds' end,
                 'bench-ledger:1:' || (g % 4),
                 case when s.status <> 'RECEIVED' then r.at + interval '200 milliseconds' end,
                 case when s.status in ('FAILED', 'RECEIVED') then 'fold failed: deadlock detected (ledger fill)' end,
                 case s.status
                   when 'PROCESSED' then replace(t.result, ${TEMPLATE_TOKEN}, c.token)::jsonb
                   when 'IGNORED' then '{"ignored": "type not folded (ledger fill)"}'::jsonb
                 end,
                 case when r.h % 2000 = 7 then r.at end
            from generate_series(${lo}::bigint, ${hi - 1}::bigint) g
            join bench_ledger_templates t on t.n = g % ${templates}
            join bench_ledger_copies c on c.copy = g / ${templates}
            cross join lateral (
              select now() - ${newest}::interval - ${span}::interval + (g::float8 / ${options.rows}) * ${span}::interval as at,
                     (g * 2654435761) % 10000 as h
            ) r
            cross join lateral (
              select case when r.h >= 9998 and r.at > now() - interval '1 hour' then 'RECEIVED'
                          when r.h >= 9980 then 'FAILED'
                          when r.h >= 9790 then 'IGNORED'
                          else 'PROCESSED' end as status
            ) s
           order by g`;
      done += hi - lo;
      progress(`ledger: ${done} of ${options.rows} rows (${Math.round(done / ((performance.now() - t0) / 1000))} rows/s)`);
    }
  };
  await Promise.all([lane(), lane()]);
  const copySeconds = (performance.now() - t0) / 1000;

  t0 = performance.now();
  for (const ix of indexes) {
    progress(`ledger: building ${ix.name}`);
    await sql.unsafe(ix.create);
  }
  const indexSeconds = (performance.now() - t0) / 1000;
  t0 = performance.now();
  progress('ledger: vacuum analyze');
  await sql`vacuum (analyze) events`;
  const vacuumSeconds = (performance.now() - t0) / 1000;
  await sql`drop table bench_ledger_templates, bench_ledger_copies`;
  const [size] = await sql<{ total: string; indexes: string }[]>`
    select pg_total_relation_size('events')::text as total, pg_indexes_size('events')::text as indexes`;
  return {
    rows: options.rows,
    templates,
    seconds: { templates: templateSeconds, copy: copySeconds, indexes: indexSeconds, vacuum: vacuumSeconds },
    tableBytes: Number(size!.total),
    indexBytes: Number(size!.indexes),
  };
}

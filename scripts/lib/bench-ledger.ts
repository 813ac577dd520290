// The bench's ledger phase (`npm run bench -- --phases ledger --ledger-rows N`): the same
// measurements on an empty database and on one holding a ledger of N events over 31 days (filled
// by SQL, scripts/lib/ledger-fill.ts), in one run, side by side with their ratio:
//   ingest alone at 32 connections, ack at a fixed rate with the workers folding, the drain of a
//   realistic backlog, GET /events pages (first, deep keyset, by status) and the retention purge of
//   one day's rows (on the empty side: the same number of rows, alone in the table).
// Each side is its own database on the bench's Postgres, dropped at the end.
import { randomInt } from 'node:crypto';
import { connect } from '../../src/db/client.ts';
import { encodeCursor } from '../../src/db/event-filter.ts';
import { insertEvent } from '../../src/db/events.ts';
import { migrate } from '../../src/db/migrate.ts';
import { purgeEvents } from '../../src/db/retention.ts';
import { closedLoop, closedLoopFor, dropDatabase, freshDatabase, openLoop, percentile } from '../bench-lib.ts';
import { deliver, signedDelivery } from './deliver.ts';
import { fillLedger, type LedgerFill } from './ledger-fill.ts';
import { startService } from './service.ts';
import { buildStream } from './stream.ts';

export type LedgerBenchContext = {
  /** The bench's database: each side gets a fresh database on its server. */
  databaseUrl: string;
  serviceEnv: Record<string, string>;
  workers: string;
  ledgerRows: number;
  /** Days the ledger spans: retention's 30 and the day the purge removes. */
  days: number;
  /** Seconds of each closed loop and fixed rate. */
  seconds: number;
  rate: number;
  backlog: number;
  progress: (message: string) => void;
  /** Measurements of each side, in turn; each figure is the median. */
  rounds: number;
  rows: Record<string, string | number>[];
};

type Side = {
  ingest: number;
  ackP50: number;
  ackP99: number;
  ackMax: number;
  drain: number;
  pageFirst: number;
  pageDeep: number;
  pageStatus: number;
  purgeRows?: number;
  purgeRate?: number;
  tableMb: number;
  indexMb: number;
};

const ADMIN_TOKEN = 'bench-ledger-admin-token-0123456789';

export async function benchLedger(ctx: LedgerBenchContext): Promise<void> {
  const kinds = ['empty', 'ledger'] as const;
  const dbs = Object.fromEntries(await Promise.all(kinds.map(async (kind) => {
    const name = `webhook_inbox_bench_ledger_${kind}`;
    const url = await freshDatabase(ctx.databaseUrl, name);
    const sql = connect(url, { max: 10, statementTimeoutMs: 0, connectTimeoutMs: 5000, applicationName: 'bench-ledger' });
    await migrate(sql);
    return [kind, { name, url, sql }];
  }))) as Record<(typeof kinds)[number], { name: string; url: string; sql: ReturnType<typeof connect> }>;
  const sides = { empty: [] as Side[], ledger: [] as Side[] };
  let fill: LedgerFill;
  try {
    ctx.progress(`ledger: filling ${ctx.ledgerRows} rows over ${ctx.days} days`);
    fill = await fillLedger({ databaseUrl: dbs.ledger.url, serviceEnv: ctx.serviceEnv, rows: ctx.ledgerRows, days: ctx.days, progress: ctx.progress });
    ctx.progress(`ledger: filled in ${Math.round(fill.seconds.templates + fill.seconds.copy + fill.seconds.indexes + fill.seconds.vacuum)} s, ${gb(fill.tableBytes)} GB (indexes ${gb(fill.indexBytes)} GB)`);
    // Turn about, so that what else the machine does at the time weighs on both sides alike.
    for (let round = 0; round < ctx.rounds; round++) {
      for (const kind of kinds) sides[kind].push(await measure(ctx, `${kind}, round ${round + 1}`, dbs[kind].url, dbs[kind].sql));
    }
    for (const kind of kinds) Object.assign(sides[kind][0]!, await purge(ctx, kind, dbs[kind].url, dbs[kind].sql));
  } finally {
    for (const kind of kinds) {
      await dbs[kind].sql.end();
      await dropDatabase(ctx.databaseUrl, dbs[kind].name);
    }
  }
  // Each figure's median over the rounds (of two: their mean); every round's value is listed too,
  // as the machine's other work moves them more than the table does.
  const median = (runs: Side[], k: keyof Side): number => {
    const v = runs.map((r) => r[k]).filter((x): x is number => x !== undefined).sort((x, y) => x - y);
    const mid = (v.length - 1) / 2;
    return (v[Math.floor(mid)]! + v[Math.ceil(mid)]!) / 2;
  };
  const label = `${ctx.ledgerRows} rows`;
  const row = (measure: string, k: keyof Side, lowerIsBetter = false) => {
    const a = median(sides.empty, k);
    const b = median(sides.ledger, k);
    const each = (runs: Side[]) => runs.map((r) => r[k]).filter((x) => x !== undefined).map((x) => round(x!)).join(' ');
    ctx.rows.push({
      measure: `ledger: ${measure}`,
      empty: round(a),
      [label]: round(b),
      'ledger/empty': `${(b / a).toFixed(2)}x${lowerIsBetter ? ' (time)' : ''}`,
      ...(ctx.rounds > 1 ? { rounds: `${each(sides.empty)} | ${each(sides.ledger)}` } : {}),
    });
  };
  row('ingest alone, 32 connections, req/s', 'ingest');
  row(`ack p50 ms at ${ctx.rate} req/s, folding`, 'ackP50', true);
  row(`ack p99 ms at ${ctx.rate} req/s, folding`, 'ackP99', true);
  row(`ack max ms at ${ctx.rate} req/s, folding`, 'ackMax', true);
  row(`drain (claim + fold) of ${ctx.backlog} events, events/s`, 'drain');
  row('GET /events?limit=100, first page, median ms', 'pageFirst', true);
  row('GET /events, deep keyset page (half-way back), median ms', 'pageDeep', true);
  row('GET /events?status=FAILED, first page, median ms', 'pageStatus', true);
  row(`retention purge of one day (${sides.ledger[0]!.purgeRows} rows), rows/s`, 'purgeRate');
  row('events table + indexes, MB', 'tableMb');
  row('events indexes, MB', 'indexMb');
  if (fill) {
    ctx.rows.push({
      measure: `ledger: fill of ${fill.rows} rows by SQL (${fill.templates} template events), s`,
      empty: '',
      [label]: `templates ${round(fill.seconds.templates)}, copy ${round(fill.seconds.copy)}, indexes ${round(fill.seconds.indexes)}, vacuum ${round(fill.seconds.vacuum)}`,
    });
  }
}

async function measure(ctx: LedgerBenchContext, kind: string, url: string, sql: ReturnType<typeof connect>): Promise<Side> {
  // RETENTION_DAYS far out: the service's own sweep would purge the ledger's oldest day before
  // the purge is measured.
  const env = { ...ctx.serviceEnv, ADMIN_TOKEN, RETENTION_DAYS: '3650' };
  const say = (m: string) => ctx.progress(`ledger (${kind}): ${m}`);

  // 1. Ingest alone: 32 connections, closed loop, after a warm-up. Its rows are removed after.
  const ids: string[] = [];
  const send = () => {
    const d = signedDelivery();
    ids.push(d.id);
    return deliver(api.url, d);
  };
  let api = await startService(url, { ...env, WORKER_CONCURRENCY: '0' });
  await closedLoopFor(3, 32, send);
  say(`ingest alone, 32 connections for ${ctx.seconds} s`);
  const ingest = await closedLoopFor(ctx.seconds, 32, send);
  await api.stop();
  for (let i = 0; i < ids.length; i += 5000) {
    await sql`delete from events where source = 'stripe' and event_id in ${sql(ids.slice(i, i + 5000))}`;
  }

  // 2. Ack at a fixed rate with the workers folding, as users start it; then the admin pages.
  api = await startService(url, { ...env, WORKER_CONCURRENCY: ctx.workers });
  const bodies = Array.from({ length: Math.round(ctx.rate * ctx.seconds) }, () => signedDelivery());
  say(`ack at ${ctx.rate} req/s for ${ctx.seconds} s, folding`);
  const acked = await openLoop(ctx.rate, ctx.seconds, async (i, dueAt) => {
    const r = await deliver(api.url, bodies[i]!);
    return { ms: performance.now() - dueAt, status: r.status };
  });
  const refused = acked.results.filter((r) => r.status !== 200).length;
  if (refused > 0) say(`${refused} of ${bodies.length} deliveries were not answered 200`);
  await waitFolded(sql);
  say('GET /events pages');
  const [mid] = await sql<{ at: string; id: string }[]>`
    select to_char(received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as at, id::text
      from events where id >= (select (min(id) + max(id)) / 2 from events) order by id limit 1`;
  const page = async (query: string) => {
    const ms: number[] = [];
    for (let i = 0; i < 21; i++) {
      const t0 = performance.now();
      const res = await fetch(`${api.url}/events?${query}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const body = (await res.json()) as { items?: unknown[] };
      if (res.status !== 200 || !body.items) throw new Error(`GET /events?${query}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
      ms.push(performance.now() - t0);
    }
    return percentile(ms.slice(1), 50);
  };
  const pageFirst = await page('limit=100');
  const pageDeep = await page(`limit=100&cursor=${encodeCursor(mid!.at, mid!.id)}`);
  const pageStatus = await page('limit=100&status=FAILED');
  await api.stop();

  // 3. Drain: a realistic backlog stored while no worker runs, then folded.
  const base = randomInt(1, 2 ** 30);
  const events: ReturnType<typeof buildStream> = [];
  for (let seed = base; events.length < ctx.backlog; seed++) events.push(...buildStream({ seed, customers: 100 }));
  events.length = ctx.backlog;
  say(`drain: storing ${ctx.backlog} events`);
  await closedLoop(ctx.backlog, 32, (i) => {
    const e = events[i]!;
    return insertEvent(sql, {
      source: 'stripe', eventId: e.id, type: e.type, apiVersion: e.api_version, account: null,
      livemode: false, created: e.created, body: JSON.stringify(e),
    });
  });
  say('drain: folding');
  const drainer = await startService(url, { ...env, WORKER_CONCURRENCY: ctx.workers });
  await waitFolded(sql);
  await drainer.stop();
  const [span] = await sql<{ seconds: number; n: number }[]>`
    select extract(epoch from max(processed_at) - min(processed_at))::float8 as seconds, count(*)::int as n
      from events where event_id in ${sql(events.map((e) => e.id))}`;

  const [size] = await sql<{ total: string; indexes: string }[]>`
    select pg_total_relation_size('events')::text as total, pg_indexes_size('events')::text as indexes`;

  const ack = acked.results.map((r) => r.ms);
  return {
    ingest: ingest.results.length / ingest.seconds,
    ackP50: percentile(ack, 50), ackP99: percentile(ack, 99), ackMax: percentile(ack, 100),
    drain: span!.n / span!.seconds,
    pageFirst, pageDeep, pageStatus,
    tableMb: Number(size!.total) / 2 ** 20, indexMb: Number(size!.indexes) / 2 ** 20,
  };
}

/** The retention purge of one day, as the sweep runs it (RETENTION_BATCH_SIZE 1000). */
async function purge(ctx: LedgerBenchContext, kind: string, url: string, sql: ReturnType<typeof connect>): Promise<Pick<Side, 'purgeRows' | 'purgeRate'>> {
  const say = (m: string) => ctx.progress(`ledger (${kind}): ${m}`);
  // The empty side first gets the ledger's one-day share of rows, alone: the same work in a small table.
  if (kind === 'empty') {
    await sql`delete from events`;
    await fillLedger({
      databaseUrl: url, serviceEnv: ctx.serviceEnv, rows: Math.round(ctx.ledgerRows / ctx.days),
      days: ctx.days, newestDaysAgo: ctx.days - 1, progress: say,
    });
  }
  say('retention purge of one day');
  const t0 = performance.now();
  const purged = await purgeEvents(sql, { olderThanDays: ctx.days - 1, batchSize: 1000 });
  return { purgeRows: purged, purgeRate: purged / ((performance.now() - t0) / 1000) };
}

/** Until no event is due for a worker (the ledger's own RECEIVED rows wait out a day's backoff). */
async function waitFolded(sql: ReturnType<typeof connect>): Promise<void> {
  const deadline = Date.now() + 300_000;
  while ((await sql<{ left: boolean }[]>`
    select exists (select 1 from events where status = 'RECEIVED' and next_attempt_at <= now()) as left`)[0]!.left) {
    if (Date.now() > deadline) throw new Error('ledger: events still unfolded after 300 s');
    await new Promise((r) => setTimeout(r, 250));
  }
}

const round = (n: number) => (n >= 100 ? Math.round(n) : Math.round(n * 100) / 100);
const gb = (bytes: number) => (bytes / 2 ** 30).toFixed(2);

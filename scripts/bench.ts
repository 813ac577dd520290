// `npm run bench`: ingest and folding speed against the physical ceiling, measured in one run.
//   1. ceiling: the same INSERT ... ON CONFLICT DO NOTHING + pg_notify straight from postgres.js
//   2. ack latency through HTTP: sequential, then closed loops of 8, 32 and 64 connections
//   3. fixed rates (open loop) with the workers folding: ack and end-to-end latency, next to the
//      raw insert at the same rate
//   4. drain: a backlog of realistic events folded by the service, events/s
// Prints one table and writes it to bench-results.json. Use DATABASE_URL to bench your own
// Postgres; by default it starts an embedded one with durable settings (fsync on).
//   npm run bench -- --events 5000
import { randomInt } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { connect } from '../src/db/client.ts';
import { insertEvent } from '../src/db/events.ts';
import { migrate } from '../src/db/migrate.ts';
import { deliver, signedDelivery } from './lib/deliver.ts';
import { startService } from './lib/service.ts';
import { buildStream } from './lib/stream.ts';
import { benchOutbox } from './lib/bench-outbox.ts';
import { benchLedger } from './lib/bench-ledger.ts';
import { parseDuration, soak } from './lib/bench-soak.ts';
import { benchDatabase, closedLoop, closedLoopFor, cpuPerRow, cpuSnapshot, dropDatabase, freshDatabase, openLoop, percentile, printTable } from './bench-lib.ts';
import { STRIPE_SYNC_ENGINE_VERSION, startPlainServer, startStripeSyncEngine, type Peer } from './lib/peers.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '4000' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    rates: { type: 'string', default: '58,200,500,1000' },
    backlog: { type: 'string', default: '20000' },
    phases: { type: 'string', default: 'ceiling,http,peers,rate,drain,outbox' },
    peers: { type: 'string', default: '' },
    'peer-seconds': { type: 'string', default: '10' },
    'peer-warmup': { type: 'string', default: '3' },
    'peer-rounds': { type: 'string', default: '1' },
    'outbox-rates': { type: 'string', default: '58,500' },
    'outbox-rounds': { type: 'string', default: '2' },
    split: { type: 'boolean', default: false },
    'ledger-rows': { type: 'string', default: '1000000' },
    'ledger-days': { type: 'string', default: '31' },
    'ledger-seconds': { type: 'string', default: '10' },
    'ledger-rate': { type: 'string', default: '500' },
    'ledger-rounds': { type: 'string', default: '2' },
    soak: { type: 'string' },
    'soak-rate': { type: 'string', default: '100' },
    env: { type: 'string', multiple: true, default: [] },
    workers: { type: 'string', default: '4' },
    'pool-max': { type: 'string', default: '10' },
    out: { type: 'string', default: 'bench-results.json' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log(`usage: npm run bench -- [--events N] [--pool-max N] [--out FILE]

Measures, in one run on this machine:
  ceiling   rows/s of the ingest INSERT sent straight from postgres.js (pool of --pool-max)
  http      ack latency p50/p99/max and req/s of signed 5 KB Stripe deliveries through the
            service, sequential and with 8/32/64 concurrent connections, and % of the ceiling

  peers     side by side, each its own process on its own fresh database of the same Postgres,
            32 connections for --peer-seconds after --peer-warmup: the ceiling (one INSERT per
            delivery from postgres.js), a plain node:http receiver (scripts/lib/plain-server.ts:
            constructEvent, one-row INSERT, 200 after the commit), webhook-inbox with
            WORKER_CONCURRENCY=0 and as users start it (workers folding, and how long after the
            burst the last event was folded); req/s as a ratio to that ceiling, and CPU per request
  rate      open loop at fixed rates (default 58, 200, 500 and 1,000 req/s for 20 s each, after
            3 s of warm-up measured apart): ack p50/p99/max, and end-to-end (processed_at -
            received_at) p50/p99
  drain     a backlog of --backlog realistic Stripe events (customers, subscriptions, invoices,
            payments, refunds... from scripts/lib/stream.ts) folded by the service's workers:
            events/s from the first to the last processed_at

Each row also gives the CPU it cost, in µs per row, of the bench itself (the load generator), the
service process(es) and every process of the embedded Postgres (not for a DATABASE_URL), read from
/proc on Linux. On a small machine where all three share the cores, these explain the rates.

  --events N     deliveries per closed-loop measurement (default 4000)
  --rates LIST   fixed rates for the open loop, req/s (default 58,200,500,1000)
  --backlog N    events in the drain measurement (default 20000)
  --phases LIST  which measurements to run (default ceiling,http,peers,rate,drain,outbox)
  --peers LIST   more peers for the side-by-side rows: stripe-sync-engine (installed with npm into
                 <tmpdir>/webhook-inbox-bench-peers the first time; its webhook route run as its
                 Fastify app runs it), or stripe-sync-engine@VERSION (default ${STRIPE_SYNC_ENGINE_VERSION})
  --peer-seconds N   measured seconds per side-by-side row (default 10)
  --peer-warmup N    seconds of load before each is measured (default 3)
  --peer-rounds N    measure every system N times, in turn (default 1); each system's row is its
                     median round by ratio, and 'rounds' lists every round's ratio
  outbox         scripts/lib/bench-outbox.ts: drain with no and with 2 subscriptions (--outbox-rounds,
                 alternating), the relay's deliveries/s to 2 fast local receivers, and end to end
                 (Stripe sent -> subscriber answered 2xx) at --outbox-rates (default 58,500)
  ledger         scripts/lib/bench-ledger.ts (not in the default phases): ingest at 32 connections,
                 ack at --ledger-rate (default 500) req/s folding, the drain of --backlog events,
                 GET /events pages and the retention purge of one day, on an empty database and on
                 one filled by SQL with a --ledger-rows (default 1000000) ledger over --ledger-days
                 (default 31) days; --ledger-seconds per loop (default 10); both sides measured in
                 turn --ledger-rounds times (default 2), medians. A row costs ~3 KB of disk
                 (table, TOAST, indexes): check the free space first
  --soak DURATION   instead of the phases: the service as users start it, fed realistic signed
                 events at --soak-rate req/s (default 100) for DURATION (300, 90s, 30m, 1h); its RSS
                 and V8 heap sampled every 10 s, a line a minute, and a summary row (RSS at start,
                 max, end, and its slope over the second half)
  --workers N    WORKER_CONCURRENCY of the folding service (default 4)
  --split        fixed rates with ROLE=api and ROLE=worker as two processes (default: one ROLE=all)
  --seconds N    duration of each fixed rate (default 20)
  --warmup N     seconds at each fixed rate right after the service starts, measured on a row of
                 their own before the steady state (default 3; 0: none)
  --pool-max N   database pool size, for the service and the ceiling alike (default 10)
  --env K=V      an environment variable for every service process, e.g. --env
                 INGEST_STATEMENTS_IN_FLIGHT=4 (repeatable)
  --out FILE     where the JSON table goes (default bench-results.json)

DATABASE_URL=postgres://... benches that database instead of a fresh embedded Postgres. Use one
you can throw away: the drain's events and the Stripe objects they fold into stay there.`);
  process.exit(0);
}
const total = Number(args.events);
const phases = new Set(args.soak ? [] : args.phases!.split(','));
const poolMax = Number(args['pool-max']);
const warmupSeconds = Number(args.warmup);
const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

const db = await benchDatabase();
progress(`database: ${db.label}`);
const sql = connect(db.url, { max: poolMax, statementTimeoutMs: 30_000, connectTimeoutMs: 5000 });
await migrate(sql);
// The service as users run it: the default LOG_LEVEL (info: a line per delivery and per folded
// event), written to /dev/null.
const serviceEnv: Record<string, string> = {
  DB_POOL_MAX: String(poolMax),
  LOG_LEVEL: 'info',
  ...Object.fromEntries(args.env!.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
};
const rows: Record<string, string | number>[] = [];
/** CPU used so far by the bench, these service processes and the embedded Postgres. */
const cpu0 = (services: ({ child: { pid?: number } } | undefined)[] = []) =>
  cpuSnapshot(services.map((s) => s?.child.pid), db.postmasterPid);
/** Ids of rows the closed loops stored unfolded: removed before the workers start (phase 3). */
const unfolded: string[] = [];
/** Deletes bench rows by event id, in chunks (also on a DATABASE_URL you pointed it at). */
async function deleteEvents(ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 5000) {
    await sql`delete from events where source = 'stripe' and event_id in ${sql(ids.slice(i, i + 5000))}`;
  }
}

/** "3 (503 x2, ECONNRESET x1)": how many deliveries were not answered 200, and how. */
function non200(results: { status: number; error?: string }[]): Record<string, string> {
  const bad = results.filter((r) => r.status !== 200);
  if (bad.length === 0) return {};
  const kinds = new Map<string, number>();
  for (const r of bad) kinds.set(r.error ?? String(r.status), (kinds.get(r.error ?? String(r.status)) ?? 0) + 1);
  return { 'non-200': `${bad.length} (${[...kinds].map(([k, n]) => `${k} x${n}`).join(', ')})` };
}

/** The ingest statement itself, as the service runs it after verifying a delivery. */
const insertRow = (d: { id: string; body: string }) =>
  insertEvent(sql, {
    source: 'stripe', eventId: d.id, type: 'customer.updated', apiVersion: '2025-03-31.basil',
    account: null, livemode: false, created: Math.floor(Date.now() / 1000), body: d.body,
  });

/** processed_at - received_at of these events, once all are finished; undefined if they never are. */
async function waitProcessed(ids: string[], timeoutMs: number): Promise<number[] | undefined> {
  const started = Date.now();
  for (;;) {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from events where event_id in ${sql(ids)} and status = 'RECEIVED'`;
    if (row!.n === 0) break;
    // Nothing processed at all after 5 s: no workers are running; do not wait out the timeout.
    if (Date.now() - started > timeoutMs || (row!.n === ids.length && Date.now() - started > 5000)) return undefined;
    await new Promise((r) => setTimeout(r, 200));
  }
  const done = await sql<{ ms: number }[]>`
    select extract(epoch from (processed_at - received_at)) * 1000 as ms
    from events where event_id in ${sql(ids)} and processed_at is not null`;
  return done.map((r) => Number(r.ms));
}

// 1. The ceiling: same statement, same bodies, no HTTP, no signature check.
const ceiling: Record<number, number> = {};
for (const concurrency of phases.has('ceiling') || phases.has('http') ? [1, 32] : []) {
  const bodies = Array.from({ length: total }, () => signedDelivery());
  unfolded.push(...bodies.map((b) => b.id));
  progress(`ceiling, ${concurrency} at a time`);
  const cpu = cpu0();
  const { results, seconds } = await closedLoop(total, concurrency, async (i) => {
    const t0 = performance.now();
    await insertRow(bodies[i]!);
    return performance.now() - t0;
  });
  ceiling[concurrency] = total / seconds;
  rows.push({
    measure: `ceiling: postgres.js INSERT, ${concurrency} at a time`,
    'rows/s': Math.round(total / seconds),
    'p50 ms': percentile(results, 50), 'p99 ms': percentile(results, 99), 'max ms': percentile(results, 100),
    '% of ceiling': '',
    ...cpuPerRow(cpu, cpu0(), total, ['bench', 'postgres']),
  });
}

// 2. Through HTTP into the service (a child process, so the load generator does not share its CPU time slice).
const service = await startService(db.url, { ...serviceEnv, WORKER_CONCURRENCY: '0' });
for (const concurrency of phases.has('http') ? [1, 8, 32, 64] : []) {
  const bodies = Array.from({ length: total }, () => signedDelivery());
  const warmup = Array.from({ length: Math.min(200, total) }, () => signedDelivery());
  unfolded.push(...bodies.map((b) => b.id), ...warmup.map((b) => b.id));
  // Warm up the connections so the first requests do not carry the TCP and pool setup.
  await closedLoop(warmup.length, concurrency, async (i) => deliver(service.url, warmup[i]!));
  progress(`http, ${concurrency} connection(s)`);
  const cpu = cpu0([service]);
  const { results, seconds } = await closedLoop(total, concurrency, (i) => deliver(service.url, bodies[i]!));
  const cpuRow = cpuPerRow(cpu, cpu0([service]), total, ['bench', 'service', 'postgres']);
  const ms = results.map((r) => r.ms);
  const ref = ceiling[concurrency === 1 ? 1 : 32]!;
  rows.push({
    measure: concurrency === 1 ? 'http ack, sequential' : `http ack, ${concurrency} connections`,
    'rows/s': Math.round(total / seconds),
    'p50 ms': percentile(ms, 50), 'p99 ms': percentile(ms, 99), 'max ms': percentile(ms, 100),
    '% of ceiling': `${Math.round((100 * total) / seconds / ref)}%`,
    ...cpuRow,
    ...non200(results),
  });
}

// 2b. Side by side: each system its own process on its own fresh database of the same Postgres,
// the same closed loop of fresh signed deliveries, after a warm-up. Rows per commit comes from the
// database: rows one statement stored share its transaction id (xmin).
if (phases.has('peers')) {
  const seconds = Number(args['peer-seconds']);
  const warm = Number(args['peer-warmup']);
  const connections = 32;
  type System = { name: string; table: string; start?: (url: string) => Promise<Peer>; folds?: boolean };
  const systems: System[] = [
    { name: 'ceiling: postgres.js INSERT, one statement each', table: 'events' },
    { name: 'plain node:http: constructEvent + one-row INSERT', table: 'plain_events', start: startPlainServer },
  ];
  for (const asked of (args.peers ?? '').split(',').filter(Boolean)) {
    const [peer, version = STRIPE_SYNC_ENGINE_VERSION] = asked.split('@');
    if (peer !== 'stripe-sync-engine') throw new Error(`--peers: unknown peer '${asked}' (known: stripe-sync-engine[@version])`);
    systems.push({ name: `stripe-sync-engine ${version} (verify, upsert the customer)`, table: 'stripe.customers', start: (url) => startStripeSyncEngine(url, version, progress) });
  }
  const inbox = (env: Record<string, string>) => async (url: string): Promise<Peer> => ({ process: await startService(url, { ...serviceEnv, ...env }), webhookPath: '/webhooks/stripe' });
  systems.push(
    { name: 'webhook-inbox, WORKER_CONCURRENCY=0 (ingest alone)', table: 'events', start: inbox({ WORKER_CONCURRENCY: '0' }) },
    { name: `webhook-inbox as users start it (${args.workers} workers folding)`, table: 'events', start: inbox({ WORKER_CONCURRENCY: args.workers! }), folds: true },
  );
  let ceilingRate = NaN;
  // Per system, each round's row and ratio to that round's ceiling: the machine's speed moves
  // between rounds (other work on it), less so within one.
  const measured = systems.map(() => [] as { row: Record<string, string | number>; ratio: number }[]);
  for (let round = 0; round < Number(args['peer-rounds']); round++) for (const [i, system] of systems.entries()) {
    const url = await freshDatabase(db.url, `webhook_inbox_bench_side_${i}`);
    const own = connect(url, { max: poolMax, statementTimeoutMs: 30_000, connectTimeoutMs: 5000 });
    let peer: Peer | undefined;
    let send: () => Promise<{ status: number; ms: number; error?: string }>;
    if (system.start) {
      peer = await system.start(url);
      const base = peer.process.url;
      const path = peer.webhookPath;
      send = () => deliver(base, signedDelivery(), path);
    } else {
      await migrate(own);
      send = async () => {
        const d = signedDelivery();
        const t0 = performance.now();
        await insertEvent(own, {
          source: 'stripe', eventId: d.id, type: 'customer.updated', apiVersion: '2025-03-31.basil',
          account: null, livemode: false, created: Math.floor(Date.now() / 1000), body: d.body,
        });
        return { status: 200, ms: performance.now() - t0 };
      };
    }
    progress(`side by side: ${system.name}, ${connections} connections, ${warm} s warm-up then ${seconds} s`);
    if (warm > 0) await closedLoopFor(warm, connections, send);
    const cpu = cpu0([peer?.process]);
    const { results, seconds: took } = await closedLoopFor(seconds, connections, send);
    const burstEnd = performance.now();
    const cpuRow = cpuPerRow(cpu, cpu0([peer?.process]), results.length, peer ? ['bench', 'service', 'postgres'] : ['bench', 'postgres']);
    let foldedAfter: number | string = '';
    if (system.folds) {
      const deadline = Date.now() + 120_000;
      while ((await own`select exists (select 1 from events where status = 'RECEIVED') as left`)[0]!.left && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      foldedAfter = Date.now() < deadline ? Math.round(performance.now() - burstEnd) / 1000 : 'not in 120 s';
    }
    // Folded rows were rewritten by the workers: their xmin is the fold's, not the insert's.
    const [commits] = system.folds ? [{ per: NaN }] : await own.unsafe(`select count(*)::float8 / greatest(count(distinct xmin::text), 1) as per from ${system.table}`);
    await peer?.process.stop();
    await own.end();
    const rate = results.length / took;
    if (!system.start) ceilingRate = rate;
    const ms = results.map((r) => r.ms);
    measured[i]!.push({
      ratio: rate / ceilingRate,
      row: {
        measure: `side by side: ${system.name}`,
        'rows/s': Math.round(rate),
        'p50 ms': percentile(ms, 50), 'p99 ms': percentile(ms, 99), 'max ms': percentile(ms, 100),
        'x ceiling': `${(rate / ceilingRate).toFixed(2)}x`,
        ...cpuRow,
        'rows/commit': Number.isNaN(Number(commits!.per)) ? '' : Math.round(Number(commits!.per) * 10) / 10,
        ...(system.folds ? { 'all folded s after': foldedAfter } : {}),
        ...non200(results),
      },
    });
    await dropDatabase(db.url, `webhook_inbox_bench_side_${i}`);
  }
  for (const runs of measured) {
    const median = [...runs].sort((a, b) => a.ratio - b.ratio)[Math.floor((runs.length - 1) / 2)]!;
    rows.push({ ...median.row, ...(runs.length > 1 ? { rounds: runs.map((r) => r.ratio.toFixed(2)).join(' ') } : {}) });
  }
}

// 3. Fixed rates, open loop, with the workers folding: ack latency measured from when each request
// was due, and end-to-end from the events table once everything is processed. The raw insert at
// the same rate runs first with no service up, so no worker folds its rows and takes CPU from it.
await service.stop();
await deleteEvents(unfolded);
for (const rate of phases.has('rate') ? args.rates!.split(',').map(Number) : []) {
  const seconds = Number(args.seconds);
  const bodies = Array.from({ length: Math.round(rate * seconds) }, () => signedDelivery());
  progress(`open loop, ${rate} rows/s straight into Postgres for ${seconds} s`);
  const directCpu = cpu0();
  const direct = await openLoop(rate, seconds, async (i, dueAt) => {
    await insertRow(bodies[i]!);
    return performance.now() - dueAt;
  });
  rows.push({
    measure: `ceiling: postgres.js INSERT at ${rate}/s (open loop)`,
    'rows/s': rate,
    'p50 ms': percentile(direct.results, 50), 'p99 ms': percentile(direct.results, 99), 'max ms': percentile(direct.results, 100),
    ...cpuPerRow(directCpu, cpu0(), bodies.length, ['bench', 'postgres']),
  });
  await deleteEvents(bodies.map((b) => b.id));
  const folding = args.split
    ? await startService(db.url, { ...serviceEnv, ROLE: 'api' })
    : await startService(db.url, { ...serviceEnv, WORKER_CONCURRENCY: args.workers! });
  const worker = args.split
    ? await startService(db.url, { ...serviceEnv, ROLE: 'worker', WORKER_CONCURRENCY: args.workers! })
    : undefined;
  // A service that just started pays for warming up (JIT, the fold functions compiled in each
  // worker backend) on its first deliveries: measured on its own row, then the steady state.
  if (warmupSeconds > 0) {
    const cold = Array.from({ length: Math.round(rate * warmupSeconds) }, () => signedDelivery());
    progress(`open loop, ${rate} req/s through HTTP, the first ${warmupSeconds} s after start`);
    const first = await openLoop(rate, warmupSeconds, async (i, dueAt) => {
      const r = await deliver(folding.url, cold[i]!);
      return { ...r, ms: performance.now() - dueAt };
    });
    const coldMs = first.results.map((r) => r.ms);
    rows.push({
      measure: `http ack at ${rate} req/s, first ${warmupSeconds} s after start`,
      'rows/s': rate,
      'p50 ms': percentile(coldMs, 50), 'p99 ms': percentile(coldMs, 99), 'max ms': percentile(coldMs, 100),
      ...non200(first.results),
    });
  }
  progress(`open loop, ${rate} req/s through HTTP for ${seconds} s`);
  const cpu = cpu0([folding, worker]);
  const { results, lagMs } = await openLoop(rate, seconds, async (i, dueAt) => {
    const r = await deliver(folding.url, bodies[i]!);
    return { ...r, ms: performance.now() - dueAt };
  });
  const ids = bodies.map((b) => b.id);
  const e2e = await waitProcessed(ids, 120_000);
  // Ingest and fold of every delivery: taken once all of them are processed.
  const cpuRow = cpuPerRow(cpu, cpu0([folding, worker]), bodies.length, ['bench', 'service', 'postgres']);
  await folding.stop();
  await worker?.stop();
  const ms = results.map((r) => r.ms);
  rows.push({
    measure: `http ack at ${rate} req/s (open loop, ${seconds} s${args.split ? ', api + worker processes' : ''})`,
    'rows/s': Math.round(results.length / seconds),
    'p50 ms': percentile(ms, 50), 'p99 ms': percentile(ms, 99), 'max ms': percentile(ms, 100),
    'e2e p50 ms': e2e ? percentile(e2e, 50) : 'n/a', 'e2e p99 ms': e2e ? percentile(e2e, 99) : 'n/a',
    ...cpuRow,
    ...non200(results),
    ...(lagMs > 5 ? { 'client lag ms': lagMs } : {}),
  });
}

// 4. Drain: a backlog of realistic events stored while no worker runs, then folded by the service.
if (phases.has('drain')) {
  const backlog = Number(args.backlog);
  // Every id in a stream carries its seed. Fixed seeds made a second run on the same
  // DATABASE_URL store nothing (the ids were there already) and report the first run's
  // processed_at span as its own: fresh seeds each run, and a check that every event was stored.
  const base = randomInt(1, 2 ** 30);
  const events: ReturnType<typeof buildStream> = [];
  for (let seed = base; events.length < backlog; seed++) events.push(...buildStream({ seed, customers: 100 }));
  events.length = backlog;
  progress(`drain: storing ${backlog} events (stream seeds from ${base})`);
  const stored = await closedLoop(backlog, 32, (i) => {
    const e = events[i]!;
    return insertEvent(sql, {
      source: 'stripe', eventId: e.id, type: e.type, apiVersion: e.api_version, account: null,
      livemode: false, created: e.created, body: JSON.stringify(e),
    });
  });
  const duplicates = stored.results.filter((r) => r === 'duplicate').length;
  if (duplicates > 0) throw new Error(`drain: ${duplicates} of ${backlog} events were in the database already; nothing to measure`);
  progress(`drain: folding ${backlog} events`);
  const drainer = await startService(db.url, { ...serviceEnv, WORKER_CONCURRENCY: args.workers! });
  const cpu = cpu0([drainer]);
  const ids = events.map((e) => e.id);
  // The workers start before the service answers /readyz: what they folded by now is not in the
  // CPU counted from here.
  const [early] = await sql<{ n: number }[]>`
    select count(*)::int as n from events where event_id in ${sql(ids)} and status <> 'RECEIVED'`;
  for (;;) {
    // exists, not count(*): counting 20,000 unfolded rows took ~18 ms of the database's CPU per
    // look, taken from the workers being measured.
    const [row] = await sql<{ left: boolean }[]>`select exists (select 1 from events where status = 'RECEIVED') as left`;
    if (!row!.left) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const cpuRow = cpuPerRow(cpu, cpu0([drainer]), backlog - early!.n, ['service', 'postgres']);
  await drainer.stop();
  const [span] = await sql<{ seconds: number; n: number; failed: number }[]>`
    select extract(epoch from max(processed_at) - min(processed_at))::float8 as seconds, count(*)::int as n,
           count(*) filter (where status = 'FAILED')::int as failed
    from events where event_id in ${sql(ids)}`;
  const parked = (await sql<{ n: number }[]>`select count(*)::int as n from pending_links`)[0]!.n;
  rows.push({
    measure: `drain a ${backlog}-event backlog (realistic stream, default workers)`,
    'rows/s': Math.round(span!.n / span!.seconds),
    ...cpuRow,
    ...(span!.failed ? { failed: span!.failed } : {}),
    ...(parked ? { 'still parked': parked } : {}),
  });
}
if (phases.has('outbox')) {
  await benchOutbox({
    sql, databaseUrl: db.url, serviceEnv, workers: args.workers!, backlog: Number(args.backlog), rates: args['outbox-rates']!.split(',').map(Number),
    seconds: Number(args.seconds), rounds: Number(args['outbox-rounds']), cpu: cpu0, progress, rows,
  });
}
if (phases.has('ledger')) {
  await benchLedger({
    databaseUrl: db.url, serviceEnv, workers: args.workers!, ledgerRows: Number(args['ledger-rows']),
    days: Number(args['ledger-days']), seconds: Number(args['ledger-seconds']), rate: Number(args['ledger-rate']),
    backlog: Number(args.backlog), rounds: Number(args['ledger-rounds']), progress, rows,
  });
}
if (args.soak) {
  await soak({
    databaseUrl: db.url, serviceEnv, workers: args.workers!, seconds: parseDuration(args.soak),
    rate: Number(args['soak-rate']), progress, rows,
  });
}
await sql.end();
await db.stop();

console.log(`\nwebhook-inbox bench: ${total} signed ~5 KB Stripe deliveries per row, pool ${poolMax}`);
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${db.label}\n`);
printTable(rows);
console.log(`
µs: CPU per row, in microseconds, of the load generator (bench), the service process(es) and every
Postgres process (embedded only), from /proc. A fixed-rate row counts ingest and fold. On this
machine's ${os.cpus().length} cores, ${os.cpus().length * 1e6} divided by their sum is the most rows/s it can carry.`);
await writeFile(args.out!, JSON.stringify({ date: new Date().toISOString(), total, poolMax, rows }, null, 2) + '\n');
console.log(`\nwritten to ${args.out}`);

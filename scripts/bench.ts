// `npm run bench`: ingest speed against the physical ceiling, measured in one run.
//   1. ceiling: the same INSERT ... ON CONFLICT DO NOTHING + pg_notify straight from postgres.js
//   2. ack latency through HTTP: sequential, then closed loops of 8, 32 and 64 connections
// Prints one table and writes it to bench-results.json. Use DATABASE_URL to bench your own
// Postgres; by default it starts an embedded one with durable settings (fsync on).
//   npm run bench -- --events 5000
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { connect } from '../src/db/client.ts';
import { insertEvent } from '../src/db/events.ts';
import { migrate } from '../src/db/migrate.ts';
import { deliver, signedDelivery, startService } from '../test/helpers/service.ts';
import { benchDatabase, closedLoop, percentile, printTable } from './bench-lib.ts';

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '4000' },
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

  --events N     deliveries per measurement (default 4000)
  --pool-max N   database pool size, for the service and the ceiling alike (default 10)
  --out FILE     where the JSON table goes (default bench-results.json)

DATABASE_URL=postgres://... benches that database instead of a fresh embedded Postgres.`);
  process.exit(0);
}
const total = Number(args.events);
const poolMax = Number(args['pool-max']);
const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);

const db = await benchDatabase();
progress(`database: ${db.label}`);
const sql = connect(db.url, { max: poolMax, statementTimeoutMs: 30_000, connectTimeoutMs: 5000 });
await migrate(sql);
const rows: Record<string, string | number>[] = [];

// 1. The ceiling: same statement, same bodies, no HTTP, no signature check.
const ceiling: Record<number, number> = {};
for (const concurrency of [1, 32]) {
  const bodies = Array.from({ length: total }, () => signedDelivery());
  progress(`ceiling, ${concurrency} at a time`);
  const { results, seconds } = await closedLoop(total, concurrency, async (i) => {
    const d = bodies[i]!;
    const t0 = performance.now();
    await insertEvent(sql, {
      source: 'stripe', eventId: d.id, type: 'customer.updated', apiVersion: '2025-03-31.basil',
      account: null, livemode: false, created: Math.floor(Date.now() / 1000), body: d.body,
    });
    return performance.now() - t0;
  });
  ceiling[concurrency] = total / seconds;
  rows.push({
    measure: `ceiling: postgres.js INSERT, ${concurrency} at a time`,
    'rows/s': Math.round(total / seconds),
    'p50 ms': percentile(results, 50), 'p99 ms': percentile(results, 99), 'max ms': percentile(results, 100),
    '% of ceiling': '',
  });
}

// 2. Through HTTP into the service (a child process, so the load generator does not share its CPU time slice).
const service = await startService(db.url, { DB_POOL_MAX: String(poolMax), WORKER_CONCURRENCY: '0' });
for (const concurrency of [1, 8, 32, 64]) {
  const bodies = Array.from({ length: total }, () => signedDelivery());
  // Warm up the connections so the first requests do not carry the TCP and pool setup.
  await closedLoop(Math.min(200, total), concurrency, async () => deliver(service.url, signedDelivery()));
  progress(`http, ${concurrency} connection(s)`);
  const { results, seconds } = await closedLoop(total, concurrency, (i) => deliver(service.url, bodies[i]!));
  const failed = results.filter((r) => r.status !== 200).length;
  const ms = results.map((r) => r.ms);
  const ref = ceiling[concurrency === 1 ? 1 : 32]!;
  rows.push({
    measure: concurrency === 1 ? 'http ack, sequential' : `http ack, ${concurrency} connections`,
    'rows/s': Math.round(total / seconds),
    'p50 ms': percentile(ms, 50), 'p99 ms': percentile(ms, 99), 'max ms': percentile(ms, 100),
    '% of ceiling': `${Math.round((100 * total) / seconds / ref)}%`,
    ...(failed ? { 'non-200': failed } : {}),
  });
}
await service.stop();
await sql.end();
await db.stop();

console.log(`\nwebhook-inbox bench: ${total} signed ~5 KB Stripe deliveries per row, pool ${poolMax}`);
console.log(`machine: ${os.cpus().length} x ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${db.label}\n`);
printTable(rows);
await writeFile(args.out!, JSON.stringify({ date: new Date().toISOString(), total, poolMax, rows }, null, 2) + '\n');
console.log(`\nwritten to ${args.out}`);

// scripts/bench.ts at a tiny size against a test database: every phase runs and the table and the
// JSON have every row. No timing is asserted (speed is measured by `npm run bench`, not tested);
// this only keeps the benchmark from rotting unnoticed.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { spawnScript } from './helpers/spawn.ts';
import { root } from '../scripts/lib/service.ts';

const db = await createTestDatabase(t);

t.test('npm run bench at a tiny size prints every row and writes the JSON', async (t) => {
  const out = path.join(await mkdtemp(path.join(tmpdir(), 'bench-smoke-')), 'bench.json');
  const args = ['--events', '60', '--seconds', '1', '--warmup', '1', '--rates', '40', '--backlog', '200', '--peer-seconds', '1', '--peer-warmup', '0', '--outbox-rates', '40', '--outbox-rounds', '1', '--out', out];
  const bench = spawnScript(process.execPath, [path.join(root, 'scripts/bench.ts'), ...args], { env: { DATABASE_URL: db.url } });
  const { code } = await bench.exited;
  const [stdout, stderr] = [bench.stdout(), bench.stderr()];
  t.equal(code, 0, `exit 0 (stderr: ${stderr.slice(-500)})`);
  for (const row of [
    'ceiling: postgres.js INSERT, 1 at a time',
    'ceiling: postgres.js INSERT, 32 at a time',
    'http ack, sequential',
    'http ack, 64 connections',
    'side by side: ceiling: postgres.js INSERT, one statement each',
    'side by side: plain node:http: constructEvent + one-row INSERT',
    'side by side: webhook-inbox, WORKER_CONCURRENCY=0 (ingest alone)',
    'side by side: webhook-inbox as users start it (4 workers folding)',
    'ceiling: postgres.js INSERT at 40/s (open loop)',
    'http ack at 40 req/s, first 1 s after start',
    'http ack at 40 req/s (open loop, 1 s)',
    'drain a 200-event backlog',
    'outbox: drain 200 events, no subscription',
    'outbox: drain 200 events, 2 subscriptions (relay off)',
    'outbox: relay',
    'outbox: end to end at 40 req/s',
  ]) {
    t.match(stdout, row, `table row: ${row}`);
  }
  t.match(stderr, /bench: drain: folding 200 events/, 'progress goes to stderr');

  const { rows } = JSON.parse(await readFile(out, 'utf8')) as { rows: Record<string, string | number>[] };
  t.equal(rows.length, 18, 'one JSON row per table row');
  for (const r of rows) t.ok(Number(r['rows/s']) > 0, `${r.measure}: a rate was measured`);
  const rate = rows.find((r) => String(r.measure).startsWith('http ack at 40 req/s (open loop'))!;
  t.ok(Number(rate['e2e p99 ms']) >= 0, 'end-to-end was read back from the events table');
  // CPU per row, from /proc: the bench's own and the service's; Postgres only when embedded.
  if (process.platform === 'linux') {
    for (const r of rows.filter((r) => String(r.measure).startsWith('http ack, '))) {
      t.ok(Number(r['bench µs']) > 0 && Number(r['service µs']) > 0, `${r.measure}: CPU per delivery of bench and service`);
      t.equal(r['postgres µs'], '', `${r.measure}: no Postgres CPU for a DATABASE_URL`);
    }
    // 200 events may all be folded before the service answers /readyz: then nothing is left to count.
    t.ok('service µs' in rows.find((r) => String(r.measure).startsWith('drain'))!, 'drain: a column for the service\'s CPU per event');
  }
  const side = rows.filter((r) => String(r.measure).startsWith('side by side: '));
  t.same(side.map((r) => r['x ceiling']).slice(0, 1), ['1.00x'], 'side by side: ratios to the ceiling of the same run');
  t.ok(side.slice(1).every((r) => /^\d+\.\d\dx$/.test(String(r['x ceiling']))), 'a ratio for every system');
  t.ok(Number(side.find((r) => String(r.measure).includes('ingest alone'))!['rows/commit']) >= 1, 'rows per commit, read from xmin');
  t.ok(Number(side.at(-1)!['all folded s after']) >= 0, 'how soon after the burst everything was folded');
  t.notOk(rows.some((r) => 'non-200' in r || 'failed' in r || 'still parked' in r), 'every delivery answered 200, every event folded');
  t.equal(Number((await db.sql`select count(*)::int as n from events where status = 'RECEIVED'`)[0]!.n), 0, 'nothing left unfolded');
});

// scripts/lib/bench-ledger.ts through `npm run bench -- --phases ledger` at a tiny size against a
// test database's server: both sides are measured, every figure is there, the purge found its day
// of rows (the fill spread received_at over 31 days), and both databases are dropped. No timing is
// asserted.
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { runBench } from './helpers/bench.ts';

t.setTimeout(300_000);
const db = await createTestDatabase(t);

t.test('the ledger phase measures an empty database and a filled one, then drops both', async (t) => {
  const { code, stderr, rows } = await runBench(db.url, ['--phases', 'ledger', '--ledger-rows', '3100', '--backlog', '100', '--ledger-seconds', '1', '--ledger-rounds', '1', '--ledger-rate', '20']);
  t.equal(code, 0, `exit 0 (stderr: ${stderr.slice(-800)})`);
  const measured = rows.filter((r) => String(r.measure).startsWith('ledger: ') && !String(r.measure).startsWith('ledger: fill'));
  t.equal(measured.length, 11, 'every figure has its row');
  for (const r of measured) {
    t.ok(Number(r.empty) > 0 && Number(r['3100 rows']) > 0, `${r.measure}: both sides measured`);
    t.match(String(r['ledger/empty']), /^\d+\.\d\dx/, `${r.measure}: a ratio`);
  }
  const purge = measured.find((r) => String(r.measure).includes('retention purge'))!;
  const day = Number(/one day \((\d+) rows\)/.exec(String(purge.measure))?.[1]);
  t.ok(day >= 3100 / 31 - 5, `the purge deleted the oldest day, about 1/31 of the rows (${day})`);
  t.ok(rows.some((r) => String(r.measure).startsWith('ledger: fill of 3100 rows')), 'how long the fill took');
  const left = await db.sql`select datname from pg_database where datname like 'webhook_inbox_bench_ledger_%'`;
  t.same(left, [], 'both databases dropped');
});

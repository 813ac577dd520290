// scripts/lib/bench-soak.ts through `npm run bench -- --soak` at a tiny size: the service's RSS is
// sampled and summarized, and every delivery answered 200. No memory or timing is asserted.
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { runBench } from './helpers/bench.ts';
import { parseDuration } from '../scripts/lib/bench-soak.ts';

const db = await createTestDatabase(t);

t.test('durations', async (t) => {
  t.equal(parseDuration('30m'), 1800);
  t.equal(parseDuration('90s'), 90);
  t.equal(parseDuration('300'), 300);
  t.equal(parseDuration('1h'), 3600);
  t.throws(() => parseDuration('30 minutes'), /write it like 300, 90s, 30m or 1h/);
});

t.test('the soak samples the service\'s memory and summarizes it', { skip: process.platform !== 'linux' ? 'RSS is read from /proc' : false }, async (t) => {
  const { code, stderr, rows } = await runBench(db.url, ['--soak', '25s', '--soak-rate', '10']);
  t.equal(code, 0, `exit 0 (stderr: ${stderr.slice(-800)})`);
  t.equal(rows.length, 1, 'one row: the soak, no other phase');
  const r = rows[0]!;
  t.match(String(r.measure), /^soak: 10 req\/s/);
  for (const k of ['RSS start MB', 'RSS max MB', 'RSS end MB', 'heap end MB']) t.ok(Number(r[k]) > 0, `${k}: ${r[k]}`);
  t.ok(Number(r['RSS max MB']) >= Number(r['RSS end MB']), 'max is the largest sample');
  t.ok(Number.isFinite(Number(r['MB/min, 2nd half'])), 'a slope over the second half');
  t.notOk('non-200' in r, 'every delivery answered 200');
  t.match(stderr, /V8 heap spaces at the end, MB committed: \w+ \d+/, 'where the heap is, by space');
});

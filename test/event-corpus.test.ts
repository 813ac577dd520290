// Real Stripe event bodies from other projects' test suites (test/fixtures/events/README.md says
// where each comes from, under which license), of API versions from before 2017 to 2023: every one
// ends PROCESSED, or IGNORED with the reason in `result`, never FAILED. The same body with its
// snapshot's `object` field removed is recognised by the id prefix or the event type, and ends the same.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { drain, resetGraph, storeEvents, type Ev } from './helpers/fold.ts';

const db = await createTestDatabase(t);
const sql = db.sql;
const dir = fileURLToPath(new URL('./fixtures/events/', import.meta.url));
const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.json')).sort();

async function foldAlone(event: Ev): Promise<{ status: string; result: any; last_error: string | null }> {
  await resetGraph(sql);
  await storeEvents(sql, [event]);
  await drain(sql, { concurrency: 1 });
  const [row] = await sql<{ status: string; result: any; last_error: string | null }[]>`select status, result, last_error from events`;
  return row!;
}

t.ok(files.length >= 20, `${files.length} real event bodies`);

for (const file of files) {
  t.test(file, async (t) => {
    const event = JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as Ev;
    const row = await foldAlone(event);
    t.not(row.status, 'FAILED', `not FAILED (${row.last_error ?? ''})`);
    t.ok(row.status === 'PROCESSED' || row.status === 'IGNORED', `${event.type}: ${row.status}`);
    if (row.status === 'IGNORED') t.match(row.result, { ignored: /\w+/ }, `the reason: ${row.result?.ignored}`);
    if (row.status === 'PROCESSED') t.ok(row.result.objects.length > 0, `wrote ${row.result.objects.map((o: any) => `${o.table}/${o.id}`).join(', ')}`);

    const { object: _, ...bare } = event.data.object;
    const again = await foldAlone({ ...event, data: { ...event.data, object: bare } });
    t.equal(again.status, row.status, 'without its object field: the same outcome');
    if (row.status === 'PROCESSED') {
      t.same(again.result.objects.map((o: any) => o.table), row.result.objects.map((o: any) => o.table), 'the same tables');
    }
  });
}

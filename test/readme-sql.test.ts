// Every SQL recipe for support staff (docs/sql.md, and the one in the README's section "Answering
// questions with SQL") runs against a database folded from a realistic event stream and returns
// rows: a renamed column or view breaks the build.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { seedEvent } from './helpers/events.ts';
import { drain, storeEvents, stripeEv } from './helpers/fold.ts';
import { root } from '../scripts/lib/service.ts';
import { buildStream } from '../scripts/lib/stream.ts';

const readme = await readFile(path.join(root, 'README.md'), 'utf8');
const section = readme.split(/^## /m).find((s) => s.startsWith('Answering questions with SQL\n'));
const docs = await readFile(path.join(root, 'docs/sql.md'), 'utf8');
const recipes = [...`${section ?? ''}\n${docs}`.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);

const db = await createTestDatabase(t);
await storeEvents(db.sql, buildStream({ seed: 11, customers: 3 }));
// An invoice whose customer never arrives, and an event that failed a moment ago.
await storeEvents(db.sql, [
  stripeEv('evt_readme_orphan', 'invoice.created', 1_760_000_000, { id: 'in_readme_orphan', object: 'invoice', status: 'draft', customer: 'cus_never', created: 1_760_000_000, livemode: false }),
]);
await drain(db.sql);
await seedEvent(db.sql, { status: 'FAILED', type: 'invoice.paid', lastError: 'boom', age: '1 minute' });

// The README's placeholder ids, mapped to rows this stream produced.
const [linked] = await db.sql`
  select i.id, i.customer_id, i.subscription_id
    from invoices i
   where i.customer_id is not null and i.subscription_id is not null
     and exists (select 1 from invoice_payments ip where ip.invoice_id = i.id)
   order by i.id limit 1`;
const ids: Record<string, string> = {
  in_1Abc: linked!.id,
  in_2Ghi: 'in_readme_orphan',
  cus_9Xyz: linked!.customer_id,
  sub_1Def: linked!.subscription_id,
};

t.ok(section, 'the README has the section');
t.ok(recipes.length >= 6, `at least six recipes (${recipes.length})`);

for (const [i, recipe] of recipes.entries()) {
  const title = recipe.split('\n')[0]!.trim();
  t.test(`recipe ${i + 1}: ${title}`, async (t) => {
    const text = recipe.replace(/'(in_1Abc|in_2Ghi|cus_9Xyz|sub_1Def)'/g, (_, p: string) => `'${ids[p]}'`);
    const rows = await db.sql.unsafe(text);
    t.ok(rows.length > 0, `returns rows (${rows.length})`);
    if (text.includes('from invoices i')) {
      t.match(rows[0], { customer: ids.cus_9Xyz, subscription: ids.sub_1Def, payment_intent: /^pi_/ }, 'the invoice with all its links');
    }
  });
}

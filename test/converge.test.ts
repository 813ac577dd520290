// The product's promise as a property: whatever the arrival order, with duplicate deliveries and
// several concurrent workers, the graph ends exactly as if the events had arrived in order, with
// every parent linked and nothing left waiting.
import fc from 'fast-check';
import t, { type Test } from 'tap';
import { BY_TABLE, TABLES, refId } from '../src/stripe/catalog.ts';
import { createTestDatabase } from './helpers/db.ts';
import { drain, graphSnapshot, resetGraph, storeEvents, type Graph } from './helpers/fold.ts';
import { BASIL, CLOVER, LEGACY, buildStream, type StripeEvent } from '../scripts/lib/stream.ts';

const db = await createTestDatabase(t);
const sql = db.sql;

async function foldInOrder(stream: StripeEvent[]): Promise<Graph> {
  await resetGraph(sql);
  await storeEvents(sql, stream);
  // One worker, one event per claim: the queue order, which is the stream order.
  await drain(sql, { concurrency: 1, batchSize: 1 });
  return graphSnapshot(sql);
}

/** Every object of the stream has a row, and every link column agrees with the row's own data. */
function checkComplete(t: Test, stream: StripeEvent[], graph: Graph): void {
  const rows = new Map<string, any>();
  for (const table of TABLES) for (const row of graph[table]) rows.set(row.id, row);
  const missing = stream.map((e) => e.data.object).filter((o) => !rows.has(o.id));
  t.same(missing.map((o) => o.id), [], 'every object of the stream has a row');
  const wrong: string[] = [];
  for (const table of TABLES) {
    for (const row of graph[table]) {
      for (const link of BY_TABLE.get(table)!.links) {
        if (row[link.column] !== null && !rows.has(row[link.column])) wrong.push(`${row.id}.${link.column}`);
      }
    }
  }
  t.same(wrong, [], 'every link points at a row');
  t.same(graph.pending_links, [], 'nothing waits for a parent');
}

/** The tables a stream of this shape must fill, so the property covers every object it folds. */
function checkCovered(t: Test, graph: Graph, expected: string[]): void {
  t.same(expected.filter((table) => graph[table].length === 0), [], `rows in ${expected.length} tables, both link tables among them`);
}

const EVERY_SHAPE = [
  'customers', 'products', 'prices', 'payment_methods', 'subscriptions', 'subscription_items', 'invoices', 'invoice_line_items',
  'payment_intents', 'charges', 'refunds', 'disputes', 'checkout_sessions', 'credit_notes', 'setup_intents', 'subscription_schedules', 'coupons',
  'promotion_codes', 'discounts', 'tax_rates', 'tax_ids', 'invoiceitems', 'quotes', 'payouts', 'early_fraud_warnings',
  'invoice_discounts', 'subscription_item_tax_rates',
];

// basil as a Connect account's stream (its onboarding, and the platform's transfers to it); legacy
// with its plans. Five customers of seed 1015 live through every episode the stream knows (a
// quote, a schedule released, a fraud warning, a move abroad changing tax rates, a dispute...):
// checkCovered says so if the stream builder changes.
const SHAPES = [
  { apiVersion: BASIL, seed: 1015, account: 'acct_1Converge000', tables: [...EVERY_SHAPE, 'invoice_payments', 'accounts', 'transfers'] },
  { apiVersion: LEGACY, seed: 1015, account: undefined, tables: [...EVERY_SHAPE, 'plans'] },
];

for (const { apiVersion, seed, account, tables } of SHAPES) {
  t.test(`${apiVersion}: random arrival orders, duplicates and 4 workers converge to the in-order graph`, async (t) => {
    const stream = buildStream({ seed, customers: 5, apiVersion, account });
    const expected = await foldInOrder(stream);
    checkComplete(t, stream, expected);
    checkCovered(t, expected, tables);
    t.ok(expected.invoices.every((i: any) => i.customer_id !== null), 'invoices linked to customers');
    t.ok(expected.invoices.some((i: any) => i.subscription_id !== null), 'invoices linked to subscriptions');
    t.ok(expected.charges.every((c: any) => c.payment_intent_id !== null), 'charges linked to payment intents');
    if (apiVersion === BASIL) t.ok(expected.invoice_payments.length > 0, 'invoice payments folded');
    else t.ok(expected.payment_intents.some((p: any) => p.invoice_id !== null), 'legacy payment intents link invoices');

    let runs = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.shuffledSubarray(stream, { minLength: stream.length, maxLength: stream.length }),
        fc.array(fc.nat({ max: stream.length - 1 }), { maxLength: 15 }),
        fc.integer({ min: 1, max: 5 }),
        async (order, dupes, batchSize) => {
          runs++;
          await resetGraph(sql);
          // Duplicates are redelivered later, as Stripe's retries are.
          await storeEvents(sql, [...order, ...dupes.map((i) => order[i]!)]);
          await drain(sql, { concurrency: 4, batchSize });
          const got = await graphSnapshot(sql);
          for (const table of Object.keys(expected)) {
            if (JSON.stringify(got[table]) !== JSON.stringify(expected[table])) {
              throw new Error(`${table} differs from the in-order result`);
            }
          }
        },
      ),
      { numRuns: 12, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
    t.equal(runs >= 12, true, `${runs} arrival orders folded`);
  });
}

t.test('refolding everything (a replay) changes nothing', async (t) => {
  const stream = buildStream({ seed: 9, customers: 3 });
  const expected = await foldInOrder(stream);
  await sql`update events set status = 'RECEIVED', next_attempt_at = now(), attempts = 0`;
  await drain(sql, { concurrency: 4, batchSize: 3 });
  t.same(await graphSnapshot(sql), expected);
});

t.test('the graph of the reversed stream has the same links as the data says', async (t) => {
  // clover: promotion codes and discounts name their coupon by id.
  const stream = buildStream({ seed: 10, customers: 3, apiVersion: CLOVER });
  await resetGraph(sql);
  await storeEvents(sql, [...stream].reverse());
  await drain(sql, { concurrency: 2, batchSize: 2 });
  const graph = await graphSnapshot(sql);
  checkComplete(t, stream, graph);
  // Each link column is the id the newest snapshot names.
  const mismatched = graph.invoices.filter(
    (i: any) => i.customer_id !== refId(i.data.customer) ||
      i.subscription_id !== (refId(i.data.parent?.subscription_details?.subscription) ?? refId(i.data.subscription)),
  );
  t.same(mismatched.map((i: any) => i.id), []);
});

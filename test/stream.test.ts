// The generated Stripe stream that the fold tests replay: deterministic, causally ordered, shaped
// like the API version it claims, and with every reference pointing at an object it contains.
import fc from 'fast-check';
import t from 'tap';
import { BASIL, CLOVER, LEGACY, buildStream, objectsOf, type StripeEvent } from '../scripts/lib/stream.ts';

type Obj = Record<string, any>;

// Fields Stripe can expand: in a webhook they hold an id (or null, or a list of ids), never the
// object itself, except the whole objects Stripe always embeds (EMBEDDED).
const EXPANDABLE = new Set([
  'customer', 'product', 'price', 'subscription', 'invoice', 'payment_intent', 'charge', 'latest_invoice',
  'latest_charge', 'default_price', 'payment_method', 'default_payment_method', 'subscription_item', 'invoice_line_item',
  'invoice_item', 'coupon', 'promotion_code', 'discount', 'discounts', 'tax_rate', 'schedule', 'released_subscription',
]);
// Stripe embeds a whole price in subscription items and legacy invoice lines and invoice items,
// and a whole coupon in promotion codes and discounts before clover; nothing else is embedded.
const EMBEDDED = new Set(['price', 'coupon']);

/** Calls `visit` on `value` and every object nested anywhere in it. */
function walk(value: unknown, visit: (object: Obj) => void): void {
  if (Array.isArray(value)) for (const item of value) walk(item, visit);
  else if (typeof value === 'object' && value !== null) {
    visit(value as Obj);
    for (const inner of Object.values(value)) walk(inner, visit);
  }
}

/** The id of every Stripe object anywhere in the stream, top-level or embedded (items, lines, prices). */
function objectIds(stream: StripeEvent[]): Set<string> {
  const ids = new Set<string>();
  for (const event of stream) {
    walk(event.data.object, (object) => {
      if (typeof object.object === 'string' && typeof object.id === 'string') ids.add(object.id);
    });
  }
  return ids;
}

/** Every expandable field at any depth (invoice.parent.subscription_details.subscription, invoice_payment.payment.payment_intent, ...). */
function references(stream: StripeEvent[]): { where: string; value: unknown }[] {
  const found: { where: string; value: unknown }[] = [];
  for (const event of stream) {
    walk(event.data.object, (object) => {
      for (const [key, value] of Object.entries(object)) {
        if (EXPANDABLE.has(key)) found.push({ where: `${event.type} ${event.data.object.id} .${key}`, value });
      }
    });
  }
  return found;
}

function byType(stream: StripeEvent[], type: string): Obj[] {
  return stream.filter((e) => e.type === type).map((e) => e.data.object);
}

function snapshotsOf(stream: StripeEvent[], objectType: string): Obj[] {
  return stream.map((e) => e.data.object).filter((o) => o.object === objectType);
}

const basil = buildStream({ seed: 7, customers: 20, apiVersion: BASIL });
const legacy = buildStream({ seed: 7, customers: 20, apiVersion: LEGACY });

t.test('the same seed gives the same stream, another seed another', async (t) => {
  t.same(buildStream({ seed: 7, customers: 20 }), basil);
  t.same(buildStream({ seed: 7, customers: 20, apiVersion: LEGACY }), legacy);
  t.notSame(buildStream({ seed: 8, customers: 20 }).map((e) => e.type), basil.map((e) => e.type));
});

t.test('streams of different seeds share no id', async (t) => {
  const seeds = [7, 8, -1, 2 ** 31 - 1, -(2 ** 31), 0];
  const owners = new Map<string, number>();
  for (const seed of seeds) {
    const stream = buildStream({ seed, customers: 20 });
    for (const id of [...objectIds(stream), ...stream.map((e) => e.id)]) {
      if (owners.has(id) && owners.get(id) !== seed) t.fail(`${id} appears with seeds ${owners.get(id)} and ${seed}`);
      owners.set(id, seed);
    }
  }
  t.ok(owners.size > 1000, `${owners.size} ids checked`);
});

t.test('event ids are unique and look like Stripe ids', async (t) => {
  for (const stream of [basil, legacy]) {
    t.equal(new Set(stream.map((e) => e.id)).size, stream.length);
    t.ok(stream.every((e) => /^evt_[0-9A-Za-z]{24}$/.test(e.id)));
    const byId = [...stream].sort((a, b) => (a.id < b.id ? -1 : 1));
    t.notSame(byId.map((e) => e.id), stream.map((e) => e.id), 'sorting by event id does not replay the stream');
  }
  const prefixes: Record<string, string> = {
    customer: 'cus_', product: 'prod_', price: 'price_', payment_method: 'pm_', subscription: 'sub_', subscription_item: 'si_',
    invoice: 'in_', invoice_payment: 'inpay_', payment_intent: 'pi_', charge: 'ch_', refund: 're_', dispute: 'dp_',
    'checkout.session': 'cs_test_', credit_note: 'cn_', discount: 'di_', invoiceitem: 'ii_', line_item: 'il_', tax_rate: 'txr_',
    // Coupon ids are chosen by their creator: no prefix.
    coupon: '', promotion_code: 'promo_', tax_id: 'txi_', setup_intent: 'seti_', quote: 'qt_', subscription_schedule: 'sub_sched_',
    payout: 'po_', 'radar.early_fraud_warning': 'issfr_', account: 'acct_', transfer: 'tr_',
  };
  for (const [id, { object }] of objectsOf(basil)) {
    if (!id.startsWith(prefixes[object]!)) t.fail(`${object} ${id} does not start with ${prefixes[object]}`);
  }
});

t.test('created never decreases and the envelope is complete', async (t) => {
  for (const stream of [basil, legacy]) {
    t.same(stream.filter((e, i) => i > 0 && e.created < stream[i - 1]!.created), [], 'no event goes back in time');
    t.ok(stream.every((e) => e.object === 'event' && e.livemode === false && e.pending_webhooks === 1 && !('account' in e)));
    t.ok(stream.every((e) => 'id' in e.request && 'idempotency_key' in e.request));
    t.ok(stream.every((e) => e.created >= 1_751_328_000 && e.created < 1_751_328_000 + 90 * 86_400));
  }
  const first = buildStream({ seed: 7, customers: 1, start: 1_800_000_000 });
  t.equal(first[0]!.created, 1_800_000_000, 'the stream starts at `start`');
  t.equal(first[0]!.type, 'product.created', 'with the catalog');
});

t.test('basil streams: invoice.parent and invoice_payment link invoices, periods are on items', async (t) => {
  t.ok(basil.every((e) => e.api_version === BASIL));
  const problems: string[] = [];
  const invoices = snapshotsOf(basil, 'invoice');
  t.ok(invoices.length >= 100, `${invoices.length} invoice snapshots`);
  for (const invoice of invoices) {
    for (const field of ['subscription', 'payment_intent', 'charge', 'paid']) if (field in invoice) problems.push(`${invoice.id} has ${field}`);
    if (!/^sub_/.test(invoice.parent?.subscription_details?.subscription)) problems.push(`${invoice.id} has no parent subscription`);
  }
  for (const object of [...snapshotsOf(basil, 'payment_intent'), ...snapshotsOf(basil, 'charge')]) {
    if ('invoice' in object) problems.push(`${object.id} has invoice`);
  }
  for (const subscription of snapshotsOf(basil, 'subscription')) {
    if ('current_period_start' in subscription) problems.push(`${subscription.id} has current_period_start`);
    for (const item of subscription.items.data) if (!(item.current_period_end > item.current_period_start)) problems.push(`${item.id} has no period`);
  }
  t.same(problems, []);
  t.match(invoices[0]!.parent, { type: 'subscription_details', subscription_details: { subscription: /^sub_/, metadata: {} }, quote_details: null });

  const payments = byType(basil, 'invoice_payment.paid');
  t.equal(payments.length, 20, 'one invoice_payment.paid per customer');
  const paidInvoices = new Map(byType(basil, 'invoice.paid').map((invoice) => [invoice.id, invoice]));
  const paidIntents = new Map(byType(basil, 'payment_intent.succeeded').map((pi) => [pi.id, pi]));
  for (const payment of payments) {
    t.match(payment, {
      object: 'invoice_payment', invoice: /^in_/, is_default: true, status: 'paid', livemode: false,
      payment: { type: 'payment_intent', payment_intent: /^pi_/ }, status_transitions: { canceled_at: null, paid_at: Number },
    });
    t.equal(payment.amount_paid, paidInvoices.get(payment.invoice)?.amount_paid, 'invoice_payment pays its invoice in full');
    t.equal(paidIntents.get(payment.payment.payment_intent)?.amount_received, payment.amount_paid, 'with its payment intent');
  }
});

t.test('legacy streams: invoice.subscription, payment_intent and charge, periods on the subscription', async (t) => {
  t.ok(legacy.every((e) => e.api_version === LEGACY));
  t.notOk(legacy.some((e) => e.type.startsWith('invoice_payment') || e.data.object.object === 'invoice_payment'), 'no invoice_payment');
  const problems: string[] = [];
  // [payment_intent, charge] by invoice status
  const expected: Record<string, RegExp[]> = { draft: [/^null$/, /^null$/], open: [/^pi_/, /^null$/], paid: [/^pi_/, /^ch_/] };
  for (const invoice of snapshotsOf(legacy, 'invoice')) {
    if ('parent' in invoice) problems.push(`${invoice.id} has parent`);
    if (!/^sub_/.test(invoice.subscription)) problems.push(`${invoice.id} has no subscription`);
    const [pi, ch] = expected[invoice.status]!;
    if (!pi!.test(String(invoice.payment_intent)) || !ch!.test(String(invoice.charge))) {
      problems.push(`${invoice.id} ${invoice.status} has payment_intent ${invoice.payment_intent}, charge ${invoice.charge}`);
    }
    if (invoice.paid !== (invoice.status === 'paid')) problems.push(`${invoice.id} ${invoice.status} has paid ${invoice.paid}`);
  }
  const intents = new Map(byType(legacy, 'payment_intent.succeeded').map((pi) => [pi.id, pi]));
  const charges = new Map(byType(legacy, 'charge.succeeded').map((ch) => [ch.id, ch]));
  for (const invoice of byType(legacy, 'invoice.paid')) {
    if (intents.get(invoice.payment_intent)?.invoice !== invoice.id) problems.push(`${invoice.payment_intent}.invoice is not ${invoice.id}`);
    if (charges.get(invoice.charge)?.invoice !== invoice.id) problems.push(`${invoice.charge}.invoice is not ${invoice.id}`);
  }
  for (const subscription of snapshotsOf(legacy, 'subscription')) {
    if (!(subscription.current_period_end > subscription.current_period_start)) problems.push(`${subscription.id} has no period`);
    for (const item of subscription.items.data) if ('current_period_start' in item) problems.push(`${item.id} has a period`);
  }
  t.same(problems, []);
});

t.test('every reference names an object in the stream, by id', async (t) => {
  for (const [name, stream] of [['basil', basil], ['legacy', legacy]] as const) {
    const ids = objectIds(stream);
    const refs = references(stream);
    t.ok(refs.length > 1000, `${name}: ${refs.length} references`);
    const wrong = refs.filter(({ value }) =>
      (Array.isArray(value) ? value : [value]).some((v) => v !== null && (typeof v === 'string' ? !ids.has(v) : !EMBEDDED.has((v as Obj).object))),
    );
    t.same(wrong, [], `${name}: no dangling or embedded references`);
  }
  // The references the fold follows are set, not left null.
  const must = (objectType: string, fields: string[]) => {
    for (const object of snapshotsOf(basil, objectType)) {
      for (const field of fields) if (!object[field]) t.fail(`${object.id}.${field} is unset`);
    }
  };
  must('charge', ['customer', 'payment_intent', 'payment_method']);
  must('refund', ['charge', 'payment_intent']);
  must('dispute', ['charge', 'payment_intent']);
  must('credit_note', ['customer', 'invoice']);
  must('subscription', ['customer', 'latest_invoice', 'default_payment_method']);
  must('payment_method', ['customer']);
  must('price', ['product']);
  must('checkout.session', ['customer']);
  must('setup_intent', ['customer']);
  must('discount', ['customer', 'subscription', 'promotion_code']);
  must('promotion_code', ['coupon']);
  must('subscription_schedule', ['customer']);
  must('radar.early_fraud_warning', ['charge', 'payment_intent']);
  must('quote', ['customer']);
  must('invoiceitem', ['customer', 'parent']);
  must('tax_id', ['customer', 'owner']);
});

t.test('objects move through their lifecycle in stream order', async (t) => {
  const allowed: Record<string, string[]> = {
    invoice: ['draft,open,paid'],
    payment_intent: ['requires_payment_method,succeeded'],
    subscription: ['incomplete,active', 'incomplete,active,canceled'],
    setup_intent: ['requires_payment_method,succeeded'],
    quote: ['draft,open,accepted'],
    subscription_schedule: ['active', 'active,released', 'active,canceled'],
    payout: ['pending,in_transit,paid'],
  };
  for (const stream of [basil, legacy]) {
    const statuses = new Map<string, { object: string; seen: string[] }>();
    for (const { data: { object } } of stream) {
      if (!(object.object in allowed)) continue;
      const { seen } = statuses.get(object.id) ?? { seen: [] as string[] };
      if (seen.at(-1) !== object.status) seen.push(object.status);
      statuses.set(object.id, { object: object.object, seen });
    }
    t.same(new Set([...statuses.values()].map((s) => s.object)), new Set(Object.keys(allowed)), 'every object with a lifecycle appears');
    for (const [id, { object, seen }] of statuses) if (!allowed[object]!.includes(seen.join())) t.fail(`${id}: ${seen.join(' -> ')}`);
    for (const charge of byType(stream, 'charge.refunded')) {
      t.ok(charge.amount_refunded > 0 && charge.refunded === (charge.amount_refunded === charge.amount));
    }
    // Stripe sends previous_attributes with *.updated events and no others.
    t.same(
      stream.filter((e) => e.type.endsWith('.updated') !== Object.keys(e.data.previous_attributes ?? {}).length > 0).map((e) => e.type),
      [],
      'previous_attributes on every *.updated event and no other',
    );
  }
  // Disputes, deletions and the rest are rare per customer, so look at a bigger crowd.
  const types = new Set(buildStream({ seed: 7, customers: 60 }).map((e) => e.type));
  for (const type of [
    'customer.created', 'product.created', 'price.created', 'payment_method.attached', 'customer.subscription.created',
    'invoice.created', 'invoice.finalized', 'payment_intent.created', 'payment_intent.succeeded', 'charge.succeeded',
    'invoice_payment.paid', 'invoice.paid', 'invoice.updated', 'customer.subscription.updated', 'charge.refunded',
    'refund.created', 'charge.dispute.created', 'customer.updated', 'checkout.session.completed', 'credit_note.created',
    'customer.subscription.deleted', 'customer.deleted', 'product.updated', 'invoiceitem.created', 'customer.discount.created',
    'tax_rate.created', 'coupon.created', 'coupon.deleted', 'promotion_code.created', 'customer.tax_id.created', 'setup_intent.created',
    'setup_intent.succeeded', 'quote.created', 'quote.finalized', 'quote.accepted', 'subscription_schedule.created',
    'subscription_schedule.released', 'subscription_schedule.canceled', 'radar.early_fraud_warning.created',
    'radar.early_fraud_warning.updated', 'payout.created', 'payout.updated', 'payout.paid',
  ]) {
    t.ok(types.has(type), `60 customers produce ${type}`);
  }
});

t.test('invoice events tie within one second, as real ones do', async (t) => {
  for (const stream of [basil, legacy]) {
    const at = new Map<string, number>();
    // The first of each type: a credit note later sends another invoice.updated.
    for (const e of stream) {
      const key = `${e.data.object.id} ${e.type}`;
      if (e.data.object.object === 'invoice' && !at.has(key)) at.set(key, e.created);
    }
    const second = (id: string, type: string) => at.get(`${id} ${type}`);
    const paid = byType(stream, 'invoice.paid').map((invoice) => invoice.id);
    t.same(paid.filter((id) => second(id, 'invoice.updated') !== second(id, 'invoice.paid')), [], 'invoice.paid and invoice.updated always share a second');
    // The tie that matters: an open and a paid snapshot of one invoice with the same `created`.
    const openPaid = paid.filter((id) => second(id, 'invoice.finalized') === second(id, 'invoice.paid'));
    t.ok(openPaid.length >= 1, `${openPaid.length} of ${paid.length} invoices finalized and paid in the same second`);
  }
});

t.test('events are 1-8 KB of JSON, small objects and legacy invoices excepted', async (t) => {
  // These objects are under a kilobyte at Stripe too; we do not pad them to look bigger.
  const small = new Set([
    'customer', 'price', 'product', 'plan', 'invoice_payment', 'discount', 'coupon', 'promotion_code', 'tax_rate', 'tax_id',
    'payout', 'radar.early_fraud_warning', 'transfer',
  ]);
  for (const stream of [basil, legacy]) {
    const sizes = stream.map((e) => Buffer.byteLength(JSON.stringify(e)));
    const mean = sizes.reduce((a, b) => a + b, 0) / sizes.length;
    t.ok(mean >= 2000 && mean <= 6000, `mean ${Math.round(mean)} bytes`);
    stream.forEach((event, i) => {
      const size = sizes[i]!;
      // Before basil every invoice line embeds its price, plan and tax rates: three lines make ~9 KB.
      const max = event.data.object.object === 'invoice' && stream === legacy ? 12_288 : 8192;
      if (size > max || (size < 1000 && !small.has(event.data.object.object)) || size < 450) t.fail(`${event.type} is ${size} bytes`);
    });
  }
});

t.test('objectsOf keeps the newest snapshot of every object', async (t) => {
  const objects = objectsOf(basil);
  const expected = new Set(basil.map((e) => e.data.object.id));
  for (const subscription of snapshotsOf(basil, 'subscription')) for (const item of subscription.items.data) expected.add(item.id);
  for (const invoice of snapshotsOf(basil, 'invoice')) for (const line of invoice.lines.data) expected.add(line.id);
  t.same(new Set(objects.keys()), expected, 'every object with events of its own, plus subscription items and invoice lines');
  const problems: string[] = [];
  for (const [id, { object, last, lastEvent }] of objects) {
    if (last.id !== id || last.object !== object) problems.push(`${id} holds ${last.object} ${last.id}`);
    if (object === 'invoice' && last.status !== 'paid') problems.push(`${id} ends ${last.status}`);
    if (object === 'subscription' && !['active', 'canceled'].includes(last.status)) problems.push(`${id} ends ${last.status}`);
    if (object === 'subscription_item' && !lastEvent.startsWith('customer.subscription.')) problems.push(`${id} last seen in ${lastEvent}`);
    if (object === 'line_item' && !lastEvent.startsWith('invoice.')) problems.push(`${id} last seen in ${lastEvent}`);
  }
  t.same(problems, []);
  for (const customer of byType(basil, 'customer.deleted')) t.equal(objects.get(customer.id)?.lastEvent, 'customer.deleted');
  // The last event about an object wins, whatever its type.
  const lastInvoiceEvent = basil.findLast((e) => e.data.object.object === 'invoice')!;
  t.equal(objects.get(lastInvoiceEvent.data.object.id)?.last, lastInvoiceEvent.data.object);
});

t.test("a customer's events do not depend on how many customers the stream has", async (t) => {
  const ofFirstCustomer = (stream: StripeEvent[]) => {
    const customer = stream.find((e) => e.type === 'customer.created')!.data.object.id;
    return stream.filter((e) => e.data.object.id === customer || e.data.object.customer === customer).map((e) => [e.type, e.data.object]);
  };
  t.same(ofFirstCustomer(buildStream({ seed: 3, customers: 1 })), ofFirstCustomer(buildStream({ seed: 3, customers: 12 })));
});

t.test("a Connect account is carried on every event of the account; the platform's transfers to it carry none", async (t) => {
  const stream = buildStream({ seed: 7, customers: 10, account: 'acct_1Connected0000' });
  const transfers = stream.filter((e) => e.type.startsWith('transfer.'));
  t.ok(transfers.length >= 2, `${transfers.length} transfer events`);
  t.ok(transfers.every((e) => !('account' in e) && e.data.object.destination === 'acct_1Connected0000'), 'platform events, to the account');
  t.ok(stream.filter((e) => !e.type.startsWith('transfer.')).every((e) => e.account === 'acct_1Connected0000'), 'the rest carry the account');
  t.match(stream[0], { type: 'account.updated', data: { object: { id: 'acct_1Connected0000', object: 'account', charges_enabled: true }, previous_attributes: { charges_enabled: false } } });
  t.ok(stream.some((e) => e.type === 'transfer.reversed' && e.data.object.reversed === true), 'a transfer taken back');
  t.notOk(buildStream({ seed: 7, customers: 10 }).some((e) => e.type.startsWith('transfer.') || e.type.startsWith('account.')), 'none without an account');
});

t.test('the newer objects in each API shape', async (t) => {
  const clover = buildStream({ seed: 7, customers: 20, apiVersion: CLOVER });
  const first = (stream: StripeEvent[], type: string) => stream.find((e) => e.type === type)!.data.object;
  // Promotion codes and discounts: the whole coupon before clover, its id under promotion/source since.
  for (const stream of [basil, legacy]) {
    t.match(first(stream, 'promotion_code.created'), { coupon: { object: 'coupon', id: /^WELCOME10_/ } });
    t.notOk('promotion' in first(stream, 'promotion_code.created'));
    t.match(first(stream, 'customer.discount.created'), { coupon: { object: 'coupon' }, promotion_code: /^promo_/ });
  }
  t.match(first(clover, 'promotion_code.created'), { promotion: { type: 'coupon', coupon: /^WELCOME10_/ } });
  t.notOk('coupon' in first(clover, 'promotion_code.created'));
  t.match(first(clover, 'customer.discount.created'), { source: { type: 'coupon', coupon: /^(WELCOME10|LOYAL20)_/ } });
  // Invoice items and lines: parent/pricing since basil, subscription/price before.
  t.match(first(basil, 'invoiceitem.created'), { parent: { subscription_details: { subscription: /^sub_/ } }, pricing: { price_details: { price: /^price_/ } } });
  t.match(first(legacy, 'invoiceitem.created'), { subscription: /^sub_/, price: { object: 'price' } });
  const lines = (stream: StripeEvent[]) => snapshotsOf(stream, 'invoice').flatMap((i) => i.lines.data);
  t.ok(lines(basil).every((l) => l.parent.type === 'invoice_item_details' ? /^ii_/.test(l.parent.invoice_item_details.invoice_item) : /^sub_/.test(l.parent.subscription_item_details.subscription)));
  t.ok(lines(basil).some((l) => l.parent.type === 'invoice_item_details'), 'an onboarding fee billed on a first invoice');
  t.ok(lines(legacy).every((l) => l.price.object === 'price' && /^sub_/.test(l.subscription) && !('parent' in l)));
  // Tax ids: owner since basil, customer alone before.
  t.match(first(basil, 'customer.tax_id.created'), { customer: /^cus_/, owner: { type: 'customer', customer: /^cus_/ } });
  t.notOk('owner' in first(legacy, 'customer.tax_id.created'));
  // Plans: an account before basil creates its recurring prices as plans, with the price's id.
  const plans = byType(legacy, 'plan.created');
  t.same(plans.map((p) => p.id), byType(legacy, 'price.created').filter((p) => p.recurring).map((p) => p.id));
  t.notOk(basil.some((e) => e.type.startsWith('plan.')), 'basil accounts send no plan events here');
});

t.test('invoices add up: lines, their discount and tax, the totals', async (t) => {
  for (const stream of [basil, legacy]) {
    const problems: string[] = [];
    let discounted = 0;
    let taxed = 0;
    for (const invoice of snapshotsOf(stream, 'invoice')) {
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      const lines = invoice.lines.data;
      const discount = sum(lines.flatMap((l: Obj) => l.discount_amounts.map((d: Obj) => d.amount)));
      const tax = sum(lines.flatMap((l: Obj) => (stream === basil ? l.taxes : l.tax_amounts).map((x: Obj) => x.amount)));
      if (invoice.subtotal !== sum(lines.map((l: Obj) => l.amount))) problems.push(`${invoice.id} subtotal`);
      if (invoice.total !== invoice.subtotal - discount + tax || invoice.amount_due !== invoice.total) problems.push(`${invoice.id} total`);
      if (sum(invoice.total_discount_amounts.map((d: Obj) => d.amount)) !== discount) problems.push(`${invoice.id} discount`);
      if (JSON.stringify(invoice.discounts) !== JSON.stringify(invoice.total_discount_amounts.map((d: Obj) => d.discount))) problems.push(`${invoice.id} discounts`);
      if (discount > 0) discounted++;
      if (tax > 0) taxed++;
    }
    t.same(problems, []);
    t.ok(discounted > 0 && taxed > 0, `${discounted} invoices with a discount, ${taxed} with tax`);
  }
  // Subscription items carry their tax rates whole; a customer who moves gets the Austrian rate.
  const rates = new Set(snapshotsOf(basil, 'subscription').flatMap((s) => s.items.data.flatMap((i: Obj) => i.tax_rates.map((r: Obj) => `${r.object} ${r.country}`))));
  t.same([...rates].sort(), ['tax_rate AT', 'tax_rate DE']);
});

t.test('any seed and size: ordered, unique, resolvable', async (t) => {
  fc.assert(
    fc.property(
      fc.integer(),
      fc.integer({ min: 0, max: 6 }),
      fc.constantFrom(BASIL, LEGACY, '2025-09-30.clover', '2023-10-16'),
      (seed, customers, apiVersion) => {
        const stream = buildStream({ seed, customers, apiVersion });
        const ids = objectIds(stream);
        return (
          stream.every((e, i) => i === 0 || e.created >= stream[i - 1]!.created) &&
          new Set(stream.map((e) => e.id)).size === stream.length &&
          references(stream).every(({ value }) => value === null || typeof value !== 'string' || ids.has(value)) &&
          stream.some((e) => e.type === 'invoice_payment.paid') === (customers > 0 && apiVersion >= '2025-03-31')
        );
      },
    ),
    { numRuns: 40 },
  );
  t.throws(() => buildStream({ seed: 1.5 }), RangeError);
  t.throws(() => buildStream({ seed: 2 ** 31 }), RangeError);
});

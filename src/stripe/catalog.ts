// The Stripe catalogue: every object webhook-inbox folds, written once. Its table, id prefixes,
// promoted columns, parent links, lifecycle ranks and embedded children are read from here by the
// planner (stripe/graph.ts), by the writer functions rendered for the database (db/fold-sql.ts),
// by the parents-first order, and by the test that holds the schema in sql/ against it.
// Pure data and small getters: no I/O.
//
// To fold a new object: add its spec below, create its table in a new numbered migration (the
// common columns are listed in COMMON_COLUMNS), and add a fixture to the test stream.
// test/catalog.test.ts names whatever the migration and the spec disagree on.

export type StripeObject = Record<string, unknown>;
type Getter = (o: StripeObject) => unknown;

/** Postgres types a promoted column may have; the writer casts the planned value to it. */
export type ColumnType = 'text' | 'bigint' | 'integer' | 'boolean' | 'timestamptz' | 'numeric';

export type ColumnSpec = { type: ColumnType; get: Getter };

/** A parent link: a real foreign key `column` -> `parent`'s table, set only once the parent row exists. */
export type LinkSpec = { column: string; parent: string; ref: Getter };

/**
 * A many-to-many link (an invoice's discounts, a subscription item's tax rates): the rows of the
 * link `table`, (`<child>_id`, `<parent>_id`) with real foreign keys, are the set the newest
 * snapshot names. A parent that has not arrived is parked like any other link, with the link
 * table's name as its link column.
 */
export type ManyLinkSpec = { table: string; childColumn: string; parentColumn: string; parent: string; refs: Getter };

/**
 * Children a snapshot carries whole and that are the only source of their rows (a subscription's
 * items, an invoice's lines): each element of the list at `path` with an id becomes a row, with
 * `inject` naming its parent, and `keep`, when set, deciding which elements are rows at all. A
 * path, not a getter: the fold reads each child's snapshot from the stored event at that path
 * instead of receiving a second copy. An embedded child needs no `created` (invoice lines have
 * none), unlike an expanded parent.
 */
export type EmbedSpec = {
  object: string;
  path: string[];
  inject: (parent: StripeObject) => StripeObject;
  keep?: (item: StripeObject) => boolean;
};

export type ObjectSpec = {
  /** Stripe's `object` name, e.g. `invoice`, `checkout.session`. */
  object: string;
  table: string;
  /** Id prefixes, to recognise a snapshot whose `object` field is missing. */
  prefixes: string[];
  /** Where Stripe's API retrieves one by id, under /v1/ (none for objects without a retrieve endpoint). */
  apiPath?: string;
  /** Promoted columns besides the common ones; back-references down the graph go here (no FK). */
  columns: Record<string, ColumnSpec>;
  links: LinkSpec[];
  many: ManyLinkSpec[];
  embeds: EmbedSpec[];
  amount?: Getter;
  /** Lifecycle rank of a status: the later state wins a tie within the same second. */
  rank: Record<string, number>;
  /** Later states that the status alone does not show (a refunded charge stays `succeeded`). */
  extraRank?: (o: StripeObject) => number;
};

/**
 * Columns every object table has besides `id`, its links and its promoted columns. The order key
 * (last_event_created, last_event_rank, last_event_id) decides which snapshot is newest; version
 * counts the row's changes.
 */
export const COMMON_COLUMNS = {
  status: 'text',
  amount: 'bigint',
  currency: 'text',
  created: 'timestamptz',
  livemode: 'boolean',
  account: 'text',
  deleted: 'boolean',
  data: 'jsonb',
  api_version: 'text',
  last_event_id: 'text',
  last_event_created: 'timestamptz',
  last_event_rank: 'integer',
  updated_at: 'timestamptz',
  version: 'bigint',
} as const;

// ---- Getters -------------------------------------------------------------------------------------

export const field = (name: string): Getter => (o) => o[name];

export const path =
  (...keys: string[]): Getter =>
  (o) => {
    let v: unknown = o;
    for (const k of keys) {
      if (v === null || typeof v !== 'object') return undefined;
      v = (v as StripeObject)[k];
    }
    return v;
  };

/** The first getter that finds something: for fields that moved between API versions. */
export const either =
  (...getters: Getter[]): Getter =>
  (o) => {
    for (const get of getters) {
      const v = get(o);
      if (v !== undefined && v !== null) return v;
    }
    return undefined;
  };

/** An expandable field holds an id, a whole object, or nothing: the id either way. */
export function refId(v: unknown): string | null {
  if (typeof v === 'string') return v.length > 0 ? v : null;
  if (v !== null && typeof v === 'object' && typeof (v as StripeObject).id === 'string') {
    const id = (v as StripeObject).id as string;
    return id.length > 0 ? id : null;
  }
  return null;
}

export function unixTime(v: unknown): string | null {
  if (typeof v !== 'number' || !Number.isFinite(v)) return null;
  const date = new Date(v * 1000);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

const text = (get: Getter): ColumnSpec => ({ type: 'text', get });
/** A back-reference or other id-valued field: the id, whether Stripe sent an id or an object. */
const ref = (get: Getter): ColumnSpec => ({ type: 'text', get: (o) => refId(get(o)) });
const time = (name: string): ColumnSpec => ({ type: 'timestamptz', get: (o) => unixTime(o[name]) });
const link = (column: string, parent: string, get: Getter): LinkSpec => ({ column, parent, ref: get });
const decimal = (name: string): ColumnSpec => ({ type: 'numeric', get: (o) => (typeof o[name] === 'number' ? o[name] : null) });
const flag = (name: string): ColumnSpec => ({ type: 'boolean', get: (o) => (typeof o[name] === 'boolean' ? o[name] : null) });

const spec = (s: Omit<ObjectSpec, 'columns' | 'links' | 'many' | 'embeds' | 'rank'> & Partial<ObjectSpec>): ObjectSpec => ({
  columns: {},
  links: [],
  many: [],
  embeds: [],
  rank: {},
  ...s,
});

// ---- The objects ---------------------------------------------------------------------------------
// Ranks follow each object's documented lifecycle. Parents may appear in any order here; the
// parents-first order (TABLES) is derived from the links.

const OBJECTS: ObjectSpec[] = [
  spec({
    object: 'customer',
    table: 'customers',
    prefixes: ['cus_'],
    apiPath: 'customers',
    columns: { email: text(field('email')), name: text(field('name')) },
  }),
  spec({
    object: 'product',
    table: 'products',
    prefixes: ['prod_'],
    apiPath: 'products',
    columns: { default_price_id: ref(field('default_price')) },
  }),
  spec({
    object: 'price',
    table: 'prices',
    prefixes: ['price_'],
    apiPath: 'prices',
    links: [link('product_id', 'product', field('product'))],
    amount: field('unit_amount'),
  }),
  spec({
    object: 'payment_method',
    table: 'payment_methods',
    prefixes: ['pm_'],
    apiPath: 'payment_methods',
    links: [link('customer_id', 'customer', field('customer'))],
  }),
  spec({
    object: 'subscription',
    table: 'subscriptions',
    prefixes: ['sub_'],
    apiPath: 'subscriptions',
    links: [link('customer_id', 'customer', field('customer'))],
    columns: {
      latest_invoice_id: ref(field('latest_invoice')),
      default_payment_method_id: ref(field('default_payment_method')),
    },
    rank: { incomplete: 1, trialing: 2, active: 2, paused: 2, past_due: 3, unpaid: 3, incomplete_expired: 4, canceled: 4 },
    // A subscription snapshot carries its items whole: they are the only source of item rows.
    embeds: [{ object: 'subscription_item', path: ['items', 'data'], inject: (s) => ({ subscription: s.id }) }],
  }),
  spec({
    object: 'subscription_item',
    table: 'subscription_items',
    prefixes: ['si_'],
    apiPath: 'subscription_items',
    links: [link('subscription_id', 'subscription', field('subscription')), link('price_id', 'price', field('price'))],
    // Stripe sends an item's tax rates as whole objects: they become tax_rates rows too.
    many: [{ table: 'subscription_item_tax_rates', childColumn: 'subscription_item_id', parentColumn: 'tax_rate_id', parent: 'tax_rate', refs: field('tax_rates') }],
    columns: { current_period_start: time('current_period_start'), current_period_end: time('current_period_end') },
  }),
  spec({
    object: 'invoice',
    table: 'invoices',
    prefixes: ['in_'],
    apiPath: 'invoices',
    links: [
      link('customer_id', 'customer', field('customer')),
      // Since API 2025-03-31 the subscription moved under parent.subscription_details.
      link('subscription_id', 'subscription', either(path('parent', 'subscription_details', 'subscription'), field('subscription'))),
    ],
    // Discount ids (di_...), or whole discounts when expanded.
    many: [{ table: 'invoice_discounts', childColumn: 'invoice_id', parentColumn: 'discount_id', parent: 'discount', refs: field('discounts') }],
    columns: { number: text(field('number')) },
    amount: field('amount_due'),
    rank: { draft: 1, open: 2, paid: 3, void: 3, uncollectible: 3 },
    // An invoice snapshot carries its lines (the first page of them: Stripe embeds up to ten).
    // Before API 2019-12-03 a line's id was its subscription's, subscription item's or invoice
    // item's (sub_, si_, sli_, ii_...), the same on every invoice that billed it: as rows they would
    // jump from invoice to invoice. Only lines with their own il_ ids are folded.
    embeds: [
      {
        object: 'line_item',
        path: ['lines', 'data'],
        inject: (i) => ({ invoice: i.id }),
        keep: (line) => typeof line.id === 'string' && line.id.startsWith('il_'),
      },
    ],
  }),
  spec({
    object: 'line_item',
    table: 'invoice_line_items',
    prefixes: ['il_'],
    // Listed under its invoice (/v1/invoices/:id/lines): no retrieve endpoint of its own.
    links: [
      link('invoice_id', 'invoice', field('invoice')),
      // Since API 2025-03-31 under parent.subscription_item_details or parent.invoice_item_details.
      link(
        'subscription_id',
        'subscription',
        either(
          path('parent', 'subscription_item_details', 'subscription'),
          path('parent', 'invoice_item_details', 'subscription'),
          field('subscription'),
        ),
      ),
      link('price_id', 'price', either(path('pricing', 'price_details', 'price'), field('price'))),
    ],
    amount: field('amount'),
  }),
  spec({
    object: 'invoiceitem',
    table: 'invoiceitems',
    prefixes: ['ii_'],
    apiPath: 'invoiceitems',
    links: [
      link('customer_id', 'customer', field('customer')),
      link('invoice_id', 'invoice', field('invoice')),
      // Since API 2025-03-31 under parent.subscription_details and pricing.price_details.
      link('subscription_id', 'subscription', either(path('parent', 'subscription_details', 'subscription'), field('subscription'))),
      link('price_id', 'price', either(path('pricing', 'price_details', 'price'), field('price'))),
    ],
    amount: field('amount'),
  }),
  spec({
    object: 'payment_intent',
    table: 'payment_intents',
    prefixes: ['pi_'],
    apiPath: 'payment_intents',
    links: [
      link('customer_id', 'customer', field('customer')),
      // Only before API 2025-03-31; later versions link through invoice_payment objects.
      link('invoice_id', 'invoice', field('invoice')),
    ],
    columns: { latest_charge_id: ref(field('latest_charge')), payment_method_id: ref(field('payment_method')) },
    amount: field('amount'),
    rank: {
      requires_payment_method: 1,
      requires_confirmation: 1,
      requires_action: 1,
      processing: 2,
      requires_capture: 2,
      succeeded: 3,
      canceled: 3,
    },
  }),
  spec({
    object: 'invoice_payment',
    table: 'invoice_payments',
    prefixes: ['inpay_'],
    apiPath: 'invoice_payments',
    links: [
      link('invoice_id', 'invoice', field('invoice')),
      link('payment_intent_id', 'payment_intent', path('payment', 'payment_intent')),
    ],
    amount: field('amount_paid'),
    rank: { open: 1, paid: 2, canceled: 2 },
  }),
  spec({
    object: 'charge',
    table: 'charges',
    prefixes: ['ch_', 'py_'],
    apiPath: 'charges',
    links: [
      link('customer_id', 'customer', field('customer')),
      link('payment_intent_id', 'payment_intent', field('payment_intent')),
      link('invoice_id', 'invoice', field('invoice')),
    ],
    amount: field('amount'),
    rank: { pending: 1, succeeded: 2, failed: 2 },
    // A charge stays `succeeded` when it is refunded or disputed: those are later states.
    extraRank: (o) =>
      o.disputed === true ? 4 : o.refunded === true || (typeof o.amount_refunded === 'number' && o.amount_refunded > 0) ? 3 : 0,
  }),
  spec({
    object: 'refund',
    table: 'refunds',
    prefixes: ['re_', 'pyr_'],
    apiPath: 'refunds',
    links: [link('charge_id', 'charge', field('charge')), link('payment_intent_id', 'payment_intent', field('payment_intent'))],
    amount: field('amount'),
    rank: { pending: 1, requires_action: 1, succeeded: 2, failed: 2, canceled: 2 },
  }),
  spec({
    object: 'dispute',
    table: 'disputes',
    prefixes: ['dp_', 'du_'],
    apiPath: 'disputes',
    links: [link('charge_id', 'charge', field('charge')), link('payment_intent_id', 'payment_intent', field('payment_intent'))],
    amount: field('amount'),
    rank: {
      warning_needs_response: 1,
      needs_response: 1,
      warning_under_review: 2,
      under_review: 2,
      warning_closed: 3,
      won: 3,
      lost: 3,
    },
  }),
  spec({
    object: 'checkout.session',
    table: 'checkout_sessions',
    prefixes: ['cs_'],
    apiPath: 'checkout/sessions',
    links: [
      link('customer_id', 'customer', field('customer')),
      link('subscription_id', 'subscription', field('subscription')),
      link('payment_intent_id', 'payment_intent', field('payment_intent')),
      link('invoice_id', 'invoice', field('invoice')),
    ],
    amount: field('amount_total'),
    rank: { open: 1, complete: 2, expired: 2 },
  }),
  spec({
    object: 'setup_intent',
    table: 'setup_intents',
    prefixes: ['seti_'],
    apiPath: 'setup_intents',
    links: [link('customer_id', 'customer', field('customer')), link('payment_method_id', 'payment_method', field('payment_method'))],
    rank: { requires_payment_method: 1, requires_confirmation: 1, requires_action: 1, processing: 2, succeeded: 3, canceled: 3 },
  }),
  spec({
    object: 'subscription_schedule',
    table: 'subscription_schedules',
    prefixes: ['sub_sched_'],
    apiPath: 'subscription_schedules',
    // A released schedule names no subscription any more (released_subscription keeps the id).
    links: [link('customer_id', 'customer', field('customer')), link('subscription_id', 'subscription', field('subscription'))],
    rank: { not_started: 1, active: 2, completed: 3, released: 3, canceled: 3 },
  }),
  spec({
    object: 'plan',
    table: 'plans',
    // A plan shares its id with its price (price_...), or has one its creator chose: the price_
    // prefix stays the price's, and a plan is known by its object field or its plan.* event.
    prefixes: ['plan_'],
    apiPath: 'plans',
    links: [link('product_id', 'product', field('product'))],
    amount: field('amount'),
  }),
  spec({
    object: 'coupon',
    table: 'coupons',
    // Coupon ids are whatever their creator chose (WELCOME10): no prefix.
    prefixes: [],
    apiPath: 'coupons',
    columns: { name: text(field('name')), percent_off: decimal('percent_off') },
    amount: field('amount_off'),
  }),
  spec({
    object: 'promotion_code',
    table: 'promotion_codes',
    prefixes: ['promo_'],
    apiPath: 'promotion_codes',
    links: [
      // Since API 2025-09-30 the coupon's id is under promotion.coupon; before, the whole coupon was
      // at coupon (so it becomes a coupons row too).
      link('coupon_id', 'coupon', either(path('promotion', 'coupon'), field('coupon'))),
      link('customer_id', 'customer', field('customer')),
    ],
    columns: { code: text(field('code')) },
  }),
  spec({
    object: 'discount',
    table: 'discounts',
    prefixes: ['di_'],
    // Discounts have no retrieve endpoint; they arrive as customer.discount.* events.
    links: [
      link('customer_id', 'customer', field('customer')),
      link('subscription_id', 'subscription', field('subscription')),
      // Since API 2025-09-30 the coupon's id is under source.coupon; before, the whole coupon at coupon.
      link('coupon_id', 'coupon', either(path('source', 'coupon'), field('coupon'))),
      link('promotion_code_id', 'promotion_code', field('promotion_code')),
    ],
  }),
  spec({
    object: 'tax_rate',
    table: 'tax_rates',
    prefixes: ['txr_'],
    apiPath: 'tax_rates',
    columns: { percentage: decimal('percentage') },
  }),
  spec({
    object: 'tax_id',
    table: 'tax_ids',
    prefixes: ['txi_'],
    apiPath: 'tax_ids',
    // owner.customer since tax ids may belong to an account too (2024); customer before.
    links: [link('customer_id', 'customer', either(path('owner', 'customer'), field('customer')))],
  }),
  spec({
    object: 'quote',
    table: 'quotes',
    prefixes: ['qt_'],
    apiPath: 'quotes',
    links: [
      link('customer_id', 'customer', field('customer')),
      link('subscription_id', 'subscription', field('subscription')),
      link('invoice_id', 'invoice', field('invoice')),
    ],
    amount: field('amount_total'),
    rank: { draft: 1, open: 2, accepted: 3, canceled: 3 },
  }),
  spec({
    object: 'payout',
    table: 'payouts',
    prefixes: ['po_'],
    apiPath: 'payouts',
    columns: { arrival_date: time('arrival_date') },
    amount: field('amount'),
    rank: { pending: 1, in_transit: 2, paid: 3, failed: 3, canceled: 3 },
  }),
  spec({
    object: 'radar.early_fraud_warning',
    table: 'early_fraud_warnings',
    prefixes: ['issfr_'],
    apiPath: 'radar/early_fraud_warnings',
    links: [link('charge_id', 'charge', field('charge')), link('payment_intent_id', 'payment_intent', field('payment_intent'))],
    columns: { fraud_type: text(field('fraud_type')) },
    // No status: a warning stops being actionable once the charge is refunded or disputed.
    extraRank: (o) => (o.actionable === false ? 1 : 0),
  }),
  spec({
    object: 'account',
    table: 'accounts',
    prefixes: ['acct_'],
    apiPath: 'accounts',
    columns: { charges_enabled: flag('charges_enabled'), payouts_enabled: flag('payouts_enabled') },
  }),
  spec({
    object: 'transfer',
    table: 'transfers',
    prefixes: ['tr_'],
    apiPath: 'transfers',
    // Named for what it is: `account` is every row's Connect account, the one the event came from.
    links: [link('destination_account_id', 'account', field('destination'))],
    amount: field('amount'),
    // No status: a reversal is a later state.
    extraRank: (o) => (o.reversed === true ? 2 : typeof o.amount_reversed === 'number' && o.amount_reversed > 0 ? 1 : 0),
  }),
  spec({
    object: 'credit_note',
    table: 'credit_notes',
    prefixes: ['cn_'],
    apiPath: 'credit_notes',
    links: [link('invoice_id', 'invoice', field('invoice')), link('customer_id', 'customer', field('customer'))],
    amount: field('total'),
    rank: { issued: 1, void: 2 },
  }),
];

// ---- Derived views of the catalogue ---------------------------------------------------------------

/** Specs by Stripe object name. */
export const SPECS: ReadonlyMap<string, ObjectSpec> = new Map(OBJECTS.map((s) => [s.object, s]));

/** Specs by table name. */
export const BY_TABLE: ReadonlyMap<string, ObjectSpec> = new Map(OBJECTS.map((s) => [s.table, s]));

/** The table of a Stripe object name; throws for an object the catalogue does not know. */
export function tableOf(object: string): string {
  const s = SPECS.get(object);
  if (!s) throw new Error(`the catalogue has no object ${object}`);
  return s.table;
}

/** Every table a spec links to, by its parent object's table. */
export function parentTables(s: ObjectSpec): string[] {
  return [...new Set([...s.links.map((l) => tableOf(l.parent)), ...s.many.map((m) => tableOf(m.parent))])];
}

/**
 * Parent-first: every table's parents come earlier. A fold writes its rows in this order, so a
 * parent embedded in a child's snapshot exists before the child checks for it.
 */
export const TABLES: readonly string[] = (() => {
  const order: string[] = [];
  const visiting = new Set<string>();
  const visit = (s: ObjectSpec) => {
    if (order.includes(s.table)) return;
    if (visiting.has(s.table)) throw new Error(`the catalogue's links form a cycle through ${s.table}`);
    visiting.add(s.table);
    for (const parent of parentTables(s)) visit(BY_TABLE.get(parent)!);
    visiting.delete(s.table);
    order.push(s.table);
  };
  for (const s of OBJECTS) visit(s);
  return order;
})();

/** The object a snapshot is, from its id prefix, when its `object` field is missing. */
export function objectOfId(id: string): string | undefined {
  let best: { object: string; length: number } | undefined;
  for (const s of OBJECTS) {
    for (const p of s.prefixes) {
      if (id.startsWith(p) && (!best || p.length > best.length)) best = { object: s.object, length: p.length };
    }
  }
  return best?.object;
}

/**
 * Event types whose family (the type without its last part, the action) is not the object's own
 * name: Stripe names these after the parent (`customer.subscription.updated` carries a
 * subscription, `customer.source.created` a card or bank account).
 */
const TYPE_FAMILIES: Record<string, string> = {
  'customer.subscription': 'subscription',
  'customer.discount': 'discount',
  'customer.tax_id': 'tax_id',
  'charge.dispute': 'dispute',
  'charge.refund': 'refund',
};

/**
 * The object an event type is about, when its snapshot does not say: its family, e.g. `invoice`
 * for `invoice.payment_succeeded`, `checkout.session` for `checkout.session.completed`. The name
 * may be one the catalogue does not fold (`customer.source`): then the event is ignored as such.
 */
export function objectOfType(type: string): string | undefined {
  const dot = type.lastIndexOf('.');
  if (dot <= 0) return undefined;
  const family = type.slice(0, dot);
  return TYPE_FAMILIES[family] ?? family;
}

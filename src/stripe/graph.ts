// Pure Stripe graph logic: which rows an event writes, their parents, and the order key that
// decides which snapshot is newest. No I/O here, so every rule is testable without a database.
//
// The table an event writes is chosen by the object it carries (`data.object.object`), not by the
// event type: `charge.dispute.created` carries a dispute, `customer.subscription.updated` a
// subscription, and types we have never heard of still fold if their object is one we know.

export type TableName =
  | 'customers'
  | 'products'
  | 'prices'
  | 'payment_methods'
  | 'subscriptions'
  | 'subscription_items'
  | 'invoices'
  | 'payment_intents'
  | 'invoice_payments'
  | 'charges'
  | 'refunds'
  | 'disputes'
  | 'checkout_sessions'
  | 'credit_notes';

/** Parent-first: a table's parents all come earlier in this list. */
export const TABLES: readonly TableName[] = [
  'customers',
  'products',
  'prices',
  'payment_methods',
  'subscriptions',
  'subscription_items',
  'invoices',
  'payment_intents',
  'invoice_payments',
  'charges',
  'refunds',
  'disputes',
  'checkout_sessions',
  'credit_notes',
];

type StripeObject = Record<string, unknown>;

/** A parent link: a real foreign key, set only once the parent row exists. */
type LinkSpec = { column: string; parent: TableName; ref: (o: StripeObject) => unknown };

type ObjectSpec = {
  table: TableName;
  links: LinkSpec[];
  /** Promoted columns besides the common ones; back-references down the graph go here (no FK). */
  columns?: Record<string, (o: StripeObject) => unknown>;
  amount?: (o: StripeObject) => unknown;
  /** Lifecycle rank of a status: the later state wins a tie within the same second. */
  rank?: Record<string, number>;
};

const field = (name: string) => (o: StripeObject) => o[name];
const path =
  (...keys: string[]) =>
  (o: StripeObject): unknown => {
    let v: unknown = o;
    for (const k of keys) {
      if (v === null || typeof v !== 'object') return undefined;
      v = (v as StripeObject)[k];
    }
    return v;
  };
const idOf = (ref: (o: StripeObject) => unknown) => (o: StripeObject) => refId(ref(o));
const time = (name: string) => (o: StripeObject) => unixTime(o[name]);

// Object specs by Stripe's `object` name. Ranks follow each object's documented lifecycle.
const SPECS: Record<string, ObjectSpec> = {
  customer: {
    table: 'customers',
    links: [],
    columns: { email: field('email'), name: field('name') },
  },
  product: {
    table: 'products',
    links: [],
    columns: { default_price_id: idOf(field('default_price')) },
  },
  price: {
    table: 'prices',
    links: [{ column: 'product_id', parent: 'products', ref: field('product') }],
    amount: field('unit_amount'),
  },
  payment_method: {
    table: 'payment_methods',
    links: [{ column: 'customer_id', parent: 'customers', ref: field('customer') }],
  },
  subscription: {
    table: 'subscriptions',
    links: [{ column: 'customer_id', parent: 'customers', ref: field('customer') }],
    columns: {
      latest_invoice_id: idOf(field('latest_invoice')),
      default_payment_method_id: idOf(field('default_payment_method')),
    },
    rank: {
      incomplete: 1,
      trialing: 2,
      active: 2,
      paused: 2,
      past_due: 3,
      unpaid: 3,
      incomplete_expired: 4,
      canceled: 4,
    },
  },
  subscription_item: {
    table: 'subscription_items',
    links: [
      { column: 'subscription_id', parent: 'subscriptions', ref: field('subscription') },
      { column: 'price_id', parent: 'prices', ref: field('price') },
    ],
    columns: {
      current_period_start: time('current_period_start'),
      current_period_end: time('current_period_end'),
    },
  },
  invoice: {
    table: 'invoices',
    links: [
      { column: 'customer_id', parent: 'customers', ref: field('customer') },
      // Since API 2025-03-31 the subscription moved under parent.subscription_details.
      {
        column: 'subscription_id',
        parent: 'subscriptions',
        ref: (o) => path('parent', 'subscription_details', 'subscription')(o) ?? o.subscription,
      },
    ],
    columns: { number: field('number') },
    amount: field('amount_due'),
    rank: { draft: 1, open: 2, paid: 3, void: 3, uncollectible: 3 },
  },
  payment_intent: {
    table: 'payment_intents',
    links: [
      { column: 'customer_id', parent: 'customers', ref: field('customer') },
      // Only before API 2025-03-31; later versions link through invoice_payment objects.
      { column: 'invoice_id', parent: 'invoices', ref: field('invoice') },
    ],
    columns: {
      latest_charge_id: idOf(field('latest_charge')),
      payment_method_id: idOf(field('payment_method')),
    },
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
  },
  invoice_payment: {
    table: 'invoice_payments',
    links: [
      { column: 'invoice_id', parent: 'invoices', ref: field('invoice') },
      { column: 'payment_intent_id', parent: 'payment_intents', ref: path('payment', 'payment_intent') },
    ],
    amount: field('amount_paid'),
    rank: { open: 1, paid: 2, canceled: 2 },
  },
  charge: {
    table: 'charges',
    links: [
      { column: 'customer_id', parent: 'customers', ref: field('customer') },
      { column: 'payment_intent_id', parent: 'payment_intents', ref: field('payment_intent') },
      { column: 'invoice_id', parent: 'invoices', ref: field('invoice') },
    ],
    amount: field('amount'),
    // Refunded and disputed are later states than succeeded (see chargeRank).
    rank: { pending: 1, succeeded: 2, failed: 2 },
  },
  refund: {
    table: 'refunds',
    links: [
      { column: 'charge_id', parent: 'charges', ref: field('charge') },
      { column: 'payment_intent_id', parent: 'payment_intents', ref: field('payment_intent') },
    ],
    amount: field('amount'),
    rank: { pending: 1, requires_action: 1, succeeded: 2, failed: 2, canceled: 2 },
  },
  dispute: {
    table: 'disputes',
    links: [
      { column: 'charge_id', parent: 'charges', ref: field('charge') },
      { column: 'payment_intent_id', parent: 'payment_intents', ref: field('payment_intent') },
    ],
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
  },
  'checkout.session': {
    table: 'checkout_sessions',
    links: [
      { column: 'customer_id', parent: 'customers', ref: field('customer') },
      { column: 'subscription_id', parent: 'subscriptions', ref: field('subscription') },
      { column: 'payment_intent_id', parent: 'payment_intents', ref: field('payment_intent') },
      { column: 'invoice_id', parent: 'invoices', ref: field('invoice') },
    ],
    amount: field('amount_total'),
    rank: { open: 1, complete: 2, expired: 2 },
  },
  credit_note: {
    table: 'credit_notes',
    links: [
      { column: 'invoice_id', parent: 'invoices', ref: field('invoice') },
      { column: 'customer_id', parent: 'customers', ref: field('customer') },
    ],
    amount: field('total'),
    rank: { issued: 1, void: 2 },
  },
};

/** Stripe object names we fold, e.g. `invoice`, `checkout.session`. */
export const FOLDED_OBJECTS: readonly string[] = Object.keys(SPECS);

/** Rank of a tombstone: a deletion is the last state of any object. */
export const DELETED_RANK = 100;

/**
 * The snapshot's place in time: newest wins, compared field by field in this order (fold_event()
 * in sql/002_stripe_graph.sql compares them, under the row's lock).
 */
export type OrderKey = {
  /** event.created, unix seconds (Stripe's resolution is one second). */
  created: number;
  /** Lifecycle rank of the snapshot's status: breaks ties within a second. */
  rank: number;
  /** The event id: a last, arbitrary but arrival-independent tie-break. */
  eventId: string;
};

export type PlannedLink = { column: string; parentTable: TableName; parentId: string | null };

/** One row to write: an object table row with its links and promoted columns. */
export type PlannedWrite = {
  table: TableName;
  id: string;
  links: PlannedLink[];
  /** Every column except id, links, data and the order key. */
  columns: Record<string, unknown>;
  /**
   * Where the row's snapshot (`data`) sits in the event payload, e.g. ["data", "object"]. The
   * database takes it from the stored event instead of receiving a second copy.
   */
  dataPath: string[];
  key: OrderKey;
};

export type FoldPlan =
  | {
      kind: 'fold';
      writes: PlannedWrite[];
      /** Advisory lock keys of the rows this plan writes, sorted: held exclusively. */
      lockKeys: string[];
      /**
       * Keys of the parents it links to without writing them, sorted: held shared. A parent's
       * writer holds its key exclusively, so a child never checks for its parent (and parks the
       * link) while that parent commits unseen; the many children of one parent (every
       * subscription item of a price, every invoice of a customer) fold side by side.
       */
      shareKeys: string[];
    }
  | { kind: 'ignore'; reason: string };

/** The event cannot be folded and never will be: fail it at once, without retries. */
export class MalformedEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedEventError';
  }
}

/** An expandable field holds an id, a whole object, or nothing: the id either way. */
export function refId(v: unknown): string | null {
  if (typeof v === 'string') return v.length > 0 ? v : null;
  if (v !== null && typeof v === 'object' && typeof (v as StripeObject).id === 'string') {
    return (v as StripeObject).id as string;
  }
  return null;
}

function unixTime(v: unknown): string | null {
  if (typeof v !== 'number' || !Number.isFinite(v)) return null;
  const date = new Date(v * 1000);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** An embedded object is folded as its own row only when it is a full object, not a stub. */
function isComplete(v: unknown): v is StripeObject {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as StripeObject;
  return (
    typeof o.id === 'string' &&
    typeof o.object === 'string' &&
    o.object in SPECS &&
    typeof o.created === 'number' &&
    o.deleted !== true
  );
}

function rankOf(spec: ObjectSpec, o: StripeObject, deleted: boolean): number {
  if (deleted) return DELETED_RANK;
  const status = typeof o.status === 'string' ? o.status : undefined;
  let rank = (status && spec.rank?.[status]) || 0;
  if (spec.table === 'charges') {
    // A charge stays `succeeded` when it is refunded or disputed: those are later states.
    if (o.disputed === true) rank = Math.max(rank, 4);
    else if (o.refunded === true || (typeof o.amount_refunded === 'number' && o.amount_refunded > 0)) {
      rank = Math.max(rank, 3);
    }
  }
  return rank;
}

type Envelope = { eventId: string; created: number; type: string; account: string | null; apiVersion: string | null; livemode: boolean | null };

/** Where `target` sits inside `o` (by identity), a few levels deep at most. */
function pathTo(o: StripeObject, target: unknown, depth = 3): string[] | null {
  for (const [k, v] of Object.entries(o)) {
    if (v === target) return [k];
    if (depth > 1 && v !== null && typeof v === 'object') {
      const inner = pathTo(v as StripeObject, target, depth - 1);
      if (inner) return [k, ...inner];
    }
  }
  return null;
}

function planObject(
  o: StripeObject,
  at: string[],
  env: Envelope,
  deleted: boolean,
  writes: PlannedWrite[],
  depth: number,
): void {
  const spec = SPECS[o.object as string]!;
  if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > 255) {
    throw new MalformedEventError(`${o.object} without a usable id`);
  }
  const links: PlannedLink[] = spec.links.map((l) => {
    const ref = l.ref(o);
    // Fold what Stripe embedded whole (an expanded parent) as its own row, parent first.
    if (depth < 2 && isComplete(ref)) {
      const where = pathTo(o, ref);
      if (where) planObject(ref, [...at, ...where], env, false, writes, depth + 1);
    }
    return { column: l.column, parentTable: l.parent, parentId: refId(ref) };
  });

  const columns: Record<string, unknown> = {
    status: typeof o.status === 'string' ? o.status : null,
    amount: numberOrNull(spec.amount?.(o)),
    currency: typeof o.currency === 'string' ? o.currency : null,
    created: unixTime(o.created),
    livemode: typeof o.livemode === 'boolean' ? o.livemode : env.livemode,
    account: env.account,
    deleted,
    api_version: env.apiVersion,
  };
  for (const [name, get] of Object.entries(spec.columns ?? {})) {
    const v = get(o);
    columns[name] = v === undefined ? null : v;
  }
  writes.push({
    table: spec.table,
    id: o.id,
    links,
    columns,
    dataPath: at,
    key: { created: env.created, rank: rankOf(spec, o, deleted), eventId: env.eventId },
  });

  // A subscription snapshot carries its items whole: they are the only source of item rows.
  if (spec.table === 'subscriptions') {
    const items = path('items', 'data')(o);
    if (Array.isArray(items)) {
      items.forEach((item, i) => {
        if (isComplete(item) && item.object === 'subscription_item') {
          planObject({ subscription: o.id, ...item }, [...at, 'items', 'data', String(i)], env, false, writes, depth + 1);
        }
      });
    }
  }
}

function numberOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
}

/**
 * What folding this Stripe event means: rows to write (parents before children, one row per
 * object id), and the advisory lock keys to take first, sorted so concurrent folds cannot deadlock
 * on them. Throws MalformedEventError for an event that can never be folded.
 */
export function planEvent(payload: unknown): FoldPlan {
  if (payload === null || typeof payload !== 'object') throw new MalformedEventError('event is not an object');
  const e = payload as StripeObject;
  const object = path('data', 'object')(e);
  if (typeof e.id !== 'string' || typeof e.type !== 'string' || typeof e.created !== 'number') {
    throw new MalformedEventError('event without id, type or created');
  }
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw new MalformedEventError('event without data.object');
  }
  const o = object as StripeObject;
  if (typeof o.object !== 'string') throw new MalformedEventError('data.object has no object type');
  if (!(o.object in SPECS)) return { kind: 'ignore', reason: `webhook-inbox does not fold ${o.object} objects` };

  const env: Envelope = {
    eventId: e.id,
    created: e.created,
    type: e.type,
    account: typeof e.account === 'string' ? e.account : null,
    apiVersion: typeof e.api_version === 'string' ? e.api_version : null,
    livemode: typeof e.livemode === 'boolean' ? e.livemode : null,
  };
  const deleted = e.type.endsWith('.deleted') || o.deleted === true;
  const planned: PlannedWrite[] = [];
  planObject(o, ['data', 'object'], env, deleted, planned, 0);

  // One write per row (the event's own object wins over an embedded copy), parents first.
  const byRow = new Map<string, PlannedWrite>();
  for (const w of planned) {
    const k = `${w.table}:${w.id}`;
    if (!byRow.has(k) || w.id === o.id) byRow.set(k, w);
  }
  const writes = [...byRow.values()].sort((a, b) => TABLES.indexOf(a.table) - TABLES.indexOf(b.table));

  const keys = new Set(writes.map((w) => lockKey(w.table, w.id)));
  const shared = new Set<string>();
  for (const w of writes) {
    for (const l of w.links) {
      if (l.parentId && !keys.has(lockKey(l.parentTable, l.parentId))) shared.add(lockKey(l.parentTable, l.parentId));
    }
  }
  return { kind: 'fold', writes, lockKeys: [...keys].sort(), shareKeys: [...shared].sort() };
}

/**
 * The advisory lock name of a row. A child checking whether its parent exists and the parent's
 * writer both hold it, so a link can never be parked while its parent commits unseen.
 */
export function lockKey(table: TableName, id: string): string {
  return `${table}:${id}`;
}

/** Link columns per table, for the sweeper and for tests. */
export function linksOf(table: TableName): { column: string; parent: TableName }[] {
  const spec = Object.values(SPECS).find((s) => s.table === table)!;
  return spec.links.map((l) => ({ column: l.column, parent: l.parent }));
}

/** Promoted columns per table (besides the common ones), in a fixed order. */
export function extraColumnsOf(table: TableName): string[] {
  const spec = Object.values(SPECS).find((s) => s.table === table)!;
  return Object.keys(spec.columns ?? {});
}

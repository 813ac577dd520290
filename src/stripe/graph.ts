// Pure Stripe graph logic: which rows a snapshot writes, their parents, and the order key that
// decides which snapshot is newest, all read from the catalogue (stripe/catalog.ts). No I/O here,
// so every rule is testable without a database.
//
// The table an event writes is chosen by the object it carries (`data.object.object`), not by the
// event type: `charge.dispute.created` carries a dispute, `customer.subscription.updated` a
// subscription, and types we have never heard of still fold if their object is one we know.
import {
  SPECS,
  TABLES,
  objectOfId,
  objectOfType,
  refId,
  unixTime,
  type ObjectSpec,
  type StripeObject,
} from './catalog.ts';

/** Rank of a tombstone: a deletion is the last state of any object. */
export const DELETED_RANK = 100;

/**
 * The snapshot's place in time: newest wins, compared field by field in this order (the writer
 * functions rendered by db/fold-sql.ts compare them, under the row's advisory lock).
 */
export type OrderKey = {
  /** event.created, unix seconds (Stripe's resolution is one second); for an API read, when it was read. */
  created: number;
  /** Lifecycle rank of the snapshot's status: breaks ties within a second. */
  rank: number;
  /** The event id: a last, arbitrary but arrival-independent tie-break. */
  eventId: string;
};

export type PlannedLink = { column: string; parentTable: string; parentId: string | null };

/** The whole set of parents a many-to-many link table should hold for this row. */
export type PlannedMany = { table: string; parentTable: string; parentIds: string[] };

/** One row to write: an object table row with its snapshot, links and promoted columns. */
export type PlannedWrite = {
  table: string;
  id: string;
  links: PlannedLink[];
  many: PlannedMany[];
  /** Every column except id, links, data, version and the order key. */
  columns: Record<string, unknown>;
  /** The row's snapshot, as Stripe sent it. */
  data: StripeObject;
  /**
   * Where that snapshot sits in the plan's document (the event payload, or the object read from
   * the API), e.g. ["data", "object", "items", "data", "0"]: the database reads it there rather
   * than receiving a second copy.
   */
  dataPath: string[];
  key: OrderKey;
};

export type FoldPlan =
  | {
      kind: 'fold';
      /** Parents before children, one write per row. */
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

/** The event cannot be folded and never will be, and a person should look: FAILED at once. */
export class MalformedEventError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedEventError';
  }
}

/** Where a snapshot comes from: an event's envelope, or a read from Stripe's API. */
export type Origin = {
  /** The event id, or the id an API read is recorded under: the order key's last tie-break. */
  eventId: string;
  /** Unix seconds: the event's `created`, or when the API was read. */
  created: number;
  account: string | null;
  apiVersion: string | null;
  livemode: boolean | null;
};

/** An expanded parent is folded as its own row only when it is a full object, not a stub. */
function isComplete(v: unknown): v is StripeObject {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as StripeObject;
  return typeof o.id === 'string' && typeof o.object === 'string' && SPECS.has(o.object) && typeof o.created === 'number' && o.deleted !== true;
}

function rankOf(spec: ObjectSpec, o: StripeObject, deleted: boolean): number {
  if (deleted) return DELETED_RANK;
  const status = typeof o.status === 'string' ? o.status : undefined;
  const rank = (status && spec.rank[status]) || 0;
  return Math.max(rank, spec.extraRank?.(o) ?? 0);
}

function numberOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : null;
}

function usableId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 255;
}

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

function valueAt(o: StripeObject, keys: string[]): unknown {
  let v: unknown = o;
  for (const k of keys) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as StripeObject)[k];
  }
  return v;
}

/**
 * Plans `o` (of catalogue object `spec`) and, before it, the complete parents Stripe expanded in
 * it; after it, the children it carries whole. `view` is what links and columns are read from
 * (an embedded child sees its parent's id injected); `o` itself is stored as the row's data.
 */
function planObject(
  spec: ObjectSpec,
  o: StripeObject,
  view: StripeObject,
  at: string[],
  origin: Origin,
  deleted: boolean,
  writes: PlannedWrite[],
  depth: number,
): void {
  /** Plans an expanded parent found in `view`, at its place in the document. */
  const expanded = (ref: StripeObject) => {
    const where = pathTo(view, ref);
    if (where) planObject(SPECS.get(ref.object as string)!, ref, ref, [...at, ...where], origin, false, writes, depth + 1);
  };
  if (!usableId(o.id)) throw new MalformedEventError(`${spec.object} without a usable id`);
  const links: PlannedLink[] = spec.links.map((l) => {
    const ref = l.ref(view);
    // Fold what Stripe embedded whole (an expanded parent) as its own row, parent first.
    if (depth < 2 && isComplete(ref)) expanded(ref);
    return { column: l.column, parentTable: SPECS.get(l.parent)!.table, parentId: refId(ref) };
  });
  const many: PlannedMany[] = spec.many.map((m) => {
    const refs = m.refs(view);
    const ids = new Set<string>();
    for (const r of Array.isArray(refs) ? refs : []) {
      if (depth < 2 && isComplete(r)) expanded(r);
      const id = refId(r);
      if (id) ids.add(id);
    }
    return { table: m.table, parentTable: SPECS.get(m.parent)!.table, parentIds: [...ids].sort() };
  });

  const columns: Record<string, unknown> = {
    status: typeof o.status === 'string' ? o.status : null,
    amount: numberOrNull(spec.amount?.(view)),
    currency: typeof o.currency === 'string' ? o.currency : null,
    created: unixTime(o.created),
    livemode: typeof o.livemode === 'boolean' ? o.livemode : origin.livemode,
    account: origin.account,
    deleted,
    api_version: origin.apiVersion,
  };
  for (const [name, column] of Object.entries(spec.columns)) {
    const v = column.get(view);
    columns[name] = v === undefined ? null : v;
  }
  writes.push({
    table: spec.table,
    id: o.id,
    links,
    many,
    columns,
    data: o,
    dataPath: at,
    key: { created: origin.created, rank: rankOf(spec, o, deleted), eventId: origin.eventId },
  });

  for (const embed of spec.embeds) {
    const items = valueAt(o, embed.path);
    if (!Array.isArray(items)) continue;
    const child = SPECS.get(embed.object)!;
    items.forEach((item: unknown, i) => {
      if (item === null || typeof item !== 'object' || (item as StripeObject).object !== embed.object) return;
      if (!usableId((item as StripeObject).id) || (embed.keep && !embed.keep(item as StripeObject))) return;
      const view = { ...embed.inject(o), ...(item as StripeObject) };
      planObject(child, item as StripeObject, view, [...at, ...embed.path, String(i)], origin, false, writes, depth + 1);
    });
  }
}

/** One write per row (the snapshot's own object wins over an embedded copy), parents first, and the lock keys. */
function finish(planned: PlannedWrite[], ownId: string): FoldPlan {
  const byRow = new Map<string, PlannedWrite>();
  for (const w of planned) {
    const k = lockKey(w.table, w.id);
    if (!byRow.has(k) || w.id === ownId) byRow.set(k, w);
  }
  const writes = [...byRow.values()].sort((a, b) => TABLES.indexOf(a.table) - TABLES.indexOf(b.table));
  const keys = new Set(writes.map((w) => lockKey(w.table, w.id)));
  const shared = new Set<string>();
  for (const w of writes) {
    const parents = [...w.links.map((l) => [l.parentTable, l.parentId] as const), ...w.many.flatMap((m) => m.parentIds.map((id) => [m.parentTable, id] as const))];
    for (const [table, id] of parents) {
      if (id && !keys.has(lockKey(table, id))) shared.add(lockKey(table, id));
    }
  }
  return { kind: 'fold', writes, lockKeys: [...keys].sort(), shareKeys: [...shared].sort() };
}

/**
 * Which object a snapshot is: its `object` field, or, when that is missing, the event type's
 * family, or else its id prefix (an id prefix alone can mislead: `sub_sched_...` is a subscription
 * schedule, not a subscription). Undefined when nothing says.
 */
function recognise(o: StripeObject, type: string | undefined): string | undefined {
  if (typeof o.object === 'string') return o.object;
  return (type ? objectOfType(type) : undefined) ?? (typeof o.id === 'string' ? objectOfId(o.id) : undefined);
}

/** Plans one snapshot of `object` from `origin`; the shared tail of planEvent and planSnapshot. */
function planFrom(o: StripeObject, at: string[], type: string | undefined, origin: Origin, deleted: boolean): FoldPlan {
  const object = recognise(o, type);
  if (object === undefined) {
    return { kind: 'ignore', reason: 'data.object has no object type, and neither its id nor the event type says what it is' };
  }
  const spec = SPECS.get(object);
  if (!spec) return { kind: 'ignore', reason: `webhook-inbox does not fold ${object} objects` };
  if (o.id === undefined || o.id === null) {
    // invoice.upcoming carries a preview of an invoice that does not exist yet, and discounts had
    // no id before API 2023-08-16 (customer.discount.*): there is no row to write.
    return { kind: 'ignore', reason: `this ${object} has no id, so there is no row to write (a preview such as invoice.upcoming, or a discount of an API version before 2023-08-16)` };
  }
  const planned: PlannedWrite[] = [];
  planObject(spec, o, o, at, origin, deleted, planned, 0);
  return finish(planned, o.id as string);
}

/**
 * What folding this Stripe event means: rows to write (parents before children, one row per
 * object id), and the advisory lock keys to take first, sorted so concurrent folds cannot deadlock
 * on them. Throws MalformedEventError for an event that can never be folded.
 */
export function planEvent(payload: unknown): FoldPlan {
  if (payload === null || typeof payload !== 'object') throw new MalformedEventError('event is not an object');
  const e = payload as StripeObject;
  if (typeof e.id !== 'string' || typeof e.type !== 'string' || typeof e.created !== 'number') {
    throw new MalformedEventError('event without id, type or created');
  }
  const object = (e.data as StripeObject | undefined)?.object;
  if (object === null || typeof object !== 'object' || Array.isArray(object)) {
    throw new MalformedEventError('event without data.object');
  }
  const o = object as StripeObject;
  const origin: Origin = {
    eventId: e.id,
    created: e.created,
    account: typeof e.account === 'string' ? e.account : null,
    apiVersion: typeof e.api_version === 'string' ? e.api_version : null,
    livemode: typeof e.livemode === 'boolean' ? e.livemode : null,
  };
  return planFrom(o, ['data', 'object'], e.type, origin, e.type.endsWith('.deleted') || o.deleted === true);
}

/**
 * What folding a snapshot read from Stripe's API means: the same rows as an event carrying it,
 * ordered by `origin.created` (when it was read). A deleted object (`deleted: true`) is a tombstone.
 * Its writes' data paths are relative to the object itself, which the fold item carries.
 */
export function planSnapshot(object: StripeObject, origin: Origin): FoldPlan {
  return planFrom(object, [], undefined, origin, object.deleted === true);
}

/**
 * The advisory lock name of a row. A child checking whether its parent exists and the parent's
 * writer both hold it, so a link can never be parked while its parent commits unseen.
 */
export function lockKey(table: string, id: string): string {
  return `${table}:${id}`;
}

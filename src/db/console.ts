// The console's own read queries: the overview's counts and per-minute series, the events that
// arrived after the ones on screen, one Stripe object with its parents, children and timeline, and
// the orphans. Listing, looking up and replaying events are event-lookup.ts and replay.ts, shared
// with the admin API. Reads only; each answers from an index on a database of millions of events.
import { sql as raw } from 'kysely';
import { BY_TABLE, objectOfId, SPECS, TABLES, type ObjectSpec } from '../stripe/catalog.ts';
import { qb, run, type Sql } from './client.ts';
import { CURSOR_TIME, matches, type EventFilter } from './event-filter.ts';
import { ITEM_COLUMNS, type EventItem, type ParkedLink } from './event-lookup.ts';
import type { LinkRef, ObjectOutcome } from './fold.ts';

// ---- Overview ------------------------------------------------------------------------------------

export type Overview = {
  now: Date;
  received: number;
  /** RECEIVED that failed at least once and wait for their next attempt. */
  retrying: number;
  oldest_unprocessed: Date | null;
  failed: number;
  /** received_at of the oldest and newest FAILED event: "since when?". */
  failed_oldest: Date | null;
  failed_newest: Date | null;
  pending_links: number;
  oldest_pending_link: Date | null;
};

/**
 * The counts an operator needs first. RECEIVED and FAILED are few and read from the status index;
 * PROCESSED and IGNORED are most of the table and are not counted here (totals()).
 */
export async function overview(db: Sql): Promise<Overview> {
  const [row] = await db<Overview[]>`
    select now() as now,
           (select count(*)::int from events where status = 'RECEIVED') as received,
           (select count(*)::int from events where status = 'RECEIVED' and attempts > 0) as retrying,
           (select min(received_at) from events where status = 'RECEIVED') as oldest_unprocessed,
           (select count(*)::int from events where status = 'FAILED') as failed,
           (select min(received_at) from events where status = 'FAILED') as failed_oldest,
           (select max(received_at) from events where status = 'FAILED') as failed_newest,
           (select count(*)::int from pending_links) as pending_links,
           (select min(since) from pending_links) as oldest_pending_link`;
  return row!;
}

export type Totals = { processed: number; ignored: number; counted_at: Date };

/**
 * PROCESSED and IGNORED counted exactly. On millions of events this walks an index for a while:
 * the console runs it in the background and shows the last count with its age.
 */
export async function totals(db: Sql): Promise<Totals> {
  const [row] = await db<Totals[]>`
    select count(*) filter (where status = 'PROCESSED')::int as processed,
           count(*) filter (where status = 'IGNORED')::int as ignored,
           now() as counted_at
      from events where status in ('PROCESSED', 'IGNORED')`;
  return row!;
}

export type MinuteSeries = {
  /** Start of each minute, Unix seconds, oldest first, one per minute of the window. */
  minutes: number[];
  received: number[];
  /** Events that reached PROCESSED, IGNORED or FAILED in that minute. */
  folded: number[];
  failed: number[];
  /** RECEIVED events at the end of each minute: today's backlog, minus what arrived since, plus what was folded since. */
  backlog: number[];
};

/**
 * Per-minute counts over the last `minutes` minutes, from the received_at and processed_at
 * indexes. The backlog's history is not stored: it is worked back from the backlog now. A replayed
 * event counts once, at its last fold, so the backlog before a replay reads a little high.
 */
export async function minuteSeries(db: Sql, minutes: number, backlogNow: number): Promise<MinuteSeries> {
  const back = minutes - 1;
  const rows = await db<{ minute: number; received: number; folded: number; failed: number }[]>`
    select extract(epoch from m)::int as minute,
           coalesce(r.n, 0) as received, coalesce(f.n, 0) as folded, coalesce(f.failed, 0) as failed
      from generate_series(date_trunc('minute', now()) - make_interval(mins => ${back}), date_trunc('minute', now()), interval '1 minute') m
      left join (
        select date_trunc('minute', received_at) as minute, count(*)::int as n
          from events where received_at >= date_trunc('minute', now()) - make_interval(mins => ${back})
         group by 1
      ) r on r.minute = m
      left join (
        select date_trunc('minute', processed_at) as minute, count(*)::int as n,
               count(*) filter (where status = 'FAILED')::int as failed
          from events where processed_at >= date_trunc('minute', now()) - make_interval(mins => ${back})
         group by 1
      ) f on f.minute = m
     order by m`;
  const series: MinuteSeries = { minutes: [], received: [], folded: [], failed: [], backlog: [] };
  for (const r of rows) {
    series.minutes.push(r.minute);
    series.received.push(r.received);
    series.folded.push(r.folded);
    series.failed.push(r.failed);
  }
  // Walking back from now: at the end of minute i the backlog was the backlog now, minus what
  // arrived after that minute, plus what was folded after it.
  let backlog = backlogNow;
  for (let i = rows.length - 1; i >= 0; i--) {
    series.backlog[i] = Math.max(0, backlog);
    backlog -= rows[i]!.received - rows[i]!.folded;
  }
  return series;
}

// ---- Following new events --------------------------------------------------------------------------

/**
 * How long after its received_at an event is surely committed. received_at is its transaction's
 * start; ingest commits in one statement cut at DB_STATEMENT_TIMEOUT_MS (1 s by default), so an
 * event older than this can no longer appear behind one already shown.
 */
export const SETTLED_SECONDS = 2;

export type CursorRow = EventItem & {
  /** The row's position for a cursor (encodeCursor). */
  cursor_time: string;
  /** Older than SETTLED_SECONDS: nothing can appear behind it any more. */
  settled: boolean;
};

/** Events as a listing shows them, with each one's cursor and whether it has settled. */
function cursorRows() {
  return qb
    .selectFrom('events')
    .select([
      ...ITEM_COLUMNS,
      CURSOR_TIME.as('cursor_time'),
      raw<boolean>`received_at <= now() - make_interval(secs => ${SETTLED_SECONDS})`.as('settled'),
    ]);
}

/**
 * Events matching `filter` that arrived after `after` (a listing's cursor), oldest first, up to
 * `limit`: what a console following the listing shows next.
 */
export async function newerEvents(
  db: Sql,
  filter: EventFilter,
  after: { receivedAt: string; id: string } | undefined,
  limit: number,
): Promise<CursorRow[]> {
  const query = cursorRows()
    .where((eb) => {
      const conditions = [matches(eb, filter)];
      if (after) {
        conditions.push(eb(eb.refTuple('received_at', 'id'), '>', eb.tuple(raw<Date>`${after.receivedAt}::text::timestamptz`, after.id)));
      }
      return eb.and(conditions);
    })
    .orderBy('received_at')
    .orderBy('id')
    .limit(limit);
  return (await run(db, query)) as CursorRow[];
}

/** For the first page of a listing: which of its rows are settled, and their cursors. */
export async function settledCursors(db: Sql, ids: string[]): Promise<CursorRow[]> {
  if (ids.length === 0) return [];
  const query = cursorRows().where('id', 'in', ids).orderBy('received_at', 'desc').orderBy('id', 'desc');
  return (await run(db, query)) as CursorRow[];
}

// ---- Objects -------------------------------------------------------------------------------------

export type ObjectRow = Record<string, unknown> & {
  id: string;
  status: string | null;
  deleted: boolean;
  data: unknown;
  last_event_id: string;
  last_event_created: Date;
  updated_at: Date;
  version: string;
};

export type FoundObject = { spec: ObjectSpec; row: ObjectRow };

/**
 * The row of a Stripe id, in the table its prefix names, or, for a prefix the catalogue does not
 * know, in whichever table has it. undefined when no table has it (yet).
 */
export async function findObject(db: Sql, id: string): Promise<FoundObject | undefined> {
  const object = objectOfId(id);
  const tables = object ? [SPECS.get(object)!.table] : TABLES;
  // One statement, the tables from the catalogue (never from the request), the id a parameter.
  const rows = await db.unsafe<{ table: string; row: ObjectRow }[]>(
    tables.map((t) => `(select '${t}' as table, to_jsonb(x) as row from ${t} x where x.id = $1)`).join(' union all ') + ' limit 1',
    [id],
  );
  const hit = rows[0];
  if (!hit) return undefined;
  return { spec: BY_TABLE.get(hit.table)!, row: hit.row };
}

export type Related = { relation: string; table: string; column: string; id: string; status: string | null; deleted: boolean };

/** Up to `limit` children per link that point at this object, newest first, and how many there are. */
export async function objectChildren(
  db: Sql,
  spec: ObjectSpec,
  id: string,
  limit = 20,
): Promise<{ table: string; column: string; total: number; rows: { id: string; status: string | null; deleted: boolean }[] }[]> {
  const parts: string[] = [];
  const labels: { table: string; column: string }[] = [];
  for (const child of BY_TABLE.values()) {
    for (const link of child.links) {
      if (link.parent !== spec.object) continue;
      const i = labels.length;
      labels.push({ table: child.table, column: link.column });
      parts.push(
        `select ${i} as i, (select count(*)::int from ${child.table} where ${link.column} = $1) as total,
                coalesce((select jsonb_agg(jsonb_build_object('id', id, 'status', status, 'deleted', deleted))
                            from (select id, status, deleted from ${child.table} where ${link.column} = $1
                                   order by created desc nulls last, id limit ${limit}) c), '[]') as rows`,
      );
    }
    for (const many of child.many) {
      if (many.parent !== spec.object) continue;
      const i = labels.length;
      labels.push({ table: child.table, column: many.table });
      parts.push(
        `select ${i} as i, (select count(*)::int from ${many.table} where ${many.parentColumn} = $1) as total,
                coalesce((select jsonb_agg(jsonb_build_object('id', c.id, 'status', c.status, 'deleted', c.deleted))
                            from (select x.id, x.status, x.deleted from ${many.table} m join ${child.table} x on x.id = m.${many.childColumn}
                                   where m.${many.parentColumn} = $1 order by x.id limit ${limit}) c), '[]') as rows`,
      );
    }
  }
  if (parts.length === 0) return [];
  const rows = await db.unsafe<{ i: number; total: number; rows: { id: string; status: string | null; deleted: boolean }[] }[]>(
    parts.join(' union all '),
    [id],
  );
  return rows
    .sort((a, b) => a.i - b.i)
    .filter((r) => r.total > 0)
    .map((r) => ({ ...labels[r.i]!, total: r.total, rows: r.rows }));
}

/** The many-to-many parents of this object (an invoice's discounts): link table -> parent ids. */
export async function objectManyParents(db: Sql, spec: ObjectSpec, id: string): Promise<{ table: string; parent: string; ids: string[] }[]> {
  if (spec.many.length === 0) return [];
  const rows = await db.unsafe<{ i: number; ids: string[] }[]>(
    spec.many
      .map((m, i) => `select ${i} as i, coalesce(array_agg(${m.parentColumn} order by ${m.parentColumn}), '{}') as ids from ${m.table} where ${m.childColumn} = $1`)
      .join(' union all '),
    [id],
  );
  return rows.map((r) => ({ table: spec.many[r.i]!.table, parent: spec.many[r.i]!.parent, ids: r.ids }));
}

/** A waiting link, with the event that parked it (its row id is null once retention purged it). */
export type PendingLink = ParkedLink & { event_id: string; event_row_id: string | null };

/** Links this object waits on (as the child), and children that wait for it (as the parent). */
export async function objectPending(db: Sql, table: string, id: string): Promise<{ waits: PendingLink[]; awaited: PendingLink[] }> {
  const rows = await db<(PendingLink & { role: 'child' | 'parent' })[]>`
    select 'child' as role, child_table, child_id, link_column, parent_table, parent_id, since, event_id, event_row_id::text
      from orphans where child_table = ${table} and child_id = ${id}
    union all
    select 'parent', child_table, child_id, link_column, parent_table, parent_id, since, event_id, event_row_id::text
      from orphans where parent_table = ${table} and parent_id = ${id}
     order by since limit 200`;
  return {
    waits: rows.filter((r) => r.role === 'child'),
    awaited: rows.filter((r) => r.role === 'parent'),
  };
}

export type TimelineEntry = {
  id: string;
  source: string;
  event_id: string;
  type: string;
  status: string;
  created: Date | null;
  received_at: Date;
  last_error: string | null;
  /** What this event's fold did to this object's row, if it wrote or compared it. */
  outcome: ObjectOutcome | null;
};

/**
 * Every event that touched an object, in Stripe's order (created, then arrival): the events about
 * it, the events of objects that carry it embedded (a subscription's items) whose fold wrote it, and
 * the event whose snapshot it holds now.
 */
export async function objectTimeline(
  db: Sql,
  id: string,
  options: { table?: string; carriers?: string[]; lastEventId?: string; limit?: number } = {},
): Promise<TimelineEntry[]> {
  const carriers = options.carriers ?? [];
  const limit = options.limit ?? 500;
  const rows = await db<(Omit<TimelineEntry, 'outcome'> & { objects: ObjectOutcome[] | null })[]>`
    select id::text, source, event_id, type, status, created, received_at, last_error,
           result -> 'objects' as objects
      from events
     where object_id = ${id}
        or (object_id = any(${carriers}::text[]) and result -> 'objects' @> ${JSON.stringify([{ id }])}::text::jsonb)
        or (source = 'stripe' and event_id = ${options.lastEventId ?? null})
     order by created nulls last, id
     limit ${limit}`;
  return rows.map(({ objects, ...e }) => ({
    ...e,
    outcome: (objects ?? []).find((o) => o.id === id && (options.table === undefined || o.table === options.table)) ?? null,
  }));
}

/** Which of these links still wait for their parent, whichever event parked them last. */
export async function stillWaiting(db: Sql, links: LinkRef[]): Promise<LinkRef[]> {
  if (links.length === 0) return [];
  return db<LinkRef[]>`
    select l.child_table, l.child_id, l.link_column, l.parent_table, l.parent_id
      from pending_links l
      join jsonb_to_recordset(${db.json(links as never)}) as w(child_table text, child_id text, link_column text, parent_id text)
        using (child_table, child_id, link_column, parent_id)`;
}

// ---- Orphans -------------------------------------------------------------------------------------

export type Orphan = PendingLink & { age_seconds: number; event_type: string | null };

/** Pending links, oldest first, after the (since, child_table, child_id, link_column, parent_id) given. */
export async function listOrphans(db: Sql, limit: number, offset: number): Promise<{ total: number; items: Orphan[] }> {
  const [count] = await db<{ n: number }[]>`select count(*)::int as n from pending_links`;
  const items = await db<Orphan[]>`
    select child_table, child_id, link_column, parent_table, parent_id, since, event_id, event_row_id::text,
           event_type, extract(epoch from age)::float8 as age_seconds
      from orphans
     order by since, child_table, child_id, link_column, parent_id
     limit ${limit} offset ${offset}`;
  return { total: count!.n, items };
}
// ---- The outbox on the overview -------------------------------------------------------------------

export type FailingSubscriptions = { failing: number; total: number; since: Date | null };

/**
 * Subscriptions whose deliveries are not getting through: an open or half-open circuit, or
 * disabled by their receiver (410 Gone) or for failing too long. Deleted ones do not count.
 */
export async function failingSubscriptions(db: Sql): Promise<FailingSubscriptions> {
  const [row] = await db<FailingSubscriptions[]>`
    select count(*) filter (where circuit_state in ('open', 'half_open')
                              or (not enabled and disabled_reason in ('gone', 'failing_too_long')))::int as failing,
           count(*)::int as total,
           min((breaker ->> 'failingSince')::float8) filter (where circuit_state <> 'closed') as since_ms
      from outbox_subscriptions where deleted_at is null`;
  const r = row as unknown as FailingSubscriptions & { since_ms: number | null };
  return { failing: r.failing, total: r.total, since: r.since_ms === null ? null : new Date(r.since_ms) };
}

export type SentSeries = { minutes: number[]; sent: number[]; failed: number[] };

/**
 * Delivery attempts per minute over the last `minutes`, and those that failed; of one subscription
 * if given (delivery_attempts_attempted_at_idx, then each attempt's delivery by its primary key).
 */
export async function sentSeries(db: Sql, minutes: number, subscription?: string): Promise<SentSeries> {
  const back = minutes - 1;
  const rows = await db<{ minute: number; sent: number; failed: number }[]>`
    select extract(epoch from m)::int as minute, coalesce(a.sent, 0) as sent, coalesce(a.failed, 0) as failed
      from generate_series(date_trunc('minute', now()) - make_interval(mins => ${back}), date_trunc('minute', now()), interval '1 minute') m
      left join (
        select date_trunc('minute', attempted_at) as minute, count(*)::int as sent,
               count(*) filter (where outcome <> 'success')::int as failed
          from delivery_attempts a
         where attempted_at >= date_trunc('minute', now()) - make_interval(mins => ${back})
           ${subscription === undefined ? db`` : db`and exists (select 1 from deliveries d where d.id = a.delivery_id and d.subscription_id = ${subscription})`}
         group by 1
      ) a on a.minute = m
     order by m`;
  return { minutes: rows.map((r) => r.minute), sent: rows.map((r) => r.sent), failed: rows.map((r) => r.failed) };
}

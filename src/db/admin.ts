// The operators' queries on events: list with filters and a keyset cursor, look one up, replay.
// The filter vocabulary (zod) is shared by the admin API and scripts/replay.ts so both accept and
// refuse exactly the same things. Nothing here knows about HTTP or the command line.
import { sql as raw, type ExpressionBuilder, type Expression, type SqlBool } from 'kysely';
import { z } from 'zod';
import { qb, run, type Sql } from './client.ts';
import { EVENTS_CHANNEL } from './events.ts';
import { EVENT_STATUSES, type Database, type EventStatus } from './schema.ts';

// ---- Filters ---------------------------------------------------------------------------------

/** Which events an operator means. Every field narrows; an empty filter means every event. */
export type EventFilter = {
  status?: EventStatus[];
  source?: string;
  /** An exact type (`invoice.paid`) or a prefix pattern ending in `*` (`invoice.*`). */
  type?: string;
  /** ISO-8601 instants, inclusive from and exclusive to, on received_at. */
  from?: string;
  to?: string;
};

const RELATIVE = /^(\d{1,6})([mhd])$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

// postgres.js sends a timestamptz parameter as `new Date(value).toISOString()`, and Postgres refuses
// what that prints outside years 0001-9999 (`0000-...`, `-000711-...`, `+010000-...`): a 500 for
// `from=999999d` or `from=0000-01-01` unless refused here first.
const EARLIEST_MS = Date.parse('0001-01-01T00:00:00Z');
const LATEST_MS = Date.parse('9999-12-31T23:59:59.999Z');

function inTimestampRange(iso: string): boolean {
  const ms = Date.parse(iso);
  return ms >= EARLIEST_MS && ms <= LATEST_MS;
}

// ISO-8601 with an offset, a bare date (midnight UTC), or "that long ago" (90m, 24h, 7d): an
// operator asked "what failed last night" should not have to compute a timestamp.
const instant = z
  .string()
  .trim()
  .transform((v, ctx) => {
    const rel = RELATIVE.exec(v);
    const iso = rel
      ? new Date(Date.now() - Number(rel[1]) * UNIT_MS[rel[2] as keyof typeof UNIT_MS]).toISOString()
      : z.iso.date().safeParse(v).success
        ? `${v}T00:00:00Z`
        : z.iso.datetime({ offset: true }).safeParse(v).success
          ? v
          : undefined;
    if (iso === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'expected an ISO-8601 time with an offset (2024-05-01T18:00:00Z), a date (2024-05-01), or an age (90m, 24h, 7d)',
      });
      return z.NEVER;
    }
    if (!inTimestampRange(iso)) {
      ctx.addIssue({ code: 'custom', message: 'out of range: expected a time in the years 0001 to 9999 (UTC)' });
      return z.NEVER;
    }
    return iso;
  });

const statuses = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim().toUpperCase()).filter((s) => s !== ''))
  .pipe(
    z
      .array(z.enum(EVENT_STATUSES as [EventStatus, ...EventStatus[]], { error: `expected ${EVENT_STATUSES.join(', ')} (several comma-separated)` }))
      .min(1, `expected ${EVENT_STATUSES.join(', ')}`),
  )
  .transform((v) => [...new Set(v)]);

const source = z
  .string()
  .trim()
  .regex(/^[a-z0-9][a-z0-9-]{0,63}$/, 'expected a source name such as stripe');

const type = z
  .string()
  .trim()
  // No NUL: Postgres text cannot hold one, so the query would fail rather than match nothing.
  .regex(/^(\*|[^\s*\u0000]{1,255}\*?)$/, 'expected an event type (invoice.paid) or a prefix pattern (invoice.*)');

/** The filter fields, each optional; callers add their own fields (limit, cursor, dry_run). */
export const filterFields = {
  status: statuses.optional(),
  source: source.optional(),
  type: type.optional(),
  from: instant.optional(),
  to: instant.optional(),
};

/** Refuses from >= to, naming `to`. For z.object(...).superRefine. */
export function checkWindow(f: { from?: string; to?: string }, ctx: z.RefinementCtx): void {
  if (f.from && f.to && Date.parse(f.from) >= Date.parse(f.to)) {
    ctx.addIssue({ code: 'custom', path: ['to'], message: 'must be later than from' });
  }
}

/** True when the filter narrows nothing. */
export function isEmptyFilter(f: EventFilter): boolean {
  return !f.status && !f.source && (!f.type || f.type === '*') && !f.from && !f.to;
}

function likePrefix(prefix: string): string {
  return prefix.replace(/[\\%_]/g, (c) => `\\${c}`) + '%';
}

type Eb = ExpressionBuilder<Database, 'events'>;

function matches(eb: Eb, f: EventFilter): Expression<SqlBool> {
  const and: Expression<SqlBool>[] = [];
  if (f.status) and.push(eb('status', 'in', f.status));
  if (f.source) and.push(eb('source', '=', f.source));
  if (f.type && f.type !== '*') {
    // `like 'invoice.%'` is served by the text_pattern_ops index on type.
    and.push(f.type.endsWith('*') ? eb('type', 'like', likePrefix(f.type.slice(0, -1))) : eb('type', '=', f.type));
  }
  if (f.from) and.push(eb('received_at', '>=', raw<Date>`${f.from}::timestamptz`));
  if (f.to) and.push(eb('received_at', '<', raw<Date>`${f.to}::timestamptz`));
  return eb.and(and);
}

// Replay leaves alone an event a worker holds right now: RECEIVED with an unexpired lease
// (claimEvents sets locked_until; finishing, failing or releasing clears it). An event waiting out
// a retry backoff holds no lease, so replay makes it due now: that is "retry it now, it is fixed".
function replayable(eb: Eb): Expression<SqlBool> {
  return eb.or([eb('status', '<>', 'RECEIVED'), eb('locked_until', 'is', null), eb('locked_until', '<=', raw<Date>`now()`)]);
}

// ---- References: surrogate id, source:event_id, or a bare evt_ id ------------------------------

export type EventRef = { id: string } | { source: string; eventId: string };

/** Parses what an operator types for one event; undefined when it is none of the forms. */
export function parseEventRef(text: string): EventRef | undefined {
  const t = text.trim();
  // Postgres text cannot hold NUL, so no stored event_id has one; the lookup would fail, not miss.
  if (t.includes('\u0000')) return undefined;
  if (/^[1-9]\d{0,17}$/.test(t)) return { id: t };
  const colon = t.indexOf(':');
  if (colon > 0 && colon < t.length - 1) {
    const src = source.safeParse(t.slice(0, colon));
    if (src.success) return { source: src.data, eventId: t.slice(colon + 1) };
  }
  if (/^evt_[A-Za-z0-9]+$/.test(t)) return { source: 'stripe', eventId: t };
  return undefined;
}

export const EVENT_REF_HELP = 'expected the surrogate id (12345), source:event_id (stripe:evt_1Abc), or a Stripe evt_ id';

function byRef(eb: Eb, ref: EventRef): Expression<SqlBool> {
  return 'id' in ref ? eb('id', '=', ref.id) : eb.and([eb('source', '=', ref.source), eb('event_id', '=', ref.eventId)]);
}

// ---- Listing -----------------------------------------------------------------------------------

export type EventItem = {
  id: string;
  source: string;
  event_id: string;
  type: string;
  status: EventStatus;
  attempts: number;
  received_at: Date;
  processed_at: Date | null;
  last_error: string | null;
};

const ITEM_COLUMNS = [
  'id',
  'source',
  'event_id',
  'type',
  'status',
  'attempts',
  'received_at',
  'processed_at',
  'last_error',
] as const;

// received_at has microseconds and a JavaScript Date has milliseconds: a cursor built from a Date
// would skip rows inside the same millisecond. So the cursor carries Postgres's own text, and
// listEvents casts it from text (postgres.js sends a timestamptz parameter through a Date).
const CURSOR_TIME = raw<string>`to_char(received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
// Only what CURSOR_TIME writes: Postgres parses it itself, and refuses some offsets ISO-8601 allows.
const CURSOR_TIME_FORMAT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

export function encodeCursor(receivedAt: string, id: string): string {
  return Buffer.from(JSON.stringify([receivedAt, id])).toString('base64url');
}

/** The (received_at, id) a cursor points after; undefined when it is not one of ours. */
export function decodeCursor(cursor: string): { receivedAt: string; id: string } | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === 'string' &&
      CURSOR_TIME_FORMAT.test(value[0]) &&
      z.iso.datetime({ offset: true }).safeParse(value[0]).success &&
      inTimestampRange(value[0]) &&
      typeof value[1] === 'string' &&
      /^\d{1,18}$/.test(value[1])
    ) {
      return { receivedAt: value[0], id: value[1] };
    }
  } catch {
    // fall through
  }
  return undefined;
}

/** One page, newest first; next_cursor is null on the last page. */
export async function listEvents(
  db: Sql,
  filter: EventFilter,
  page: { limit: number; cursor?: { receivedAt: string; id: string } },
): Promise<{ items: EventItem[]; next_cursor: string | null }> {
  const rows = await run(
    db,
    qb
      .selectFrom('events')
      .select([...ITEM_COLUMNS, CURSOR_TIME.as('cursor_time')])
      .where((eb) => {
        const conditions = [matches(eb, filter)];
        if (page.cursor) {
          conditions.push(
            eb(eb.refTuple('received_at', 'id'), '<', eb.tuple(raw<Date>`${page.cursor.receivedAt}::text::timestamptz`, page.cursor.id)),
          );
        }
        return eb.and(conditions);
      })
      .orderBy('received_at', 'desc')
      .orderBy('id', 'desc')
      .limit(page.limit + 1),
  );
  const more = rows.length > page.limit;
  const items = rows.slice(0, page.limit);
  const last = items.at(-1);
  return {
    items: items.map(({ cursor_time: _, ...item }) => item as EventItem),
    next_cursor: more && last ? encodeCursor(last.cursor_time, last.id) : null,
  };
}

// ---- One event ---------------------------------------------------------------------------------

export type EventDetail = EventItem & {
  api_version: string | null;
  account: string | null;
  livemode: boolean | null;
  created: Date | null;
  next_attempt_at: Date;
  locked_until: Date | null;
  locked_by: string | null;
  object_id: string | null;
  object_customer: string | null;
  payload: unknown;
  result: unknown;
};

export async function getEvent(db: Sql, ref: EventRef): Promise<EventDetail | undefined> {
  const [row] = await run(db, qb.selectFrom('events').selectAll().where((eb) => byRef(eb, ref)));
  return row as EventDetail | undefined;
}

export type ParkedLink = {
  child_table: string;
  child_id: string;
  link_column: string;
  parent_table: string;
  parent_id: string;
  since: Date;
};

/** The links this event parked that still wait for their parent (only Stripe events are folded). */
export async function parkedLinks(db: Sql, event: { source: string; event_id: string }): Promise<ParkedLink[]> {
  if (event.source !== 'stripe') return [];
  return db<ParkedLink[]>`
    select child_table, child_id, link_column, parent_table, parent_id, since
      from pending_links where event_id = ${event.event_id}
     order by since, child_table, child_id, link_column`;
}

// ---- Replay ------------------------------------------------------------------------------------

/**
 * Re-queues one event. 'leased' when a worker holds it right now (nothing changed), 'missing'
 * when there is no such event.
 */
export async function replayEvent(db: Sql, ref: EventRef): Promise<{ outcome: 'replayed' | 'leased' | 'missing'; id?: string }> {
  const [hit] = await run(db, qb.selectFrom('events').select('id').where((eb) => byRef(eb, ref)));
  if (!hit) return { outcome: 'missing' };
  const updated = await requeue(db, [hit.id]);
  return { outcome: updated > 0 ? 'replayed' : 'leased', id: hit.id };
}

// What replay writes: the event is due now, from its first attempt, unleased; last_error stays for
// the record until the next attempt overwrites it. The NOTIFY wakes the workers.
// Re-checks "not leased" on each row as it is updated: if a worker claimed the row between the
// select and this update, Postgres re-evaluates the condition on the claimed version and skips it.
async function requeue(db: Sql, ids: string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const [row] = await db<{ n: number }[]>`
    with requeued as (
      update events
         set status = 'RECEIVED', next_attempt_at = now(), locked_until = null, locked_by = null, attempts = 0
       where id = any(${ids}::bigint[])
         and (status <> 'RECEIVED' or locked_until is null or locked_until <= now())
      returning id
    )
    select count(pg_notify(${EVENTS_CHANNEL}, id::text))::int as n from requeued`;
  return row!.n;
}

export type ReplayProgress = { replayed: number; scanned: number; total: number };

/** How many events replay would put back now (the leased ones excluded), capped by limit. */
export async function countReplayable(db: Sql, filter: EventFilter, limit?: number): Promise<number> {
  const [row] = await run(
    db,
    qb
      .selectFrom((q) => {
        let inner = q
          .selectFrom('events')
          .select('id')
          .where((eb) => eb.and([matches(eb, filter), replayable(eb)]));
        if (limit !== undefined) inner = inner.limit(limit);
        return inner.as('m');
      })
      .select((eb) => eb.fn.countAll<number>().as('n')),
  );
  return Number(row?.n ?? 0);
}

/** The first events replay would put back (oldest first, the order it takes them). */
export async function sampleReplayable(db: Sql, filter: EventFilter, size: number): Promise<EventItem[]> {
  return (await run(
    db,
    qb
      .selectFrom('events')
      .select([...ITEM_COLUMNS])
      .where((eb) => eb.and([matches(eb, filter), replayable(eb)]))
      .orderBy('id')
      .limit(size),
  )) as EventItem[];
}

/**
 * Re-queues every matching event, oldest first, in batches that are each their own short
 * statement (locks held for one batch only; workers keep claiming in between). Events stored after
 * the replay began are not included. Safe to interrupt (signal) and to run again: replaying an
 * event twice folds it twice, which the fold treats as a no-op.
 */
export async function replayEvents(
  db: Sql,
  filter: EventFilter,
  options: {
    batchSize: number;
    limit?: number;
    signal?: AbortSignal;
    onProgress?: (p: ReplayProgress) => void;
  },
): Promise<ReplayProgress & { interrupted: boolean }> {
  const total = await countReplayable(db, filter, options.limit);
  const [top] = await db<{ max: string | null }[]>`select max(id)::text as max from events`;
  const progress: ReplayProgress = { replayed: 0, scanned: 0, total };
  if (!top?.max || total === 0) return { ...progress, interrupted: false };
  let after = '0';
  for (;;) {
    if (options.signal?.aborted) return { ...progress, interrupted: true };
    const want = options.limit === undefined ? options.batchSize : Math.min(options.batchSize, options.limit - progress.scanned);
    if (want <= 0) break;
    const batch = await run(
      db,
      qb
        .selectFrom('events')
        .select('id')
        .where((eb) => eb.and([matches(eb, filter), replayable(eb), eb('id', '>', after), eb('id', '<=', top.max!)]))
        .orderBy('id')
        .limit(want),
    );
    if (batch.length === 0) break;
    progress.scanned += batch.length;
    progress.replayed += await requeue(
      db,
      batch.map((r) => r.id),
    );
    after = batch.at(-1)!.id;
    options.onProgress?.({ ...progress, total: Math.max(total, progress.scanned) });
    if (batch.length < want) break;
  }
  return { ...progress, total: Math.max(total, progress.scanned), interrupted: false };
}

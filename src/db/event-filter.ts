// The operators' vocabulary for events, shared by the admin API, scripts/replay.ts and the console
// so all accept and refuse exactly the same things: filters (zod), references to one event, and
// the keyset cursor of a listing. Nothing here knows about HTTP or the command line.
import { sql as raw, type ExpressionBuilder, type Expression, type SqlBool } from 'kysely';
import { z } from 'zod';
import { EVENT_STATUSES, type Database, type EventStatus } from './schema.ts';


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

export type Eb = ExpressionBuilder<Database, 'events'>;

export function matches(eb: Eb, f: EventFilter): Expression<SqlBool> {
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
export function replayable(eb: Eb): Expression<SqlBool> {
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

export function byRef(eb: Eb, ref: EventRef): Expression<SqlBool> {
  return 'id' in ref ? eb('id', '=', ref.id) : eb.and([eb('source', '=', ref.source), eb('event_id', '=', ref.eventId)]);
}

// ---- Cursors ---------------------------------------------------------------------------------

// received_at has microseconds and a JavaScript Date has milliseconds: a cursor built from a Date
// would skip rows inside the same millisecond. So the cursor carries Postgres's own text, and
// listEvents casts it from text (postgres.js sends a timestamptz parameter through a Date).
export const CURSOR_TIME = raw<string>`to_char(received_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;
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

// The operators' read queries on events: a page of a filtered listing (newest first, keyset
// cursor), one event with its detail, and the links it parked that still wait.
import { sql as raw } from 'kysely';
import { qb, run, type Sql } from './client.ts';
import { byRef, CURSOR_TIME, encodeCursor, matches, type EventFilter, type EventRef } from './event-filter.ts';
import type { EventStatus } from './schema.ts';


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

export const ITEM_COLUMNS = [
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

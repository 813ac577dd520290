// Queries on the events table. The ingest statement is a plain postgres.js template: it is the
// hot path, one round trip, and stores + wakes the workers atomically.
import type { VerifiedEvent } from '../sources/types.ts';
import type { Sql } from './client.ts';

/** The LISTEN/NOTIFY channel that wakes workers when an event is stored. */
export const EVENTS_CHANNEL = 'webhook_inbox_events';

/** A verified event and the source it came from. */
export type NewEvent = VerifiedEvent & { source: string };

/**
 * Stores one event, or nothing when (source, event_id) is already there. The NOTIFY lives in the
 * same statement, so a wake-up is sent exactly when a row commits and never for a duplicate.
 */
export async function insertEvent(sql: Sql, e: NewEvent): Promise<'stored' | 'duplicate'> {
  const rows = await sql`
    with inserted as (
      insert into events (source, event_id, type, api_version, account, livemode, created, payload)
      values (${e.source}, ${e.eventId}, ${e.type}, ${e.apiVersion}, ${e.account}, ${e.livemode},
              to_timestamp(${e.created}::bigint), ${e.body}::text::jsonb)
      on conflict (source, event_id) do nothing
      returning id
    )
    select pg_notify(${EVENTS_CHANNEL}, id::text) from inserted`;
  return rows.length === 1 ? 'stored' : 'duplicate';
}

// Backfills: Stripe events exported elsewhere (one JSON event per line) stored in `events` as
// RECEIVED, deduplicated exactly like webhook deliveries (ON CONFLICT DO NOTHING on source and
// event id) and announced with the same NOTIFY, so the workers fold them as if they had arrived.
import { stripeEnvelope } from '../sources/stripe.ts';
import type { Sql } from './client.ts';
import { EVENTS_CHANNEL, type NewEvent } from './events.ts';

/** One line of an NDJSON export as an event to store, or the reason it is not one. */
export function parseEventLine(line: string): { event: NewEvent } | { error: string } {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    return { error: 'not JSON' };
  }
  const parsed = stripeEnvelope.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
    return { error: `not a Stripe event: ${where}${issue?.message ?? 'invalid'}` };
  }
  const e = parsed.data;
  return {
    event: {
      source: 'stripe',
      eventId: e.id,
      type: e.type,
      apiVersion: e.api_version ?? null,
      account: e.account ?? null,
      livemode: e.livemode ?? null,
      created: e.created ?? null,
      body: line,
    },
  };
}

/**
 * Stores a batch in one statement; returns how many were new (the rest were duplicates).
 * `recovered`: reconciliation found them in Stripe's Events API, not in a delivery; the new rows
 * say so in recovered_at.
 */
export async function insertEvents(sql: Sql, events: NewEvent[], options: { recovered?: boolean } = {}): Promise<number> {
  if (events.length === 0) return 0;
  // One jsonb parameter for the whole batch; the body travels as text and is parsed by Postgres.
  const rows = events.map((e) => ({
    source: e.source,
    event_id: e.eventId,
    type: e.type,
    api_version: e.apiVersion,
    account: e.account,
    livemode: e.livemode,
    created: e.created,
    body: e.body,
  }));
  const [row] = await sql<{ n: number }[]>`
    with input as (
      select * from jsonb_to_recordset(${sql.json(rows)}::jsonb)
        as t(source text, event_id text, type text, api_version text, account text, livemode boolean, created bigint, body text)
    ), inserted as (
      insert into events (source, event_id, type, api_version, account, livemode, created, payload, recovered_at)
      select source, event_id, type, api_version, account, livemode, to_timestamp(created), body::jsonb,
             case when ${options.recovered === true} then now() end
        from input
      on conflict (source, event_id) do nothing
      returning id
    )
    select count(pg_notify(${EVENTS_CHANNEL}, id::text))::int as n from inserted`;
  return row!.n;
}

/** How many of these (source, event id) pairs are already stored: for a dry run. */
export async function countStored(sql: Sql, source: string, eventIds: string[]): Promise<number> {
  if (eventIds.length === 0) return 0;
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from events where source = ${source} and event_id = any(${eventIds}::text[])`;
  return row!.n;
}

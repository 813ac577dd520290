// TypeScript's view of the tables in sql/. Column names stay snake_case so one grep finds a
// column in SQL and TypeScript alike. Keep in step with the migrations; the schema lives there.
import type { ColumnType, Generated, Selectable } from 'kysely';

export type EventStatus = 'RECEIVED' | 'PROCESSED' | 'FAILED' | 'IGNORED';
export const EVENT_STATUSES: readonly EventStatus[] = ['RECEIVED', 'PROCESSED', 'FAILED', 'IGNORED'];

type Timestamp = ColumnType<Date, Date | string, Date | string>;
// Not Generated<Timestamp>: Kysely does not unwrap a ColumnType inside Generated, so selects would
// be typed as the ColumnType itself instead of Date.
type GeneratedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json = ColumnType<unknown, unknown, unknown>;

export interface EventsTable {
  /** Surrogate id in arrival order (bigint, returned as a string). */
  id: Generated<string>;
  /** stripe, or a Standard Webhooks source name. */
  source: string;
  /** The provider's event id (evt_... or webhook-id). */
  event_id: string;
  /** e.g. invoice.paid */
  type: string;
  /** Stripe API version of the payload. */
  api_version: string | null;
  /** Stripe Connect account, if any. */
  account: string | null;
  /** Stripe livemode flag. */
  livemode: boolean | null;
  /** When the provider says the event happened. */
  created: Timestamp | null;
  /** The verified body. */
  payload: Json;
  /** When we committed it. */
  received_at: GeneratedTimestamp;
  /** Where it is in its life. */
  status: Generated<EventStatus>;
  /** Claims so far. */
  attempts: Generated<number>;
  /** Not claimed before this time. */
  next_attempt_at: GeneratedTimestamp;
  /** Lease end of the claiming worker. */
  locked_until: Timestamp | null;
  /** Which worker holds the lease. */
  locked_by: string | null;
  /** When it reached a final status. */
  processed_at: Timestamp | null;
  /** Latest failure. */
  last_error: string | null;
  /** What folding did. */
  result: Json | null;
  /** data.object.id of the payload, stored when the row is inserted (generated). */
  object_id: ColumnType<string | null, never, never>;
  /** data.object.customer of the payload, likewise. */
  object_customer: ColumnType<string | null, never, never>;
  /** Set when reconciliation stored it from Stripe's Events API (no webhook delivered it). */
  recovered_at: Timestamp | null;
}

export interface Database {
  events: EventsTable;
}

export type EventRow = Selectable<EventsTable>;

// Rows in `events` in any state, written straight to the table: for tests of what operators see
// and do (admin API, replay, retention), which must not depend on the ingest route or the workers.
import type postgres from 'postgres';
import { eventId, stripeEvent } from './app.ts';

export type SeedEvent = {
  source?: string;
  type?: string;
  status?: 'RECEIVED' | 'PROCESSED' | 'FAILED' | 'IGNORED';
  /** SQL interval before now, e.g. '3 days'; default: now. */
  age?: string;
  /** Exact, to the microsecond: cast from text, as postgres.js would send it through a Date. */
  receivedAt?: string;
  attempts?: number;
  lastError?: string | null;
  /** For RECEIVED: when the next attempt is due, as an interval from now ('5 minutes' = leased). */
  dueIn?: string;
  object?: Record<string, unknown>;
  eventId?: string;
};

export async function seedEvent(sql: postgres.Sql, e: SeedEvent = {}): Promise<{ id: string; event_id: string }> {
  const id = e.eventId ?? eventId();
  const type = e.type ?? 'customer.created';
  const payload = stripeEvent({ id, type, ...(e.object ? { data: { object: e.object } } : {}) });
  const status = e.status ?? 'PROCESSED';
  const finished = status !== 'RECEIVED';
  const [row] = await sql<{ id: string; event_id: string }[]>`
    insert into events (source, event_id, type, payload, received_at, status, attempts, last_error,
                        next_attempt_at, processed_at, locked_until, locked_by, result)
    values (
      ${e.source ?? 'stripe'}, ${id}, ${type}, ${JSON.stringify(payload)}::text::jsonb,
      coalesce(${e.receivedAt ?? null}::text::timestamptz, now() - ${e.age ?? '0 seconds'}::interval),
      ${status}, ${e.attempts ?? (finished ? 1 : 0)}, ${e.lastError ?? null},
      now() + ${e.dueIn ?? '0 seconds'}::interval,
      ${finished ? new Date() : null},
      ${e.dueIn ? new Date(Date.now() + 60_000) : null}, ${e.dueIn ? 'test:1:0' : null},
      ${status === 'PROCESSED' ? sql.json({ objects: [] }) : null}
    )
    returning id::text, event_id`;
  return row!;
}

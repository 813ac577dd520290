// Queries on the events table: one event stored, the claim, the finish and the wake-up. The ingest
// statement itself lives in db/ingest-batch.ts (group commit); one event goes through it too.
import type { VerifiedEvent } from '../sources/types.ts';
import type { Sql } from './client.ts';
import { insertEventBatch } from './ingest-batch.ts';

/** The LISTEN/NOTIFY channel that wakes workers when an event is stored. */
export const EVENTS_CHANNEL = 'webhook_inbox_events';

/** A verified event and the source it came from. */
export type NewEvent = VerifiedEvent & { source: string };

/**
 * Stores one event, or nothing when (source, event_id) is already there. It sends no NOTIFY: the
 * caller wakes the workers after the commit (createWakeup), see there why.
 */
export async function insertEvent(sql: Sql, e: NewEvent): Promise<'stored' | 'duplicate'> {
  const [outcome] = await insertEventBatch(sql, [e]);
  return outcome!;
}

/** At most one wake-up NOTIFY per this many ms; the stored events in between share it. */
export const WAKE_INTERVAL_MS = 5;

/**
 * Returns wake(): call it after events committed, and the claim loops listening in any process
 * hear one NOTIFY soon after (at once if none was sent in the last WAKE_INTERVAL_MS, else at the
 * end of the interval, for all the calls in it).
 *
 * Why not NOTIFY inside the ingest statement: a transaction that notifies takes a database-wide
 * lock at commit and holds it through its WAL flush, so every ingest commit waited for the one
 * before it and Postgres could not flush many commits at once (32 concurrent inserts: 1,054-1,486
 * rows/s with the NOTIFY inside, 2,558-3,591 without, same run). A NOTIFY on its own writes no
 * WAL, so it holds that lock for microseconds. If the process dies between the commit and the
 * NOTIFY, or a NOTIFY fails, the loops find the event at their next poll (WORKER_POLL_MS).
 */
export function createWakeup(sql: Sql, onError: (err: unknown) => void): () => void {
  let sending = false;
  let owed = false;
  let lastSent = -Infinity;
  let timer: NodeJS.Timeout | undefined;

  const send = () => {
    timer = undefined;
    owed = false;
    sending = true;
    lastSent = performance.now();
    sql`select pg_notify(${EVENTS_CHANNEL}, '')`
      .then(() => {}, onError)
      .finally(() => {
        sending = false;
        if (owed) wake();
      });
  };

  const wake = () => {
    if (sending || timer) {
      owed = true;
      return;
    }
    const wait = lastSent + WAKE_INTERVAL_MS - performance.now();
    if (wait <= 0) send();
    // unref: a wake-up still owed never keeps a stopping process alive (the poll covers it).
    else timer = setTimeout(send, wait).unref();
  };
  return wake;
}

/** A claimed event: what a worker needs to fold it. */
export type ClaimedEvent = {
  id: string;
  source: string;
  event_id: string;
  type: string;
  attempts: number;
  payload: unknown;
};

/**
 * Claims up to `limit` due events for one worker. The lease is next_attempt_at itself: a claimed
 * event becomes due again when the lease runs out, so a worker that dies loses its claims without
 * anyone having to notice. SKIP LOCKED lets concurrent workers take disjoint batches.
 */
export async function claimEvents(
  sql: Sql,
  options: { limit: number; leaseSeconds: number; workerId: string },
): Promise<ClaimedEvent[]> {
  return sql<ClaimedEvent[]>`
    with due as (
      select id from events
      where status = 'RECEIVED' and next_attempt_at <= now()
      order by next_attempt_at, id
      limit ${options.limit}
      for update skip locked
    )
    update events e
    set attempts = e.attempts + 1,
        locked_by = ${options.workerId},
        locked_until = now() + make_interval(secs => ${options.leaseSeconds}),
        next_attempt_at = now() + make_interval(secs => ${options.leaseSeconds})
    from due
    where e.id = due.id
    returning e.id::text, e.source, e.event_id, e.type, e.attempts, e.payload`;
}

/**
 * Records a failed attempt: back to RECEIVED with a later next_attempt_at, or FAILED (the dead
 * letter: visible, replayable) when `retryInMs` is null.
 */
export async function failAttempt(tx: Sql, id: string, error: string, retryInMs: number | null): Promise<void> {
  if (retryInMs === null) {
    await tx`
      update events
      set status = 'FAILED', last_error = ${error}, processed_at = now(), locked_until = null
      where id = ${id} and status = 'RECEIVED'`;
  } else {
    await tx`
      update events
      set last_error = ${error}, locked_until = null,
          next_attempt_at = now() + make_interval(secs => ${retryInMs / 1000})
      where id = ${id} and status = 'RECEIVED'`;
  }
}

/** Gives back claims a stopping worker never started: due now, and the attempt not counted. */
export async function releaseClaims(sql: Sql, ids: string[], workerId: string): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    update events
    set next_attempt_at = now(), locked_until = null, attempts = greatest(attempts - 1, 0)
    where id = any(${ids}::bigint[]) and status = 'RECEIVED' and locked_by = ${workerId}`;
}

/**
 * Leases that ran out: their worker died or stalled. They are due again already (the lease is
 * next_attempt_at); this clears the lease, wakes the workers, and returns them so the sweeper can
 * say which events were taken over.
 */
export async function recoverExpiredLeases(sql: Sql): Promise<{ id: string; event_id: string; locked_by: string }[]> {
  return sql`
    with expired as (
      update events set locked_until = null
      where status = 'RECEIVED' and locked_until is not null and locked_until < now()
      returning id, event_id, locked_by
    )
    select id::text, event_id, locked_by, pg_notify(${EVENTS_CHANNEL}, id::text) from expired`;
}

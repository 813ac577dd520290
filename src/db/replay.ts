// Replay: puts events back to be folded again, one by reference or many by filter, in short
// batches that are safe to interrupt and to run again. Used by the admin API and scripts/replay.ts.
import { qb, run, type Sql } from './client.ts';
import { byRef, matches, replayable, type EventFilter, type EventRef } from './event-filter.ts';
import { EVENTS_CHANNEL } from './events.ts';
import { ITEM_COLUMNS, type EventItem } from './event-lookup.ts';


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

// Retention: deletes finished events (PROCESSED, FAILED, IGNORED) older than a number of days, in
// small batches that are each one short statement, so no lock is held for long and ingest and the
// workers carry on in between. Never an unfinished event; never the object tables.
// src/worker/sweeps.ts runs it on a pg-boss schedule. At larger scale, partitioning events by time
// replaces it (README, "Operations").
import type { Sql } from './client.ts';

export type PurgeOptions = {
  olderThanDays: number;
  batchSize: number;
  /** Stop after this many batches (the next run carries on); default: until nothing is left. */
  maxBatches?: number;
  onBatch?: (deleted: number) => void;
};

/** Returns how many events it deleted. */
export async function purgeEvents(sql: Sql, options: PurgeOptions): Promise<number> {
  let total = 0;
  for (let batch = 0; options.maxBatches === undefined || batch < options.maxBatches; batch++) {
    // SKIP LOCKED: a row a replay or a worker is touching right now is left for the next run, and
    // the lock taken here makes such a replay wait and then find the row gone rather than revive it.
    const [row] = await sql<{ n: number }[]>`
      with doomed as (
        select id from events
         where received_at < now() - make_interval(days => ${options.olderThanDays})
           and status in ('PROCESSED', 'FAILED', 'IGNORED')
         order by received_at
         limit ${options.batchSize}
         for update skip locked
      ), deleted as (
        delete from events e using doomed where e.id = doomed.id returning 1
      )
      select count(*)::int as n from deleted`;
    const n = row!.n;
    total += n;
    options.onBatch?.(n);
    if (n < options.batchSize) break;
  }
  return total;
}

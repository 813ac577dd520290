// Retention: deletes finished events (PROCESSED, FAILED, IGNORED) older than a number of days, and
// the outbox's finished deliveries with their attempts and messages, in small batches that are
// each one short statement, so no lock is held for long and ingest, the workers and the relay carry
// on in between. Never an unfinished event or a waiting delivery; never the object tables.
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

/** Runs one batch's delete until one deletes fewer than batchSize, or maxBatches ran; the total. */
async function inBatches(options: PurgeOptions, batch: () => Promise<number>, report = true): Promise<number> {
  let total = 0;
  for (let i = 0; options.maxBatches === undefined || i < options.maxBatches; i++) {
    const n = await batch();
    total += n;
    if (report) options.onBatch?.(n);
    if (n < options.batchSize) break;
  }
  return total;
}

/** Returns how many events it deleted. */
export async function purgeEvents(sql: Sql, options: PurgeOptions): Promise<number> {
  // SKIP LOCKED: a row a replay or a worker is touching right now is left for the next run, and
  // the lock taken here makes such a replay wait and then find the row gone rather than revive it.
  return inBatches(options, async () => {
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
    return row!.n;
  });
}

/**
 * The outbox's retention: finished deliveries (DELIVERED, SUPERSEDED, DEAD) whose change is older
 * than the same number of days, with their attempts, then the messages no delivery refers to any
 * more. Waiting deliveries (PENDING, FAILED) are never purged, nor their messages. Returns how many
 * deliveries and messages it deleted.
 */
export async function purgeOutbox(sql: Sql, options: PurgeOptions): Promise<{ deliveries: number; messages: number }> {
  const deliveries = await inBatches(options, async () => {
    const [row] = await sql<{ n: number }[]>`
      with doomed as (
        select id from deliveries
         where finished_at < now() - make_interval(days => ${options.olderThanDays})
           and status in ('DELIVERED', 'SUPERSEDED', 'DEAD')
         order by finished_at
         limit ${options.batchSize}
         for update skip locked
      ), deleted as (
        delete from deliveries d using doomed where d.id = doomed.id returning 1
      )
      select count(*)::int as n from deleted`;
    return row!.n;
  });
  const messages = await inBatches(
    options,
    async () => {
      const [row] = await sql<{ n: number }[]>`
        with doomed as (
          select m.id from outbox_messages m
           where m.created_at < now() - make_interval(days => ${options.olderThanDays})
             and not exists (select 1 from deliveries d where d.message_id = m.id)
           order by m.created_at
           limit ${options.batchSize}
           for update skip locked
        ), deleted as (
          delete from outbox_messages m using doomed where m.id = doomed.id returning 1
        )
        select count(*)::int as n from deleted`;
      return row!.n;
    },
    false,
  );
  return { deliveries, messages };
}

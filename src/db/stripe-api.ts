// The queries behind reading Stripe's API: claiming the parents to fetch (pending_links), recording
// what a fetch found, storing an API snapshot as an events row of source 'stripe-api', pacing thin
// events, and the cursors of reconciliation and backfill. No HTTP here, and no fold logic.
import type postgres from 'postgres';
import { BY_TABLE } from '../stripe/catalog.ts';
import type { Sql } from './client.ts';

/** The source of events rows that hold a snapshot read from Stripe's API. */
export const API_SOURCE = 'stripe-api';
/** The source (and route) of thin events: POST /webhooks/stripe-thin. */
export const THIN_SOURCE = 'stripe-thin';

// ---- Parent fetch ------------------------------------------------------------------------------

/** A parent to read from the API, with one of the children waiting for it (to learn the account). */
export type DueParent = {
  parent_table: string;
  parent_id: string;
  child_table: string;
  child_id: string;
  /** Links waiting for it. */
  links: number;
  /** Reads so far, this one included. */
  attempts: number;
};

/**
 * Claims up to `limit` parents whose links have waited `afterSeconds` and are due, with every link
 * waiting for each, by pushing their next_fetch_at out by `leaseSeconds` (the lease: a worker that
 * dies loses its claims when it runs out). Several workers share the work: a parent is claimed
 * under a try-lock of its own, so two never read the same one, and a parent claimed meanwhile is
 * no longer due when the update re-reads its rows.
 */
export async function claimDueParents(
  sql: postgres.Sql,
  options: { afterSeconds: number; limit: number; leaseSeconds: number },
): Promise<DueParent[]> {
  return sql.begin(async (tx) => {
    return tx<DueParent[]>`
      with oldest as (
        select parent_table, parent_id, since from pending_links
         where unresolvable_reason is null
           and since <= now() - make_interval(secs => ${options.afterSeconds})
           and (next_fetch_at is null or next_fetch_at <= now())
         order by since
         limit ${options.limit * 20}
      ), candidates as (
        select parent_table, parent_id, min(since) as since from oldest
         group by parent_table, parent_id
         order by min(since)
         limit ${options.limit}
      ), claimed as (
        select parent_table, parent_id from candidates
         where pg_try_advisory_xact_lock(hashtextextended('parent-fetch:' || parent_table || ':' || parent_id, 0))
      ), leased as (
        update pending_links l
           set next_fetch_at = now() + make_interval(secs => ${options.leaseSeconds}),
               fetch_attempts = l.fetch_attempts + 1
          from claimed c
         where l.parent_table = c.parent_table and l.parent_id = c.parent_id
           and l.unresolvable_reason is null
           and (l.next_fetch_at is null or l.next_fetch_at <= now())
        returning l.parent_table, l.parent_id, l.child_table, l.child_id, l.fetch_attempts
      )
      select parent_table, parent_id, min(child_table) as child_table,
             (array_agg(child_id order by child_table, child_id))[1] as child_id,
             count(*)::int as links, max(fetch_attempts)::int as attempts
        from leased
       group by parent_table, parent_id`;
  });
}

/**
 * The Connect account of a child row: its parent lives in the same account and is read with it.
 * `table` must be a catalogue table (it is interpolated); the child row exists, since its fold
 * parked the link.
 */
export async function accountOfRow(sql: Sql, table: string, id: string): Promise<string | null> {
  if (!BY_TABLE.has(table)) throw new Error(`accountOfRow: ${table} is not a table of the catalogue`);
  const rows = await sql.unsafe<{ account: string | null }[]>(`select account from ${table} where id = $1`, [id]);
  return rows[0]?.account ?? null;
}

/** A read failed in a way that may pass: try again in `retryInSeconds`; the links stay parked. */
export async function deferParentFetch(sql: Sql, parentTable: string, parentId: string, error: string, retryInSeconds: number): Promise<number> {
  const rows = await sql`
    update pending_links
       set next_fetch_at = now() + make_interval(secs => ${retryInSeconds}),
           last_fetch_at = now(), last_fetch_error = ${error}
     where parent_table = ${parentTable} and parent_id = ${parentId} and unresolvable_reason is null
    returning 1`;
  return rows.length;
}

/** Stripe says the parent cannot be had: never fetched again, shown with the reason in `orphans`. */
export async function markUnresolvable(sql: Sql, parentTable: string, parentId: string, reason: string): Promise<number> {
  const rows = await sql`
    update pending_links
       set unresolvable_reason = ${reason}, unresolvable_at = now(),
           last_fetch_at = now(), last_fetch_error = null, next_fetch_at = null
     where parent_table = ${parentTable} and parent_id = ${parentId} and unresolvable_reason is null
    returning 1`;
  return rows.length;
}

/** Whether a row exists in a catalogue table. */
export async function rowExists(sql: Sql, table: string, id: string): Promise<boolean> {
  if (!BY_TABLE.has(table)) throw new Error(`rowExists: ${table} is not a table of the catalogue`);
  const rows = await sql.unsafe(`select 1 from ${table} where id = $1`, [id]);
  return rows.length > 0;
}

// ---- API snapshots as events ---------------------------------------------------------------------

export type ApiSnapshotRow = {
  eventId: string;
  type: string;
  account: string | null;
  livemode: boolean | null;
  apiVersion: string | null;
  /** Unix seconds. */
  created: number;
  payload: Record<string, unknown>;
  result: unknown;
};

/**
 * Records a folded API snapshot as an events row of source 'stripe-api', PROCESSED with what the
 * fold did, in the fold's own transaction: object_events and the timelines show it, and the rows
 * it wrote name it in last_event_id. A second read of the same object in the same millisecond
 * (two workers) is the same snapshot: kept once.
 */
export async function insertApiSnapshot(tx: Sql, row: ApiSnapshotRow): Promise<void> {
  await tx`
    insert into events (source, event_id, type, api_version, account, livemode, created, payload, status, attempts, processed_at, result)
    values (${API_SOURCE}, ${row.eventId}, ${row.type}, ${row.apiVersion}, ${row.account}, ${row.livemode},
            to_timestamp(${row.created}::bigint), ${tx.json(row.payload as postgres.JSONValue)}, 'PROCESSED', 1, now(),
            ${tx.json(row.result as postgres.JSONValue)})
    on conflict (source, event_id) do nothing`;
}

// ---- Thin events ---------------------------------------------------------------------------------

/**
 * A thin event that cannot be folded yet (no API key, a key Stripe refuses, Stripe unreachable):
 * back to waiting, due again in `retryInSeconds`, with the reason in last_error. It stays RECEIVED:
 * never FAILED for want of the API. `giveBack` returns the claim's attempt, so waiting for a key
 * does not count towards WORKER_MAX_ATTEMPTS. A null error keeps the last one.
 */
export async function deferThinEvent(sql: Sql, id: string, error: string | null, retryInSeconds: number, giveBack: boolean): Promise<void> {
  await sql`
    update events
       set last_error = coalesce(${error}, last_error), locked_until = null,
           next_attempt_at = now() + make_interval(secs => ${retryInSeconds}),
           attempts = case when ${giveBack} then greatest(attempts - 1, 0) else attempts end
     where id = ${id} and status = 'RECEIVED'`;
}

/**
 * A thin event whose related object was read and folded, in that fold's transaction: PROCESSED with
 * what the fold did and the id the read is stored under. False when it was no longer RECEIVED
 * (another worker finished it after this one's lease ran out).
 */
export async function settleThinEvent(tx: Sql, id: string, result: unknown, snapshotEventId: string): Promise<boolean> {
  const rows = await tx`
    update events
       set status = 'PROCESSED', result = ${tx.json({ ...(result as object), snapshot: snapshotEventId } as postgres.JSONValue)},
           processed_at = now(), locked_until = null, next_attempt_at = now()
     where id = ${id} and status = 'RECEIVED'
    returning 1`;
  return rows.length === 1;
}

/** Thin events waiting for an API key: due now (a worker started with a key). */
export async function wakeWaitingThinEvents(sql: Sql, waitingPrefix: string): Promise<number> {
  const rows = await sql`
    update events set next_attempt_at = now()
     where source = ${THIN_SOURCE} and status = 'RECEIVED' and next_attempt_at > now()
       and starts_with(last_error, ${waitingPrefix})
    returning 1`;
  return rows.length;
}

// ---- Reconciliation cursors ----------------------------------------------------------------------

export type ReconcileCursor = {
  scope: string;
  covered_until: Date;
  newest_event_at: Date | null;
  last_success_at: Date | null;
  last_error: string | null;
  recovered_total: string;
};

/** Where the scope's cursor stands, if a run made one; read-only (a dry run). */
export async function readReconcileCursor(sql: Sql, scope: string): Promise<Date | undefined> {
  const [row] = await sql<{ covered_until: Date }[]>`select covered_until from reconcile_cursors where scope = ${scope}`;
  return row?.covered_until;
}

/** The scope's cursor, created `lookbackSeconds` before now on the first run. */
export async function startReconcile(sql: Sql, scope: string, lookbackSeconds: number): Promise<ReconcileCursor> {
  const [row] = await sql<ReconcileCursor[]>`
    insert into reconcile_cursors (scope, covered_until, last_started_at)
    values (${scope}, now() - make_interval(secs => ${lookbackSeconds}), now())
    on conflict (scope) do update set last_started_at = now(), updated_at = now()
    returning scope, covered_until, newest_event_at, last_success_at, last_error, recovered_total::text`;
  return row!;
}

/** A run covered its window: the cursor moves to its end (null: a window that left a hole before the cursor moves nothing). */
export async function finishReconcile(
  sql: Sql,
  scope: string,
  run: { coveredUntil: Date | null; newestEventAt: Date | null; listed: number; recovered: number },
): Promise<void> {
  await sql`
    update reconcile_cursors
       set covered_until = greatest(covered_until, ${run.coveredUntil}::timestamptz),
           newest_event_at = greatest(newest_event_at, ${run.newestEventAt}::timestamptz),
           last_success_at = now(), last_error = null,
           last_listed = ${run.listed}, last_recovered = ${run.recovered},
           recovered_total = recovered_total + ${run.recovered}, updated_at = now()
     where scope = ${scope}`;
}

/** A run failed part-way: the cursor stays (the next run lists the window again); count what it stored. */
export async function failReconcile(sql: Sql, scope: string, error: string, recovered: number): Promise<void> {
  await sql`
    update reconcile_cursors
       set last_error = ${error}, recovered_total = recovered_total + ${recovered}, updated_at = now()
     where scope = ${scope}`;
}

// ---- Backfill runs -------------------------------------------------------------------------------

export type BackfillRun = {
  id: string;
  account: string | null;
  objects: string[];
  created_gte: Date | null;
  started_at: Date;
  object_table: string | null;
  starting_after: string | null;
  counts: Record<string, number>;
};

const RUN_COLUMNS = 'id::text, account, objects, created_gte, started_at, object_table, starting_after, counts';

/** The newest unfinished run with exactly these options, to carry on with; or a new one. */
export async function openBackfillRun(
  sql: Sql,
  options: { account: string | null; objects: string[]; createdGte: Date | null },
): Promise<{ run: BackfillRun; resumed: boolean }> {
  const [found] = await sql.unsafe<BackfillRun[]>(
    `select ${RUN_COLUMNS} from backfill_runs
      where finished_at is null and account is not distinct from $1 and objects = $2::text[]
        and created_gte is not distinct from $3::timestamptz
      order by started_at desc limit 1`,
    [options.account, options.objects, options.createdGte],
  );
  if (found) return { run: found, resumed: true };
  const [created] = await sql.unsafe<BackfillRun[]>(
    `insert into backfill_runs (account, objects, created_gte, object_table) values ($1, $2::text[], $3::timestamptz, $4)
     returning ${RUN_COLUMNS}`,
    [options.account, options.objects, options.createdGte, options.objects[0] ?? null],
  );
  return { run: created!, resumed: false };
}

/** The cursor after a page: its table, the last id folded, and the table's count so far. */
export async function advanceBackfillRun(sql: Sql, id: string, table: string, startingAfter: string | null, count: number): Promise<void> {
  await sql`
    update backfill_runs
       set object_table = ${table}, starting_after = ${startingAfter},
           counts = counts || jsonb_build_object(${table}::text, ${count}::bigint),
           last_error = null, updated_at = now()
     where id = ${id}`;
}

export async function finishBackfillRun(sql: Sql, id: string): Promise<void> {
  await sql`update backfill_runs set finished_at = now(), object_table = null, starting_after = null, updated_at = now() where id = ${id}`;
}

export async function failBackfillRun(sql: Sql, id: string, error: string): Promise<void> {
  await sql`update backfill_runs set last_error = ${error}, updated_at = now() where id = ${id}`;
}

/** How many of these ids a catalogue table holds already: for a dry run. */
export async function countExisting(sql: Sql, table: string, ids: string[]): Promise<number> {
  if (!BY_TABLE.has(table)) throw new Error(`countExisting: ${table} is not a table of the catalogue`);
  if (ids.length === 0) return 0;
  const [row] = await sql.unsafe<{ n: number }[]>(`select count(*)::int as n from ${table} where id = any($1::text[])`, [ids]);
  return row!.n;
}

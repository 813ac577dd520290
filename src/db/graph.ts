// Queries on the object graph. Folding one event, or a batch, is one statement: fold_event() and
// fold_events() in sql/ apply the plan that stripe/graph.ts made (rows, links, order keys)
// under the plan's advisory locks, and marks the event PROCESSED in the same transaction.
import type postgres from 'postgres';
import { TABLES, linksOf, lockKey, type FoldPlan, type TableName } from '../stripe/graph.ts';
import type { Sql } from './client.ts';

export type LinkRef = {
  child_table: string;
  child_id: string;
  link_column: string;
  parent_table: string;
  parent_id: string;
};

export type FoldResult = {
  objects: { table: TableName; id: string; action: 'created' | 'updated' | 'stale' | 'unchanged' }[];
  parked: LinkRef[];
  resolved: LinkRef[];
};

type FoldPlanned = Extract<FoldPlan, { kind: 'fold' }>;

/** The writes of a plan as fold_event_locked() reads them. */
function writesJson(plan: FoldPlanned) {
  return plan.writes.map((w) => ({
    table: w.table,
    id: w.id,
    row: {
      ...w.columns,
      last_event_created: new Date(w.key.created * 1000).toISOString(),
      last_event_rank: w.key.rank,
      last_event_id: w.key.eventId,
    },
    data_path: w.dataPath,
    links: w.links.map((l) => ({ column: l.column, parent_table: l.parentTable, parent_id: l.parentId })),
  }));
}

/**
 * Applies a fold plan to a claimed event as one statement (its own transaction). Returns what it
 * did, or null when the event no longer needs folding (another worker finished it first).
 */
export async function applyFoldPlan(sql: Sql, eventRowId: string, plan: FoldPlanned): Promise<FoldResult | null> {
  const payload = { lock_keys: plan.lockKeys, share_keys: plan.shareKeys, writes: writesJson(plan) };
  const [row] = await sql<[{ result: FoldResult | null }]>`
    select fold_event(${eventRowId}, ${sql.json(payload as postgres.JSONValue)}) as result`;
  return row.result;
}

/** One claimed event of a batch: a plan to apply, or the reason it is not folded. */
export type BatchItem = { id: string; plan: FoldPlanned } | { id: string; ignore: string };

/** What fold_events() did with one event of the batch. */
export type BatchOutcome =
  | { result: FoldResult }
  | { ignored: string }
  | { skipped: true }
  | { busy: true }
  | { error: string; code: string };

/**
 * Folds several claimed events in one statement and one transaction, each in its own
 * subtransaction. The batch only tries each event's advisory locks: an event whose rows another
 * fold holds comes back busy, one that throws is rolled back alone and comes back as an error, and
 * the others commit. At most 32 events (see fold_events() in sql/004_fold_batches.sql).
 */
export async function applyFoldBatch(sql: Sql, items: BatchItem[]): Promise<BatchOutcome[]> {
  const batch = items.map((item) =>
    'plan' in item
      ? { id: item.id, lock_keys: item.plan.lockKeys, share_keys: item.plan.shareKeys, writes: writesJson(item.plan) }
      : { id: item.id, ignore: item.ignore },
  );
  const [row] = await sql<[{ outcomes: BatchOutcome[] }]>`
    select fold_events(${sql.json(batch as postgres.JSONValue)}) as outcomes`;
  return row.outcomes;
}

/**
 * For the sweeper: parked links whose parent exists after all. The fold's advisory locks make this
 * impossible in theory; the sweeper makes it harmless in practice (a bug, a row restored by hand).
 */
export async function findResolvableParents(
  sql: postgres.Sql,
  limit: number,
): Promise<{ parent_table: TableName; parent_id: string }[]> {
  const parents = [...new Set(TABLES.flatMap((t) => linksOf(t).map((l) => l.parent)))];
  const found: { parent_table: TableName; parent_id: string }[] = [];
  for (const parent of parents) {
    // `parent` comes from the constant specs, never from data.
    const rows = await sql.unsafe<{ parent_id: string }[]>(
      `select distinct l.parent_id from pending_links l join ${parent} p on p.id = l.parent_id
       where l.parent_table = $1 order by l.parent_id limit $2`,
      [parent, limit],
    );
    for (const r of rows) found.push({ parent_table: parent, parent_id: r.parent_id });
  }
  return found;
}

/** Resolves every link waiting for one parent that exists, under the parent's advisory lock. */
export async function resolveLinksTo(tx: postgres.TransactionSql, parent: TableName, id: string): Promise<LinkRef[]> {
  const [row] = await tx<[{ resolved: LinkRef[] }]>`
    select pg_advisory_xact_lock(hashtextextended(${lockKey(parent, id)}, 0)),
           resolve_pending_links(${parent}, ${id}) as resolved`;
  return row.resolved;
}

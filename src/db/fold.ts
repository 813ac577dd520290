// The fold's queries. Folding a batch of planned items is one statement, fold_items(), and one item
// alone (waiting for its locks) is fold_item(), both in sql/functions/: they apply the plans that
// stripe/graph.ts made (rows, links, order keys) under the plans' advisory locks, and mark each
// event PROCESSED. They run in a transaction the caller opened (worker/fold.ts), so whatever must
// commit with the fold is written in the same one.
import type postgres from 'postgres';
import { BY_TABLE, parentTables, type StripeObject } from '../stripe/catalog.ts';
import { lockKey, type FoldPlan, type PlannedWrite } from '../stripe/graph.ts';
import type { Sql } from './client.ts';

export type LinkRef = {
  child_table: string;
  child_id: string;
  link_column: string;
  parent_table: string;
  parent_id: string;
};

/** What a fold did to one row; `version` is the row's version after a change (null when unchanged or stale). */
export type ObjectOutcome = {
  table: string;
  id: string;
  action: 'created' | 'updated' | 'deleted' | 'stale' | 'unchanged';
  version: number | null;
};

/** A parked link that the fold set, and the version of the child row it changed. */
export type ResolvedLink = LinkRef & { child_version: number | null };

export type FoldResult = { objects: ObjectOutcome[]; parked: LinkRef[]; resolved: ResolvedLink[] };

type FoldPlanned = Extract<FoldPlan, { kind: 'fold' }>;

/**
 * One item to fold: a claimed event's plan (or the reason it is not folded), whose snapshots the
 * database reads from the stored event; or a snapshot read from Stripe's API, which has no event
 * row and travels with its plan.
 */
export type FoldItem =
  | { event: string; plan: FoldPlanned }
  | { event: string; ignore: string }
  | { snapshot: StripeObject; plan: FoldPlanned };

/** What fold_items() / fold_item() did with one item. */
export type ItemOutcome =
  | { result: FoldResult }
  | { ignored: string }
  | { skipped: true }
  | { busy: true }
  | { error: string; code: string };

/** A planned write as the rendered writers read it (db/fold-sql.ts); its snapshot stays where it is. */
function writeJson(w: PlannedWrite) {
  return {
    table: w.table,
    id: w.id,
    row: {
      ...w.columns,
      last_event_created: new Date(w.key.created * 1000).toISOString(),
      last_event_rank: w.key.rank,
      last_event_id: w.key.eventId,
    },
    links: Object.fromEntries(w.links.map((l) => [l.column, l.parentId])),
    many: Object.fromEntries(w.many.map((m) => [m.table, m.parentIds])),
    data_path: w.dataPath,
  };
}

function itemJson(item: FoldItem) {
  if ('ignore' in item) return { event: item.event, ignore: item.ignore };
  const planned = { lock_keys: item.plan.lockKeys, share_keys: item.plan.shareKeys, writes: item.plan.writes.map(writeJson) };
  return 'snapshot' in item ? { snapshot: item.snapshot, ...planned } : { event: item.event, ...planned };
}

/**
 * Folds several items in one statement, each in its own subtransaction of the caller's
 * transaction. The batch only tries each item's advisory locks: an item whose rows another fold
 * holds comes back busy, one that throws is rolled back alone and comes back as an error, and the
 * others are written. At most 32 items (see sql/functions/fold_items.sql).
 */
export async function applyFoldItems(tx: postgres.Sql | postgres.TransactionSql, items: FoldItem[]): Promise<ItemOutcome[]> {
  const [row] = await tx<[{ outcomes: ItemOutcome[] }]>`
    select fold_items(${tx.json(items.map(itemJson) as postgres.JSONValue)}) as outcomes`;
  return row.outcomes;
}

/** Folds one item in the caller's transaction (or its own, on `sql`), waiting for its advisory locks. */
export async function applyFoldItem(tx: postgres.Sql | postgres.TransactionSql, item: FoldItem): Promise<ItemOutcome> {
  const [row] = await tx<[{ outcome: ItemOutcome }]>`
    select fold_item(${tx.json(itemJson(item) as postgres.JSONValue)}) as outcome`;
  return row.outcome;
}

/** Every table that some link points at: the sweeper looks for parked links to these. */
const PARENT_TABLES = [...new Set([...BY_TABLE.values()].flatMap(parentTables))];

/**
 * For the sweeper: parked links whose parent exists after all. The fold's advisory locks make this
 * impossible in theory; the sweeper makes it harmless in practice (a bug, a row restored by hand).
 */
export async function findResolvableParents(sql: Sql, limit: number): Promise<{ parent_table: string; parent_id: string }[]> {
  const found: { parent_table: string; parent_id: string }[] = [];
  for (const parent of PARENT_TABLES) {
    // `parent` comes from the catalogue, never from data.
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
export async function resolveLinksTo(tx: postgres.TransactionSql, parent: string, id: string): Promise<ResolvedLink[]> {
  const [row] = await tx<[{ resolved: ResolvedLink[] }]>`
    select pg_advisory_xact_lock(hashtextextended(${lockKey(parent, id)}, 0)),
           resolve_links(${parent}, ${id}) as resolved`;
  return row.resolved;
}

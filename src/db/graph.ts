// Queries on the object tables and pending_links. Every function here runs inside the fold
// transaction of one event (its first parameter is that transaction), after the event's advisory
// locks are held: the lock on a row's key is what makes "read the current order key, then write"
// safe, and what stops a child from parking a link while its parent commits unseen.
//
// Table and column names are spliced into the SQL text, but only ever from the constant specs in
// stripe/graph.ts, never from event data; values always travel as parameters.
import type postgres from 'postgres';
import {
  TABLES,
  extraColumnsOf,
  isNewer,
  linksOf,
  lockKey,
  type OrderKey,
  type PlannedWrite,
  type TableName,
} from '../stripe/graph.ts';

type Tx = postgres.TransactionSql;

export type LinkRef = {
  child_table: string;
  child_id: string;
  link_column: string;
  parent_table: string;
  parent_id: string;
};

export type WriteAction = 'created' | 'updated' | 'stale' | 'unchanged';

export type WriteOutcome = {
  table: TableName;
  id: string;
  action: WriteAction;
  parked: LinkRef[];
  resolved: LinkRef[];
};

const COMMON = ['status', 'amount', 'currency', 'created', 'livemode', 'account', 'deleted', 'data', 'api_version'];

/** Takes the advisory locks of an event's rows in the given (sorted) order. */
export async function lockKeys(tx: Tx, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  // The lock call is volatile, so Postgres evaluates it row by row after ordering: in key order.
  await tx`
    select pg_advisory_xact_lock(hashtextextended(k, 0))
    from unnest(${keys}::text[]) with ordinality as u(k, n)
    order by n`;
}

type Prev = { created: number; rank: number; event_id: string; deleted: boolean };

// Per table, the SQL text is built once.
const statements = new Map<TableName, ReturnType<typeof buildStatements>>();

function buildStatements(table: TableName) {
  const links = linksOf(table).map((l) => l.column);
  const columns = [...COMMON, ...extraColumnsOf(table), ...links];
  const n = columns.length;
  const keyParams = `to_timestamp($${n + 2}), $${n + 3}, $${n + 4}`;
  const insert = `
    insert into ${table} (id, ${columns.join(', ')}, last_event_created, last_event_rank, last_event_id)
    values ($1, ${columns.map((_, i) => `$${i + 2}`).join(', ')}, ${keyParams})`;
  // The WHERE repeats the newest-wins rule as a guard; "C" collation compares ids bytewise, as
  // JavaScript does.
  const update = `
    update ${table} set ${columns.map((c, i) => (c === 'deleted' ? `deleted = ${table}.deleted or $${i + 2}` : `${c} = $${i + 2}`)).join(', ')},
      last_event_created = to_timestamp($${n + 2}), last_event_rank = $${n + 3}, last_event_id = $${n + 4},
      updated_at = now()
    where id = $1
      and (last_event_created, last_event_rank, last_event_id collate "C")
        < (to_timestamp($${n + 2}), $${n + 3}::int, $${n + 4}::text collate "C")`;
  return { columns, insert, update };
}

function statementsFor(table: TableName) {
  let s = statements.get(table);
  if (!s) {
    s = buildStatements(table);
    statements.set(table, s);
  }
  return s;
}

// Resolving links to a new parent, per parent table: delete what waited for it and set the link
// column on every waiting child, all in one statement.
const resolveStatements = new Map<TableName, string>();

function resolveStatementFor(parent: TableName): string {
  let text = resolveStatements.get(parent);
  if (text) return text;
  const updates: string[] = [];
  for (const child of TABLES) {
    for (const link of linksOf(child)) {
      if (link.parent !== parent) continue;
      updates.push(`
        u${updates.length} as (
          update ${child} c set ${link.column} = $2, updated_at = now() from resolved r
          where r.child_table = '${child}' and r.link_column = '${link.column}' and c.id = r.child_id
          returning 1)`);
    }
  }
  text = `
    with resolved as (
      delete from pending_links where parent_table = $1 and parent_id = $2
      returning child_table, child_id, link_column, parent_table, parent_id)
    ${updates.map((u) => `, ${u}`).join('')}
    select child_table, child_id, link_column, parent_table, parent_id from resolved
    order by child_table, child_id, link_column`;
  resolveStatements.set(parent, text);
  return text;
}

/**
 * Writes one planned row if its snapshot is the newest, and keeps its links right: a link to a
 * parent that exists is set; one to a missing parent is NULL and parked in pending_links. A row
 * written for the first time resolves every link that was waiting for it.
 */
export async function writeObject(tx: Tx, w: PlannedWrite): Promise<WriteOutcome> {
  const { columns, insert, update } = statementsFor(w.table);
  const outcome: WriteOutcome = { table: w.table, id: w.id, action: 'stale', parked: [], resolved: [] };

  // One round trip: the row's current order key, and which of its parents exist.
  const wanted = w.links.filter((l) => l.parentId !== null);
  const exists = wanted.map((l, i) => `exists (select 1 from ${l.parentTable} where id = $${i + 2})`);
  const [state] = await tx.unsafe<[{ prev: Prev | null; parents: boolean[] }]>(
    `select
       (select json_build_object('created', extract(epoch from last_event_created)::bigint,
                                 'rank', last_event_rank, 'event_id', last_event_id, 'deleted', deleted)
        from ${w.table} where id = $1) as prev,
       array[${exists.join(', ')}]::boolean[] as parents`,
    [w.id, ...wanted.map((l) => l.parentId!)],
  );
  const prev = state.prev;

  if (prev) {
    const prevKey: OrderKey = { created: Number(prev.created), rank: prev.rank, eventId: prev.event_id };
    if (!isNewer(w.key, prevKey)) {
      // An older snapshot never overwrites; but a deletion, however late, still marks the tombstone.
      if (w.columns.deleted === true && !prev.deleted) {
        await tx.unsafe(`update ${w.table} set deleted = true, updated_at = now() where id = $1`, [w.id]);
        outcome.action = 'updated';
      } else {
        outcome.action = prev.event_id === w.key.eventId ? 'unchanged' : 'stale';
      }
      return outcome;
    }
  }

  // This snapshot wins: its links are the ones that count.
  const linkValues = new Map<string, string | null>();
  const parked: LinkRef[] = [];
  wanted.forEach((l, i) => {
    if (state.parents[i]) linkValues.set(l.column, l.parentId);
    else {
      linkValues.set(l.column, null);
      parked.push({
        child_table: w.table,
        child_id: w.id,
        link_column: l.column,
        parent_table: l.parentTable,
        parent_id: l.parentId!,
      });
    }
  });

  // Park first, write the row second: a parent resolving this child in parallel then waits on the
  // pending_links row, never on a row lock this transaction holds, so the two cannot deadlock.
  if (prev || parked.length > 0) await syncPendingLinks(tx, w, parked);

  const values = columns.map((c) => (linkValues.has(c) ? linkValues.get(c) : c in w.columns ? w.columns[c] : null));
  const params = [w.id, ...values, w.key.created, w.key.rank, w.key.eventId] as postgres.ParameterOrJSON<never>[];
  if (prev) {
    const result = await tx.unsafe(update, params);
    outcome.action = result.count === 1 ? 'updated' : 'stale';
  } else {
    await tx.unsafe(insert, params);
    outcome.action = 'created';
    outcome.resolved = await tx.unsafe<LinkRef[]>(resolveStatementFor(w.table), [w.table, w.id]);
  }
  outcome.parked = parked;
  return outcome;
}

/** Makes the row's pending links exactly `parked`: drop what is satisfied, park what is missing. */
async function syncPendingLinks(tx: Tx, w: PlannedWrite, parked: LinkRef[]): Promise<void> {
  await tx`
    with dropped as (
      delete from pending_links
      where child_table = ${w.table} and child_id = ${w.id}
        and link_column <> all(${parked.map((p) => p.link_column)}::text[])
    )
    insert into pending_links (child_table, child_id, link_column, parent_table, parent_id, event_id)
    select ${w.table}, ${w.id}, p.link_column, p.parent_table, p.parent_id, ${w.key.eventId}
    from unnest(${parked.map((p) => p.link_column)}::text[], ${parked.map((p) => p.parent_table)}::text[],
                ${parked.map((p) => p.parent_id)}::text[]) as p(link_column, parent_table, parent_id)
    on conflict (child_table, child_id, link_column) do update
      set parent_table = excluded.parent_table, parent_id = excluded.parent_id, event_id = excluded.event_id,
          since = case when pending_links.parent_id = excluded.parent_id then pending_links.since else now() end`;
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
    const rows = await sql.unsafe<{ parent_id: string }[]>(
      `select distinct l.parent_id from pending_links l join ${parent} p on p.id = l.parent_id
       where l.parent_table = $1 order by l.parent_id limit $2`,
      [parent, limit],
    );
    for (const r of rows) found.push({ parent_table: parent, parent_id: r.parent_id });
  }
  return found;
}

/** Resolves every link waiting for one parent that exists. Runs in its own transaction. */
export async function resolveLinksTo(tx: Tx, parent: TableName, id: string): Promise<LinkRef[]> {
  await lockKeys(tx, [lockKey(parent, id)]);
  return tx.unsafe<LinkRef[]>(resolveStatementFor(parent), [parent, id]);
}

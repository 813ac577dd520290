// Folding helpers: store events the way ingest does, run real workers until the queue is empty,
// and read the whole graph back in a form two runs can be compared with.
import type postgres from 'postgres';
import { insertEvent } from '../../src/db/events.ts';
import { BY_TABLE, TABLES } from '../../src/stripe/catalog.ts';
import { createLogger, silentLogger } from '../../src/log.ts';
import { startWorkers } from '../../src/worker/index.ts';
import { waitFor } from '../../scripts/lib/wait.ts';
import { BASIL } from '../../scripts/lib/stream.ts';
import { testConfig } from './app.ts';

export type Ev = { id: string; type: string; created: number; api_version?: string; account?: string; data: { object: Record<string, any> } };

/** An event about `object`, at the API version the stream builder uses unless `extra` says otherwise. */
export function stripeEv(id: string, type: string, created: number, object: Record<string, any>, extra: Partial<Ev> = {}): Ev {
  return { id, type, created, api_version: BASIL, data: { object }, ...extra };
}

/** Stores events through the ingest statement (duplicates are dropped, as on the wire). */
export async function storeEvents(sql: postgres.Sql, events: Ev[]): Promise<void> {
  for (const e of events) {
    await insertEvent(sql, {
      source: 'stripe',
      eventId: e.id,
      type: e.type,
      apiVersion: e.api_version ?? null,
      account: e.account ?? null,
      livemode: false,
      created: e.created,
      body: JSON.stringify(e),
    });
  }
}

export async function unfinished(sql: postgres.Sql): Promise<number> {
  const [row] = await sql`select count(*)::int as n from events where status = 'RECEIVED'`;
  return row!.n as number;
}

/** Runs real workers (no pg-boss) until no event is left RECEIVED, then stops them. */
export async function drain(
  sql: postgres.Sql,
  options: { concurrency?: number; batchSize?: number; env?: Record<string, string>; busy?: (loop: number) => boolean; onPause?: (seconds: number) => void } = {},
): Promise<void> {
  const config = testConfig({
    WORKER_CONCURRENCY: String(options.concurrency ?? 4),
    WORKER_BATCH_SIZE: String(options.batchSize ?? 10),
    WORKER_POLL_MS: '20',
    ...options.env,
  });
  const log = process.env.TEST_LOG ? createLogger(process.env.TEST_LOG, { pretty: false }) : silentLogger();
  const workers = await startWorkers({ sql, databaseUrl: '', config, log, schedules: false, busy: options.busy, onPause: options.onPause });
  try {
    await waitFor(async () => (await unfinished(sql)) === 0, { timeoutMs: 20_000, what: 'the queue to drain' });
  } finally {
    await workers.stop();
  }
}

/** The many-to-many link tables of the catalogue. */
const LINK_TABLES = [...BY_TABLE.values()].flatMap((s) => s.many.map((m) => ({ table: m.table, order: `${m.childColumn}, ${m.parentColumn}` })));

/**
 * Every object row, link table row and pending link, sorted: equal graphs compare equal. Without
 * updated_at and version: when and how many times a row changed depends on the arrival order.
 */
export type Graph = Record<string, any>;

export async function graphSnapshot(sql: postgres.Sql): Promise<Graph> {
  const out: Graph = {};
  for (const table of TABLES) {
    const rows = await sql.unsafe(`select * from ${table} order by id`);
    out[table] = rows.map(({ updated_at: _, version: __, ...rest }) => rest);
  }
  for (const { table, order } of LINK_TABLES) out[table] = [...(await sql.unsafe(`select * from ${table} order by ${order}`))];
  out.pending_links = (
    await sql`select child_table, child_id, link_column, parent_table, parent_id from pending_links
              order by child_table, child_id, link_column, parent_id`
  ).map((r) => ({ ...r }));
  return out;
}

/** Empties the graph and the events, to fold another arrival order on the same database. */
export async function resetGraph(sql: postgres.Sql): Promise<void> {
  await sql.unsafe(`truncate events, pending_links, ${[...TABLES, ...LINK_TABLES.map((l) => l.table)].join(', ')}`);
}

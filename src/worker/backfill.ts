// Backfill: lists Stripe objects, parents first, and folds each as a snapshot read now, so a new
// install starts linked. Its cursor (backfill_runs) moves in each object's fold transaction, so an
// interrupted run carries on exactly where it stopped. Run by npm run backfill; reads only.
import type postgres from 'postgres';
import { advanceBackfillRun, countExisting, failBackfillRun, finishBackfillRun, openBackfillRun } from '../db/stripe-api.ts';
import type { Logger } from '../log.ts';
import { BY_TABLE, TABLES } from '../stripe/catalog.ts';
import type { ListParams, StripeApi } from '../stripe-api/client.ts';
import { foldApiSnapshot } from './api-snapshot.ts';

/** Tables Stripe cannot list on their own, and why. */
export const NOT_LISTABLE: Readonly<Record<string, string>> = {
  subscription_items: 'listed per subscription only; they come whole with their subscriptions',
  payment_methods: "listed per customer only (GET /v1/payment_methods without a customer lists Treasury's); they arrive with their events",
};

/** Every table a backfill can fill, parents first: catalogue tables with an API path that Stripe lists. */
export function backfillTables(): string[] {
  return TABLES.filter((t) => BY_TABLE.get(t)?.apiPath && !(t in NOT_LISTABLE));
}

// Lists leave some objects out unless asked: canceled subscriptions, for one.
const EXTRA_PARAMS: Readonly<Record<string, ListParams>> = {
  subscriptions: { status: 'all' },
};

/** Puts the tables in parents-first order, or says which names are not tables a backfill can fill. */
export function orderTables(names: string[]): { tables: string[] } | { error: string } {
  const fillable = backfillTables();
  const wrong = names.filter((n) => !fillable.includes(n));
  if (wrong.length > 0) {
    const why = wrong.map((n) => (n in NOT_LISTABLE ? `${n} (${NOT_LISTABLE[n]})` : BY_TABLE.has(n) ? `${n} (no API path in the catalogue)` : `${n} (no such table)`));
    return { error: `cannot backfill ${why.join(', ')}; these can: ${fillable.join(', ')}` };
  }
  return { tables: fillable.filter((t) => names.includes(t)) };
}

export type BackfillProgress = {
  table: string;
  /** Objects of this table folded (or, in a dry run, listed) so far, this run included. */
  count: number;
  /** Of this table, in a dry run: how many the database has already. */
  existing: number;
  /** The `created` of the oldest object so far (lists go newest first). */
  oldest: Date | null;
  /** When this table started in this process. */
  startedAt: number;
  /** Counted in this process (the rate is over these). */
  countedHere: number;
};

export type BackfillOptions = {
  sql: postgres.Sql;
  api: StripeApi;
  log: Logger;
  /** Parents first (orderTables). */
  tables: string[];
  account?: string;
  since?: Date;
  dryRun?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: BackfillProgress) => void;
  /** Called when a table is done. */
  onTable?: (p: BackfillProgress) => void;
};

export type BackfillReport = {
  run: string | undefined;
  resumed: boolean;
  counts: Record<string, number>;
  existing: Record<string, number>;
  interrupted: boolean;
  /** Objects a list answered that the fold does not take (another object type): never expected. */
  ignored: number;
};

export async function runBackfill(options: BackfillOptions): Promise<BackfillReport> {
  const { sql, api, log, tables, dryRun } = options;
  const account = options.account ?? null;
  const createdGte = options.since ?? null;
  const opened = dryRun ? undefined : await openBackfillRun(sql, { account, objects: tables, createdGte });
  const run = opened?.run;
  const report: BackfillReport = { run: run?.id, resumed: opened?.resumed ?? false, counts: { ...run?.counts }, existing: {}, interrupted: false, ignored: 0 };
  const first = run?.object_table ? Math.max(0, tables.indexOf(run.object_table)) : 0;
  if (run) log.info({ run: run.id, resumed: report.resumed, from: run.object_table, startingAfter: run.starting_after }, opened!.resumed ? 'backfill resumes' : 'backfill starts');

  try {
    for (const table of tables.slice(first)) {
      const spec = BY_TABLE.get(table)!;
      let startingAfter = run && table === run.object_table ? (run.starting_after ?? undefined) : undefined;
      const progress: BackfillProgress = { table, count: report.counts[table] ?? 0, existing: 0, oldest: null, startedAt: Date.now(), countedHere: 0 };
      if (!dryRun && startingAfter === undefined) progress.count = 0;
      const params: ListParams = { ...EXTRA_PARAMS[table], ...(createdGte ? { created: { gte: Math.floor(createdGte.getTime() / 1000) } } : {}), starting_after: startingAfter };
      for await (const page of api.list(spec.apiPath!, params, account ? { account } : {})) {
        if (dryRun) {
          progress.count += page.data.length;
          progress.countedHere += page.data.length;
          progress.existing += await countExisting(sql, table, page.data.map((o) => o.id));
        }
        for (const object of dryRun ? [] : page.data) {
          // The cursor moves in the fold's own transaction: after a crash, the run carries on
          // exactly after the last object that committed.
          const folded = await foldApiSnapshot(sql, object, {
            fetchedAt: page.fetchedAt,
            account,
            apiVersion: api.apiVersion,
            reason: `backfill run ${run!.id}`,
            inTransaction: (tx) => advanceBackfillRun(tx, run!.id, table, object.id, progress.count + 1),
          });
          if (!('result' in folded)) {
            report.ignored++;
            log.warn({ table, id: object.id, object: object.object }, 'backfill: a listed object was not folded');
          }
          progress.count++;
          progress.countedHere++;
          startingAfter = object.id;
          if (options.signal?.aborted) break;
        }
        for (const object of page.data) {
          const created = typeof object.created === 'number' ? new Date(object.created * 1000) : null;
          if (created && (!progress.oldest || created < progress.oldest)) progress.oldest = created;
        }
        report.counts[table] = progress.count;
        report.existing[table] = progress.existing;
        options.onProgress?.(progress);
        if (options.signal?.aborted) {
          report.interrupted = true;
          log.info({ run: run?.id, table, startingAfter, counts: report.counts }, 'backfill interrupted; run it again with the same options to carry on');
          return report;
        }
      }
      report.counts[table] = progress.count;
      options.onTable?.(progress);
      const next = tables[tables.indexOf(table) + 1];
      if (run && next) await advanceBackfillRun(sql, run.id, next, null, report.counts[next] ?? 0);
    }
    if (run) await finishBackfillRun(sql, run.id);
    log.info({ run: run?.id, counts: report.counts, dryRun: Boolean(dryRun) }, 'backfill done');
    return report;
  } catch (err) {
    if (run) await failBackfillRun(sql, run.id, (err as Error).message).catch(() => {});
    throw err;
  }
}

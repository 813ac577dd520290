// Gap reconciliation: lists Stripe's Events API from a little before where the last run stopped and
// stores every event no webhook delivered, as an import does (db/import.ts), marked recovered_at.
// Run by the reconcile-events schedule and npm run reconcile; it never folds anything itself.
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import type { NewEvent } from '../db/events.ts';
import { countStored, insertEvents, parseEventLine } from '../db/import.ts';
import { failReconcile, finishReconcile, readReconcileCursor, startReconcile } from '../db/stripe-api.ts';
import type { Logger } from '../log.ts';
import type { StripeApiObserver } from '../metrics.ts';
import type { StripeApi, StripeObject } from '../stripe-api/client.ts';
import type { Sweep } from './sweeps.ts';

/**
 * Each run lists again from this long before the cursor: Stripe's list may show an event a little
 * after its `created` second, and the inbox stores an event id once, so the overlap costs reads only.
 */
export const OVERLAP_S = 300;
/**
 * Events of the last minute are left to the next run: their webhook is normally on its way, and
 * an event stored here would be counted recovered when it was not missed.
 */
export const SETTLE_S = 60;

export type ReconcileScope = { scope: string; account: string | undefined };

export type ReconcileReport = {
  scope: string;
  since: Date;
  until: Date;
  /** Events Stripe listed in the window. */
  listed: number;
  /** Of those, not stored before: stored now (or, in a dry run, would be). */
  missing: number;
  newestEventAt: Date | null;
  /** The run stopped before the end of its window (interrupted, or failed: `error`). */
  complete: boolean;
  error?: string;
};

export type ReconcileOptions = {
  sql: postgres.Sql;
  api: StripeApi;
  log: Logger;
  /** RECONCILE_LOOKBACK: where a scope's first run starts, in seconds before now. */
  lookbackSeconds: number;
  /** The platform and these connected accounts (STRIPE_CONNECT_ACCOUNTS), each with its own cursor. */
  accounts: string[];
  /** false: these accounts only (npm run reconcile -- --account). */
  platform?: boolean;
  /** List from here instead of the cursor (npm run reconcile -- --since); the cursor moves only if the window reaches it. */
  since?: Date;
  /** Count what is missing; store nothing, move no cursor. */
  dryRun?: boolean;
  signal?: AbortSignal;
  /** After every page of a scope: events listed and missing so far. */
  onPage?: (scope: string, listed: number, missing: number, oldest: Date | null) => void;
  now?: () => Date;
};

export function reconcileScopes(accounts: string[], platform = true): ReconcileScope[] {
  return [...(platform ? [{ scope: 'platform', account: undefined }] : []), ...accounts.map((a) => ({ scope: a, account: a }))];
}

/** A listed event as the inbox stores it, as an NDJSON import would; undefined for something that is no event. */
function toNewEvent(object: StripeObject, account: string | undefined): NewEvent | undefined {
  // Listed with Stripe-Account, an event may lack `account`; a Connect delivery would carry it,
  // and the fold reads it to know whose objects these are.
  const event = account && typeof object.account !== 'string' ? { ...object, account } : object;
  const parsed = parseEventLine(JSON.stringify(event));
  return 'event' in parsed ? parsed.event : undefined;
}

async function reconcileScope(options: ReconcileOptions, scope: ReconcileScope): Promise<ReconcileReport> {
  const { sql, api, dryRun } = options;
  const log = options.log.child({ scope: scope.scope });
  const now = options.now?.() ?? new Date();
  const until = new Date(now.getTime() - SETTLE_S * 1000);
  let since: Date;
  let coversCursor = true;
  if (dryRun) {
    // The window a real run would list, moving nothing.
    const coveredUntil = await readReconcileCursor(sql, scope.scope);
    since = options.since ?? (coveredUntil ? new Date(coveredUntil.getTime() - OVERLAP_S * 1000) : new Date(now.getTime() - options.lookbackSeconds * 1000));
  } else {
    const cursor = await startReconcile(sql, scope.scope, options.lookbackSeconds);
    const fromCursor = new Date(cursor.covered_until.getTime() - OVERLAP_S * 1000);
    since = options.since ?? fromCursor;
    // A window of its own that leaves a hole before the cursor must not move it past the hole.
    coversCursor = since.getTime() <= cursor.covered_until.getTime();
  }
  const report: ReconcileReport = { scope: scope.scope, since, until, listed: 0, missing: 0, newestEventAt: null, complete: false };
  if (until <= since) {
    report.complete = true;
    return report;
  }
  let oldest: Date | null = null;
  try {
    for await (const page of api.listEvents({ since, until, account: scope.account })) {
      const events: NewEvent[] = [];
      for (const object of page.data) {
        const event = toNewEvent(object, scope.account);
        if (!event) {
          log.warn({ id: object.id }, 'reconcile: Stripe listed something that is not an event; skipped');
          continue;
        }
        events.push(event);
        if (event.created !== null) {
          const at = new Date(event.created * 1000);
          if (!report.newestEventAt || at > report.newestEventAt) report.newestEventAt = at;
          if (!oldest || at < oldest) oldest = at;
        }
      }
      report.listed += page.data.length;
      if (dryRun) {
        const ids = [...new Set(events.map((e) => e.eventId))];
        report.missing += ids.length - (await countStored(sql, 'stripe', ids));
      } else {
        report.missing += await insertEvents(sql, events, { recovered: true });
      }
      options.onPage?.(scope.scope, report.listed, report.missing, oldest);
      if (options.signal?.aborted) return report;
    }
    report.complete = true;
    if (!dryRun) {
      await finishReconcile(sql, scope.scope, {
        coveredUntil: coversCursor ? until : null,
        newestEventAt: report.newestEventAt,
        listed: report.listed,
        recovered: report.missing,
      });
    }
  } catch (err) {
    report.error = (err as Error).message;
    if (!dryRun) await failReconcile(sql, scope.scope, report.error, report.missing).catch(() => {});
    log.error({ err: report.error, listed: report.listed, recovered: report.missing }, 'reconcile failed; the next run lists the window again');
  }
  if (report.missing > 0 && !dryRun) {
    log.warn({ recovered: report.missing, listed: report.listed, since, until }, 'reconcile: stored events no webhook had delivered');
  } else {
    log.info({ listed: report.listed, missing: report.missing, since, until, dryRun: Boolean(dryRun) }, 'reconcile done');
  }
  return report;
}

/** One run over every scope, one after the other (they share the client's rate limit). */
export async function reconcileEvents(options: ReconcileOptions): Promise<ReconcileReport[]> {
  const reports: ReconcileReport[] = [];
  for (const scope of reconcileScopes(options.accounts, options.platform)) {
    if (options.signal?.aborted) break;
    reports.push(await reconcileScope(options, scope));
  }
  return reports;
}

export const RECONCILE_SWEEP = 'reconcile-events';

/** The reconcile-events schedule: one run over the platform and STRIPE_CONNECT_ACCOUNTS; throws when a scope failed, so pg-boss retries it. */
export function reconcileSweep(sql: postgres.Sql, api: StripeApi, config: Config, log: Logger, observe?: StripeApiObserver): Sweep {
  return {
    name: RECONCILE_SWEEP,
    cron: config.RECONCILE_EVERY!,
    run: async () => {
      const reports = await reconcileEvents({ sql, api, log, lookbackSeconds: config.RECONCILE_LOOKBACK, accounts: config.STRIPE_CONNECT_ACCOUNTS });
      const recovered = reports.reduce((n, r) => n + r.missing, 0);
      if (recovered > 0) observe?.recovered(recovered);
      const failed = reports.filter((r) => r.error !== undefined);
      if (failed.length > 0) throw new Error(`reconcile failed for ${failed.map((r) => `${r.scope}: ${r.error}`).join('; ')}`);
      return recovered;
    },
  };
}

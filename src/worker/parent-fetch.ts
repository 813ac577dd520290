// Parents that never arrive: a link parked longer than PARENT_FETCH_AFTER_S has its parent read once
// from Stripe's API and folded like an event's snapshot. A loop of its own beside the claim loops,
// never in their way; a rate limit or an outage only pushes the links' next_fetch_at out.
import type postgres from 'postgres';
import { accountOfRow, claimDueParents, deferParentFetch, markUnresolvable, rowExists, type DueParent } from '../db/stripe-api.ts';
import type { Logger } from '../log.ts';
import { BY_TABLE } from '../stripe/catalog.ts';
import { StripeApiError, type StripeApi } from '../stripe-api/client.ts';
import { foldApiSnapshot } from './api-snapshot.ts';

/** What a read of one parent came to: the label of webhook_inbox_parent_fetches_total. */
export type ParentFetchOutcome = 'fetched' | 'deleted' | 'not_found' | 'unfetchable' | 'retry' | 'refused' | 'error';

export type ParentFetchDeps = {
  sql: postgres.Sql;
  api: StripeApi;
  log: Logger;
  /** PARENT_FETCH_AFTER_S: how long a link waits for its parent's own event first. */
  afterSeconds: number;
  onOutcome?: (outcome: ParentFetchOutcome) => void;
};

// A claimed parent is not claimed again for this long (a worker that dies holding it).
const LEASE_S = 120;
// After a failure that may pass, wait 5 s doubling per attempt, at most 10 minutes; a 429's
// Retry-After when longer. A key Stripe refuses, or a request it calls invalid, waits longer:
// a person has to act first.
const RETRY_BASE_S = 5;
const RETRY_MAX_S = 600;
const REFUSED_RETRY_S = 3600;
const STOP_WAIT_MS = 5000;

export function retryInSeconds(attempts: number, retryAfterSeconds?: number): number {
  const ceiling = Math.min(RETRY_MAX_S, RETRY_BASE_S * 2 ** Math.max(0, attempts - 1));
  const jittered = ceiling / 2 + (Math.random() * ceiling) / 2;
  return Math.ceil(Math.max(jittered, retryAfterSeconds ?? 0));
}

/** Reads one claimed parent and folds it, or records why not. Never throws for Stripe's answers. */
export async function fetchParent(deps: ParentFetchDeps, due: DueParent): Promise<ParentFetchOutcome> {
  const { sql, api } = deps;
  const { parent_table: table, parent_id: id } = due;
  const log = deps.log.child({ parentTable: table, parentId: id, links: due.links, attempt: due.attempts });
  const spec = BY_TABLE.get(table);
  if (!spec?.apiPath) {
    const reason = `Stripe's API has no endpoint that retrieves ${spec ? `a ${spec.object}` : `rows of ${table}`} by id`;
    await markUnresolvable(sql, table, id, reason);
    log.warn({ reason }, 'parent cannot be fetched; links marked unresolvable');
    return 'unfetchable';
  }
  let account: string | null = null;
  try {
    account = await accountOfRow(sql, due.child_table, due.child_id);
    const read = await api.retrieve(spec.apiPath, id, account ? { account } : {});
    if (!read.found) {
      const reason = `Stripe's API: ${read.reason}${account ? ` in account ${account}` : ''} (deleted, or never in this account)`;
      await markUnresolvable(sql, table, id, reason);
      log.warn({ account, reason }, 'parent not found in Stripe; links marked unresolvable');
      return 'not_found';
    }
    const folded = await foldApiSnapshot(sql, read.object, {
      fetchedAt: read.fetchedAt,
      account,
      apiVersion: api.apiVersion,
      reason: `parent of ${due.child_table}/${due.child_id}`,
    });
    if (!('result' in folded)) {
      const reason = 'ignored' in folded ? `Stripe's API answered an object webhook-inbox does not fold: ${folded.ignored}` : 'the fold skipped it';
      await markUnresolvable(sql, table, id, reason);
      log.warn({ account, reason }, 'fetched parent not folded; links marked unresolvable');
      return 'unfetchable';
    }
    // An id Stripe answers with another kind of object (a plan where a price was expected) lands
    // in another table: the links here can never be set.
    if (!(await rowExists(sql, table, id))) {
      const reason = `Stripe's API answered a ${String(read.object.object)} for ${id}, not a ${spec.object}`;
      await markUnresolvable(sql, table, id, reason);
      log.warn({ account, reason }, 'fetched parent is of another kind; links marked unresolvable');
      return 'unfetchable';
    }
    const resolved = folded.result.resolved.length;
    log.info({ account, snapshot: folded.eventId, resolved, objects: folded.result.objects.map((o) => `${o.table}/${o.id}:${o.action}`) }, 'parent fetched from the Stripe API and folded');
    return read.deleted ? 'deleted' : 'fetched';
  } catch (err) {
    if (err instanceof StripeApiError) {
      const refused = !err.retryable;
      const wait = refused ? REFUSED_RETRY_S : retryInSeconds(due.attempts, err.retryAfterSeconds);
      await deferParentFetch(sql, table, id, err.message, wait).catch((e) => log.error({ err: e }, 'could not record the failed read; the lease will expire'));
      log.warn({ account, kind: err.kind, status: err.status, requestId: err.requestId, retryInSeconds: wait }, 'parent fetch failed; will retry');
      return refused ? 'refused' : 'retry';
    }
    // The database, or a bug: the links stay parked and are tried again after a minute.
    await deferParentFetch(sql, table, id, `internal error: ${(err as Error).message}`, 60).catch(() => {});
    log.error({ err, account }, 'parent fetch crashed; will retry');
    return 'error';
  }
}

/** One round: claims up to `limit` due parents and reads them side by side (the client's limiter paces them). */
export async function fetchDueParents(deps: ParentFetchDeps, limit: number): Promise<ParentFetchOutcome[]> {
  const due = await claimDueParents(deps.sql, { afterSeconds: deps.afterSeconds, limit, leaseSeconds: LEASE_S });
  return Promise.all(
    due.map(async (p) => {
      const outcome = await fetchParent(deps, p);
      deps.onOutcome?.(outcome);
      return outcome;
    }),
  );
}

export type ParentFetcher = { stop(): Promise<void> };

/**
 * Claims due parents every `pollMs`, or at once while there are more than a round takes. A round
 * is one second's worth of reads at the client's rate.
 */
export function startParentFetcher(deps: ParentFetchDeps & { pollMs: number }): ParentFetcher {
  const limit = Math.max(1, Math.ceil(deps.api.limiter.rps));
  let stopping = false;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => (wake = undefined, resolve()), ms);
      wake = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
    });

  const loop = (async () => {
    while (!stopping) {
      let outcomes: ParentFetchOutcome[] = [];
      try {
        outcomes = await fetchDueParents(deps, limit);
      } catch (err) {
        deps.log.error({ err }, 'claiming parents to fetch failed; retrying after the poll interval');
      }
      if (outcomes.length < limit && !stopping) await sleep(deps.pollMs);
    }
  })();
  deps.log.info({ afterSeconds: deps.afterSeconds, perRound: limit }, 'parent fetcher started');

  return {
    async stop() {
      stopping = true;
      wake?.();
      // A round waiting out a long Retry-After is not worth holding the shutdown for: its parents
      // stay leased and are read again when the lease ends.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([loop, new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
      clearTimeout(timer);
    },
  };
}

// Folds claimed events into the object graph. The fold's transaction opens here, in
// foldTransaction: the plans (pure, stripe/graph.ts) are applied in it (db/fold.ts: one statement
// for a batch), and whatever must commit with the fold is written in it too, by the caller's
// `inTransaction` hook, before the commit. foldBatch does a few events per transaction, each in its
// own subtransaction; an event that fails there is folded again alone by foldEvent, whose failure
// is recorded as a retry with backoff, or as FAILED. foldSnapshot folds an object read from
// Stripe's API through the same transaction. Events that need the API before they can fold (thin
// events) are handed off, never folded by the claim loops themselves.
import type postgres from 'postgres';
import { failAttempt, type ClaimedEvent } from '../db/events.ts';
import { API_SOURCE } from '../db/stripe-api.ts';
import { applyFoldItem, applyFoldItems, type FoldItem, type FoldResult, type ItemOutcome } from '../db/fold.ts';
import type { Logger } from '../log.ts';
import type { FoldOutcome } from '../metrics.ts';
import type { StripeObject } from '../stripe/catalog.ts';
import { MalformedEventError, planEvent, planSnapshot, type FoldPlan, type Origin } from '../stripe/graph.ts';

export type FoldOptions = {
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /**
   * Runs in the fold's transaction after the rows are written, with each item's outcome (in the
   * order of the items): whatever must commit together with the fold, or not at all.
   */
  inTransaction?: (tx: postgres.TransactionSql, outcomes: ItemOutcome[]) => Promise<void>;
  /**
   * Takes the claimed events that must read Stripe's API before they fold (thin events carry no
   * snapshot): `wants` picks them, `take` must return at once (the claim loop moves on) and settle
   * each event itself. Without it, such events are IGNORED like any event of an unknown source.
   */
  handOff?: { wants: (event: ClaimedEvent) => boolean; take: (event: ClaimedEvent) => void };
};

// Deadlocks and serialization failures are the database asking us to try again now.
const TRANSIENT = new Set(['40P01', '40001']);
const IMMEDIATE_TRIES = 5;

/** Exponential backoff with full jitter: base * 2^(attempt-1), capped, times a random factor. */
export function retryDelayMs(attempt: number, options: Pick<FoldOptions, 'retryBaseMs' | 'retryMaxMs'>): number {
  const ceiling = Math.min(options.retryMaxMs, options.retryBaseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** The most events folded in one transaction: each is a subtransaction, and Postgres caches 64. */
export const MAX_FOLD_BATCH = 32;

/**
 * The fold's transaction: applies the items (as one batch that never waits for a lock, or one item
 * that waits for its locks), then the caller's inTransaction hook, then commits. With no hook the
 * one statement is its own transaction: BEGIN and COMMIT around it were two more round trips per
 * batch and per event folded alone, a third of the drain's client CPU (socket writes, measured
 * with --cpu-prof). fold_items() and fold_item() relax their own commit (synchronous_commit off).
 */
async function foldTransaction(
  sql: postgres.Sql,
  items: FoldItem[],
  mode: 'batch' | 'wait',
  options: Pick<FoldOptions, 'inTransaction'>,
): Promise<ItemOutcome[]> {
  const apply = (tx: postgres.Sql | postgres.TransactionSql) =>
    mode === 'batch' ? applyFoldItems(tx, items) : applyFoldItem(tx, items[0]!).then((o) => [o]);
  const hook = options.inTransaction;
  if (!hook) return apply(sql);
  return sql.begin(async (tx) => {
    const outcomes = await apply(tx);
    await hook(tx, outcomes);
    return outcomes;
  });
}

const eventLog = (log: Logger, event: ClaimedEvent) =>
  log.child({ id: event.id, eventId: event.event_id, source: event.source, type: event.type });

/** The plan for one event, or null when it is malformed: then it is FAILED, never retried. */
async function planOrFail(sql: postgres.Sql, event: ClaimedEvent, elog: Logger): Promise<FoldPlan | null> {
  // stripe-api rows are snapshots read from Stripe's API, stored as events: a replay folds them again.
  if (event.source !== 'stripe' && event.source !== API_SOURCE) return { kind: 'ignore', reason: `events from ${event.source} are stored, not folded` };
  try {
    return planEvent(event.payload);
  } catch (err) {
    if (!(err instanceof MalformedEventError)) throw err;
    // It will never fold: no point retrying.
    await failAttempt(sql, event.id, `malformed: ${err.message}`, null);
    elog.error({ err: err.message }, 'event malformed; FAILED without retries');
    return null;
  }
}

const itemOf = (event: ClaimedEvent, plan: FoldPlan): FoldItem =>
  plan.kind === 'ignore' ? { event: event.id, ignore: plan.reason } : { event: event.id, plan };

function logFolded(elog: Logger, result: FoldResult): void {
  // One line per event, so "what happened to event X?" is one grep away.
  elog.info(
    {
      objects: result.objects.map((o) => `${o.table}/${o.id}:${o.action}`),
      parked: result.parked.length,
      resolved: result.resolved.length,
    },
    'event folded',
  );
}

/** Logs what the fold did with one event and names its outcome; undefined when it must be folded alone. */
function settle(elog: Logger, o: ItemOutcome | undefined): FoldOutcome | undefined {
  if (o === undefined || 'busy' in o) return undefined;
  if ('error' in o) {
    elog.debug({ err: o.error, code: o.code }, 'fold failed in a batch; folding it alone');
    return undefined;
  }
  if ('result' in o) {
    logFolded(elog, o.result);
    return 'processed';
  }
  if ('ignored' in o) {
    elog.debug({ reason: o.ignored }, 'event ignored');
    return 'ignored';
  }
  elog.debug('already finished by another worker');
  return 'skipped';
}

/**
 * Folds up to MAX_FOLD_BATCH claimed events in one transaction, and returns each one's outcome and
 * its share of the time. Events that fail in the batch, whose rows another fold holds, or all of
 * them when the batch's transaction fails, are then folded one by one by foldEvent: it waits for
 * the locks, and records retries.
 */
export async function foldBatch(
  sql: postgres.Sql,
  events: ClaimedEvent[],
  options: FoldOptions,
  log: Logger,
): Promise<{ outcome: FoldOutcome; ms: number }[]> {
  if (events.length > MAX_FOLD_BATCH) throw new Error(`foldBatch: at most ${MAX_FOLD_BATCH} events, got ${events.length}`);
  if (events.length === 1) {
    const started = performance.now();
    const outcome = await foldEvent(sql, events[0]!, options, log);
    return [{ outcome, ms: performance.now() - started }];
  }
  const started = performance.now();
  const done: ({ outcome: FoldOutcome; ms: number } | undefined)[] = new Array(events.length);
  const items: FoldItem[] = [];
  const at: number[] = [];
  for (const [i, event] of events.entries()) {
    if (options.handOff?.wants(event)) {
      options.handOff.take(event);
      done[i] = { outcome: 'deferred', ms: 0 };
      continue;
    }
    const plan = await planOrFail(sql, event, eventLog(log, event));
    if (plan === null) done[i] = { outcome: 'failed', ms: 0 };
    else {
      items.push(itemOf(event, plan));
      at.push(i);
    }
  }

  let outcomes: ItemOutcome[] = [];
  try {
    if (items.length > 0) outcomes = await foldTransaction(sql, items, 'batch', options);
  } catch (err) {
    // A deadlock, a timeout, the database gone, the hook failing: nothing of the batch committed.
    log.warn({ err, events: items.length }, 'fold batch failed; folding its events one by one');
    outcomes = [];
  }
  const share = (performance.now() - started) / events.length;
  const alone: number[] = [];
  for (const [k, i] of at.entries()) {
    const outcome = settle(eventLog(log, events[i]!), outcomes[k]);
    if (outcome === undefined) alone.push(i);
    else done[i] = { outcome, ms: share };
  }
  for (const i of alone) {
    const t = performance.now();
    const outcome = await foldEvent(sql, events[i]!, options, log);
    done[i] = { outcome, ms: share + performance.now() - t };
  }
  return done.map((d) => d!);
}

/** Folds one claimed event in a transaction of its own, waiting for its locks; records a failure as a retry or FAILED. */
export async function foldEvent(sql: postgres.Sql, event: ClaimedEvent, options: FoldOptions, log: Logger): Promise<FoldOutcome> {
  if (options.handOff?.wants(event)) {
    options.handOff.take(event);
    return 'deferred';
  }
  const elog = eventLog(log, event);
  const plan = await planOrFail(sql, event, elog);
  if (plan === null) return 'failed';

  for (let tryNo = 1; ; tryNo++) {
    try {
      const [o] = await foldTransaction(sql, [itemOf(event, plan)], 'wait', options);
      const outcome = settle(elog, o);
      if (outcome === undefined) throw new Error(`fold_item answered ${JSON.stringify(o)}`);
      return outcome;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code && TRANSIENT.has(code) && tryNo < IMMEDIATE_TRIES) continue;
      const message = err instanceof Error ? err.message : String(err);
      const giveUp = event.attempts >= options.maxAttempts;
      const delay = giveUp ? null : retryDelayMs(event.attempts, options);
      try {
        await failAttempt(sql, event.id, message, delay);
      } catch (recordErr) {
        // The database is gone too: the lease runs out and the event is claimed again later.
        elog.error({ err: recordErr }, 'could not record a failed attempt; the lease will expire');
      }
      if (giveUp) {
        elog.error({ err: message, attempts: event.attempts }, 'fold failed for the last time; event FAILED');
        return 'failed';
      }
      elog.warn({ err: message, attempts: event.attempts, retryInMs: delay }, 'fold failed; will retry');
      return 'retry';
    }
  }
}

/**
 * Folds an object read from Stripe's API (not an event) through the same transaction, waiting for
 * its locks: its order key is `origin` (when it was read), so a later event still wins and an
 * earlier one loses. Returns what it did, or the reason it was not folded.
 */
export async function foldSnapshot(
  sql: postgres.Sql,
  object: StripeObject,
  origin: Origin,
  options: Pick<FoldOptions, 'inTransaction'> = {},
): Promise<{ result: FoldResult } | { ignored: string }> {
  const plan = planSnapshot(object, origin);
  if (plan.kind === 'ignore') return { ignored: plan.reason };
  for (let tryNo = 1; ; tryNo++) {
    try {
      const [o] = await foldTransaction(sql, [{ snapshot: object, plan }], 'wait', options);
      if (o && 'result' in o) return { result: o.result };
      throw new Error(`folding ${String(object.id)} gave ${JSON.stringify(o)}`);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code && TRANSIENT.has(code) && tryNo < IMMEDIATE_TRIES) continue;
      throw err;
    }
  }
}

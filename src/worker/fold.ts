// Folds claimed events into the object graph: plan each (pure, stripe/graph.ts), then apply the
// plans in one transaction that takes the advisory locks of every row they touch (exclusive for
// rows written, shared for parents linked to; sql/006_shared_parent_locks.sql), locks
// each event row, writes parents before children, and marks the events PROCESSED. foldBatch does a
// few events at a time, each in its own subtransaction; an event that fails there is folded again
// alone by foldEvent, whose failure is recorded as a retry with backoff, or as FAILED.
import type postgres from 'postgres';
import { failAttempt, ignoreEvent, type ClaimedEvent } from '../db/events.ts';
import { applyFoldBatch, applyFoldPlan, type BatchItem, type FoldResult } from '../db/graph.ts';
import type { Logger } from '../log.ts';
import { MalformedEventError, planEvent, type FoldPlan } from '../stripe/graph.ts';

export type FoldOutcome = 'processed' | 'ignored' | 'retry' | 'failed' | 'skipped';

export type FoldOptions = {
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
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

const eventLog = (log: Logger, event: ClaimedEvent) =>
  log.child({ id: event.id, eventId: event.event_id, source: event.source, type: event.type });

/** The plan for one event, or null when it is malformed: then it is FAILED, never retried. */
async function planOrFail(sql: postgres.Sql, event: ClaimedEvent, elog: Logger): Promise<FoldPlan | null> {
  if (event.source !== 'stripe') return { kind: 'ignore', reason: `events from ${event.source} are stored, not folded` };
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

/**
 * Folds up to MAX_FOLD_BATCH claimed events in one transaction (fold_events()), and returns each
 * one's outcome and its share of the time. Events that fail in the batch, whose rows another fold
 * holds, or all of them when the batch statement itself fails, are then folded one by one by
 * foldEvent: it waits for the locks, and records retries.
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
  const items: BatchItem[] = [];
  const at: number[] = [];
  for (const [i, event] of events.entries()) {
    const plan = await planOrFail(sql, event, eventLog(log, event));
    if (plan === null) done[i] = { outcome: 'failed', ms: 0 };
    else {
      items.push(plan.kind === 'ignore' ? { id: event.id, ignore: plan.reason } : { id: event.id, plan });
      at.push(i);
    }
  }

  let outcomes: Awaited<ReturnType<typeof applyFoldBatch>> = [];
  try {
    if (items.length > 0) outcomes = await applyFoldBatch(sql, items);
  } catch (err) {
    // A deadlock, a timeout, the database gone: nothing of the batch committed.
    log.warn({ err, events: items.length }, 'fold batch failed; folding its events one by one');
  }
  const share = (performance.now() - started) / events.length;
  const alone: number[] = [];
  for (const [k, i] of at.entries()) {
    const o = outcomes[k];
    const elog = eventLog(log, events[i]!);
    if (o === undefined || 'error' in o || 'busy' in o) {
      if (o && 'error' in o) elog.debug({ err: o.error, code: o.code }, 'fold failed in a batch; folding it alone');
      alone.push(i);
    } else if ('result' in o) {
      logFolded(elog, o.result);
      done[i] = { outcome: 'processed', ms: share };
    } else if ('ignored' in o) {
      elog.debug({ reason: o.ignored }, 'event ignored');
      done[i] = { outcome: 'ignored', ms: share };
    } else {
      elog.debug('already finished by another worker');
      done[i] = { outcome: 'skipped', ms: share };
    }
  }
  for (const i of alone) {
    const t = performance.now();
    const outcome = await foldEvent(sql, events[i]!, options, log);
    done[i] = { outcome, ms: share + performance.now() - t };
  }
  return done.map((d) => d!);
}

export async function foldEvent(
  sql: postgres.Sql,
  event: ClaimedEvent,
  options: FoldOptions,
  log: Logger,
): Promise<FoldOutcome> {
  const elog = eventLog(log, event);
  const plan = await planOrFail(sql, event, elog);
  if (plan === null) return 'failed';

  for (let tryNo = 1; ; tryNo++) {
    try {
      if (plan.kind === 'ignore') {
        if (!(await ignoreEvent(sql, event.id, plan.reason))) return 'skipped';
        elog.debug({ reason: plan.reason }, 'event ignored');
        return 'ignored';
      }
      const result = await applyFoldPlan(sql, event.id, plan);
      if (!result) {
        elog.debug('already folded by another worker');
        return 'skipped';
      }
      logFolded(elog, result);
      return 'processed';
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

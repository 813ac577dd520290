// Folds one claimed event into the object graph: plan it (pure, stripe/graph.ts), then apply the
// plan in one transaction that locks the event row, takes the advisory locks of every row it
// touches (sorted), writes parents before children, and marks the event PROCESSED. A failure rolls
// all of it back and is recorded as a retry with backoff, or as FAILED.
import type postgres from 'postgres';
import { failAttempt, ignoreEvent, type ClaimedEvent } from '../db/events.ts';
import { applyFoldPlan } from '../db/graph.ts';
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

export async function foldEvent(
  sql: postgres.Sql,
  event: ClaimedEvent,
  options: FoldOptions,
  log: Logger,
): Promise<FoldOutcome> {
  const elog = log.child({ id: event.id, eventId: event.event_id, source: event.source, type: event.type });

  let plan: FoldPlan;
  if (event.source !== 'stripe') {
    plan = { kind: 'ignore', reason: `events from ${event.source} are stored, not folded` };
  } else {
    try {
      plan = planEvent(event.payload);
    } catch (err) {
      if (!(err instanceof MalformedEventError)) throw err;
      // It will never fold: no point retrying.
      await failAttempt(sql, event.id, `malformed: ${err.message}`, null);
      elog.error({ err: err.message }, 'event malformed; FAILED without retries');
      return 'failed';
    }
  }

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
      // One line per event, so "what happened to event X?" is one grep away.
      elog.info(
        {
          objects: result.objects.map((o) => `${o.table}/${o.id}:${o.action}`),
          parked: result.parked.length,
          resolved: result.resolved.length,
        },
        'event folded',
      );
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

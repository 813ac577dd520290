// Thin events carry no snapshot: their related object is read from Stripe's API with the event's
// context and folded, the event settled in that fold's transaction. Handed over by the claim loops
// (FoldOptions.handOff) so a slow API never holds up folding; without a key they wait, never FAILED.
import type postgres from 'postgres';
import { failAttempt, type ClaimedEvent } from '../db/events.ts';
import { applyFoldItem } from '../db/fold.ts';
import { THIN_SOURCE, deferThinEvent, settleThinEvent, wakeWaitingThinEvents } from '../db/stripe-api.ts';
import type { Logger } from '../log.ts';
import { accountOfContext } from '../sources/stripe-thin.ts';
import { SPECS } from '../stripe/catalog.ts';
import { StripeApiError, type StripeApi } from '../stripe-api/client.ts';
import { foldApiSnapshot } from './api-snapshot.ts';
import type { FoldOptions } from './fold.ts';
import { retryInSeconds } from './parent-fetch.ts';

/** How a thin event waiting for a key starts its last_error; a worker started with a key looks for it. */
export const WAITING_FOR_KEY = 'waiting for STRIPE_API_KEY';
/** A thin event waiting for a (working) key is looked at again this often. */
export const KEY_WAIT_S = 600;
// Waiting here for a fetch slot: at most what the rate limit reads in half a lease, so a queued
// event is read before its lease runs out and another worker claims it again.
const QUEUE_FULL_WAIT_S = 5;
const STOP_WAIT_MS = 5000;

/** What became of one thin event: the label of webhook_inbox_thin_events_total. */
export type ThinOutcome = 'processed' | 'ignored' | 'not_found' | 'waiting_for_key' | 'retry' | 'failed' | 'skipped';

export type ThinEventsDeps = {
  sql: postgres.Sql;
  /** Undefined without STRIPE_API_KEY: thin events then wait for one. */
  api: StripeApi | undefined;
  log: Logger;
  leaseSeconds: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  onOutcome?: (outcome: ThinOutcome) => void;
};

export type ThinEvents = {
  handOff: NonNullable<FoldOptions['handOff']>;
  /** With a key: makes the thin events that waited for one due now. */
  start(): Promise<void>;
  /** Hands back the events not started yet, and waits (briefly) for the reads in flight. */
  stop(): Promise<void>;
};

export function isThinEvent(event: Pick<ClaimedEvent, 'source' | 'payload'>): boolean {
  return event.source === THIN_SOURCE || (event.payload as { object?: unknown } | null)?.object === 'v2.core.event';
}

type Notification = { id?: string; context?: string | null; related_object?: { id?: unknown; type?: unknown } | null };

export function createThinEvents(deps: ThinEventsDeps): ThinEvents {
  const { sql, api, log } = deps;
  const concurrency = api ? Math.max(1, Math.min(8, Math.ceil(api.limiter.rps))) : 0;
  const capacity = api ? Math.max(concurrency, Math.floor((api.limiter.rps * deps.leaseSeconds) / 2)) : 0;
  const queue: ClaimedEvent[] = [];
  const held = new Set<string>();
  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  let warnedNoKey = false;

  const report = (outcome: ThinOutcome) => deps.onOutcome?.(outcome);
  const elog = (event: ClaimedEvent) => log.child({ id: event.id, eventId: event.event_id, source: event.source, type: event.type });

  const ignore = async (event: ClaimedEvent, reason: string, outcome: ThinOutcome = 'ignored') => {
    const o = await sql.begin((tx) => applyFoldItem(tx, { event: event.id, ignore: reason }));
    elog(event).info({ reason }, 'thin event ignored');
    report('skipped' in o ? 'skipped' : outcome);
  };

  const readAndFold = async (event: ClaimedEvent) => {
    const l = elog(event);
    const note = event.payload as Notification;
    const related = note.related_object;
    if (!related || typeof related.id !== 'string' || typeof related.type !== 'string') {
      return ignore(event, 'this thin event names no related_object: there is nothing to read and fold');
    }
    const spec = SPECS.get(related.type);
    if (!spec) return ignore(event, `webhook-inbox does not fold ${related.type} objects`);
    if (!spec.apiPath) return ignore(event, `Stripe's API has no endpoint that retrieves a ${related.type} by id`);
    const context = typeof note.context === 'string' && note.context !== '' ? note.context : undefined;
    try {
      const read = await api!.retrieve(spec.apiPath, related.id, context ? { context } : {});
      if (!read.found) {
        return ignore(event, `Stripe's API has no ${related.type} ${related.id}: ${read.reason} (deleted, or not in this account)`, 'not_found');
      }
      let settled = false;
      const folded = await foldApiSnapshot(sql, read.object, {
        fetchedAt: read.fetchedAt,
        account: accountOfContext(context),
        apiVersion: api!.apiVersion,
        reason: `thin event ${event.event_id}`,
        // The event is settled with the fold it asked for, or not at all.
        inTransaction: async (tx, done) => {
          if (done) settled = await settleThinEvent(tx, event.id, done.result, done.eventId);
        },
      });
      if ('ignored' in folded) return ignore(event, folded.ignored);
      if (!settled) return report('skipped');
      l.info({ snapshot: folded.eventId, objects: folded.result.objects.map((o) => `${o.table}/${o.id}:${o.action}`), parked: folded.result.parked.length }, 'thin event folded');
      report('processed');
    } catch (err) {
      if (err instanceof StripeApiError && err.kind === 'auth') {
        await deferThinEvent(sql, event.id, `${WAITING_FOR_KEY} that Stripe accepts: ${err.message}`, KEY_WAIT_S, true);
        l.error({ status: err.status }, 'Stripe refused the API key; the thin event waits');
        return report('waiting_for_key');
      }
      if (err instanceof StripeApiError && err.retryable) {
        // Stripe unreachable or rate limited: waits as long as it takes, never FAILED for it.
        const wait = retryInSeconds(event.attempts, err.retryAfterSeconds);
        await deferThinEvent(sql, event.id, err.message, wait, false);
        l.warn({ kind: err.kind, status: err.status, retryInSeconds: wait }, 'reading the related object failed; will retry');
        return report('retry');
      }
      // A request Stripe calls invalid, the database, a bug: retried with backoff like any fold,
      // then FAILED, visible and replayable.
      const message = err instanceof Error ? err.message : String(err);
      const giveUp = event.attempts >= deps.maxAttempts || (err instanceof StripeApiError && !err.retryable);
      const delay = giveUp ? null : Math.min(deps.retryMaxMs, deps.retryBaseMs * 2 ** Math.max(0, event.attempts - 1));
      await failAttempt(sql, event.id, message, delay);
      l.error({ err: message, attempts: event.attempts }, giveUp ? 'thin event FAILED' : 'thin event failed; will retry');
      report(giveUp ? 'failed' : 'retry');
    }
  };

  const pump = () => {
    while (!stopping && inFlight.size < concurrency && queue.length > 0) {
      const event = queue.shift()!;
      const run = readAndFold(event)
        .catch((err) => elog(event).error({ err }, 'thin event crashed; its lease will expire and it is claimed again'))
        .finally(() => {
          held.delete(event.id);
          inFlight.delete(run);
          pump();
        });
      inFlight.add(run);
    }
  };

  const defer = (event: ClaimedEvent, message: string, seconds: number, outcome: ThinOutcome) => {
    deferThinEvent(sql, event.id, message, seconds, true)
      .then(() => report(outcome))
      .catch((err) => elog(event).warn({ err }, 'could not defer the thin event; its lease will expire'));
  };

  return {
    handOff: {
      wants: isThinEvent,
      take(event) {
        if (!api) {
          if (!warnedNoKey) {
            warnedNoKey = true;
            log.warn('thin events arrive but STRIPE_API_KEY is not set: they are stored and wait (RECEIVED), looked at every 10 minutes, until a key is set');
          }
          defer(
            event,
            `${WAITING_FOR_KEY}: a thin event carries no snapshot; set STRIPE_API_KEY (read access) and restart, and it is folded`,
            KEY_WAIT_S,
            'waiting_for_key',
          );
          return;
        }
        if (held.has(event.id)) return;
        if (stopping || queue.length >= capacity) {
          defer(event, 'waiting for a turn: the Stripe API reads of this worker are all busy', QUEUE_FULL_WAIT_S, 'retry');
          return;
        }
        held.add(event.id);
        queue.push(event);
        pump();
      },
    },
    async start() {
      if (!api) return;
      const woken = await wakeWaitingThinEvents(sql, WAITING_FOR_KEY);
      if (woken > 0) log.info({ events: woken }, 'thin events that waited for STRIPE_API_KEY are due now');
    },
    async stop() {
      stopping = true;
      const unstarted = queue.splice(0);
      for (const event of unstarted) held.delete(event.id);
      await Promise.all(unstarted.map((e) => deferThinEvent(sql, e.id, null, 0, true).catch(() => {})));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(inFlight), new Promise((r) => (timer = setTimeout(r, STOP_WAIT_MS)))]);
      clearTimeout(timer);
    },
  };
}

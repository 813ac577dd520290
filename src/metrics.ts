// Prometheus metrics (prom-client), one registry per process. Counters and histograms are fed by
// the ingest route (observeDelivery), the fold workers (observeFold) and the outbox relay
// (`outbox`); the database-wide gauges (events by status, oldest unprocessed, pending links, the
// outbox's backlog and circuits) are read from Postgres at scrape time.
import client from 'prom-client';
import type postgres from 'postgres';
import type { Logger } from './log.ts';

/**
 * 'skipped': the claimed event was already finished by another worker (a lease ran out).
 * 'deferred': handed to the thin-event fetcher, which folds it once Stripe's API has answered.
 */
export type FoldOutcome = 'processed' | 'ignored' | 'retry' | 'failed' | 'skipped' | 'deferred';

/** What the Stripe API readers report (worker/parent-fetch.ts, thin-events.ts, reconcile.ts). */
export type StripeApiObserver = {
  parentFetch: (outcome: string) => void;
  thinEvent: (outcome: string) => void;
  recovered: (events: number) => void;
};

/** What the outbox relay reports (src/worker/relay.ts). */
export type OutboxMetrics = {
  /** One delivery attempt: how it went (success, http, timeout, network, ssrf), the delivery's new status, its duration. */
  observeAttempt: (outcome: string, status: string, seconds: number) => void;
  /** A delivery answered 2xx: seconds from the change's commit to the answer. */
  observeLatency: (seconds: number) => void;
  /** A circuit breaker changed state. */
  observeTransition: (from: string, to: string, reason: string) => void;
};

export type Metrics = {
  registry: client.Registry;
  /** One answered delivery: which source, what happened (stored, duplicate, SignatureError, ...). */
  observeDelivery: (source: string, outcome: string, seconds: number) => void;
  /** One fold attempt and how long it took; the workers' `onFold`. */
  observeFold: (outcome: FoldOutcome, ms: number) => void;
  /** A fold loop paused this long so ingest could keep the CPU; the workers' `onPause`. */
  observePause: (seconds: number) => void;
  /** Fed by the workers that read Stripe's API. */
  stripeApi: StripeApiObserver;
  outbox: OutboxMetrics;
  /** Reads the database gauges, then renders everything in the Prometheus text format. */
  render: () => Promise<string>;
};

const STATUSES = ['RECEIVED', 'PROCESSED', 'FAILED', 'IGNORED'];

export function createMetrics(deps: {
  sql: postgres.Sql;
  log: Logger;
  sources: string[];
  /** How often PROCESSED and IGNORED are recounted (they are most of the table). */
  fullCountEveryMs?: number;
}): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: 'webhook_inbox_' });
  const known = new Set(deps.sources);

  const deliveries = new client.Counter({
    name: 'webhook_inbox_deliveries_total',
    help: 'Webhook deliveries answered, by source and outcome (stored, duplicate, or the error name).',
    labelNames: ['source', 'outcome'],
    registers: [registry],
  });
  const ack = new client.Histogram({
    name: 'webhook_inbox_ack_seconds',
    help: 'Time from receiving a webhook delivery to answering it, by source and outcome.',
    labelNames: ['source', 'outcome'],
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers: [registry],
  });
  const folds = new client.Histogram({
    name: 'webhook_inbox_fold_seconds',
    help: 'Duration of one fold attempt, by outcome (processed, ignored, retry, failed, skipped); an event folded in a batch counts its share of the batch.',
    labelNames: ['outcome'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const retries = new client.Counter({
    name: 'webhook_inbox_fold_retries_total',
    help: 'Fold attempts that failed and were scheduled to run again with backoff.',
    registers: [registry],
  });
  const failures = new client.Counter({
    name: 'webhook_inbox_fold_failures_total',
    help: 'Events that became FAILED (attempts exhausted or malformed); replay them after a fix.',
    registers: [registry],
  });
  const paused = new client.Counter({
    name: 'webhook_inbox_fold_paused_seconds_total',
    help: 'Seconds fold loops spent paused so ingest in the same process (ROLE=all) kept the CPU, summed over loops. Rising with webhook_inbox_oldest_unprocessed_seconds: folding waits for a burst of deliveries to pass.',
    registers: [registry],
  });
  const byStatus = new client.Gauge({
    name: 'webhook_inbox_events',
    help: 'Events in the database by status (database-wide: every process reports the same value). RECEIVED and FAILED are exact; PROCESSED and IGNORED are recounted at most every 5 minutes.',
    labelNames: ['status'],
    registers: [registry],
  });
  const oldest = new client.Gauge({
    name: 'webhook_inbox_oldest_unprocessed_seconds',
    help: 'Age of the oldest RECEIVED event (0 when none): the backlog in time.',
    registers: [registry],
  });
  const pending = new client.Gauge({
    name: 'webhook_inbox_pending_links',
    help: 'Links parked because their parent object has not arrived yet.',
    registers: [registry],
  });
  const pendingOldest = new client.Gauge({
    name: 'webhook_inbox_oldest_pending_link_seconds',
    help: 'Age of the oldest parked link (0 when none).',
    registers: [registry],
  });
  const databaseUp = new client.Gauge({
    name: 'webhook_inbox_database_up',
    help: '1 when the last scrape could read the database gauges, 0 when it could not (the gauges keep their last values).',
    registers: [registry],
  });

  const parentFetches = new client.Counter({
    name: 'webhook_inbox_parent_fetches_total',
    help: 'Parents read from Stripe\'s API for links that waited longer than PARENT_FETCH_AFTER_S, by outcome: fetched, deleted (a tombstone), not_found and unfetchable (links marked unresolvable), retry (rate limited or Stripe failing: tried again later), refused (the key, or the request), error.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const thinEvents = new client.Counter({
    name: 'webhook_inbox_thin_events_total',
    help: 'Thin events whose related object was read from Stripe\'s API, by outcome: processed, ignored, not_found, waiting_for_key, retry, failed, skipped.',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const recovered = new client.Counter({
    name: 'webhook_inbox_reconcile_recovered_events_total',
    help: 'Events reconciliation found in Stripe\'s Events API that no webhook had delivered, stored as recovered (in this process).',
    registers: [registry],
  });
  const reconcileSuccess = new client.Gauge({
    name: 'webhook_inbox_reconcile_last_success_timestamp_seconds',
    help: 'When reconciliation last listed its whole window, per scope (platform or acct_...), in Unix seconds (database-wide).',
    labelNames: ['scope'],
    registers: [registry],
  });
  const reconcileLag = new client.Gauge({
    name: 'webhook_inbox_reconcile_lag_seconds',
    help: 'How far behind now reconciliation has listed Stripe\'s events, per scope: alert when it grows past a few runs.',
    labelNames: ['scope'],
    registers: [registry],
  });
  const unresolvable = new client.Gauge({
    name: 'webhook_inbox_unresolvable_links',
    help: 'Parked links whose parent Stripe\'s API says cannot be had (404, or no retrieve endpoint): see the orphans view.',
    registers: [registry],
  });
  const attempts = new client.Counter({
    name: 'webhook_inbox_outbox_attempts_total',
    help: 'Outbox delivery attempts by outcome (success, http, timeout, network, ssrf) and the status it left the delivery in (DELIVERED, FAILED, DEAD).',
    labelNames: ['outcome', 'status'],
    registers: [registry],
  });
  const attemptSeconds = new client.Histogram({
    name: 'webhook_inbox_outbox_attempt_seconds',
    help: 'Duration of one outbox delivery attempt (request to answer, or to the error), by outcome.',
    labelNames: ['outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const latency = new client.Histogram({
    name: 'webhook_inbox_outbox_latency_seconds',
    help: 'From the commit of a change to the 2xx of its delivery (the subscriber has it).',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 60, 600, 3600],
    registers: [registry],
  });
  const transitions = new client.Counter({
    name: 'webhook_inbox_outbox_circuit_transitions_total',
    help: 'Circuit breaker transitions of subscriptions, by from, to and reason.',
    labelNames: ['from', 'to', 'reason'],
    registers: [registry],
  });
  const outboxWaiting = new client.Gauge({
    name: 'webhook_inbox_outbox_deliveries',
    help: 'Outbox deliveries waiting (PENDING, FAILED) or dead (DEAD), by status (database-wide).',
    labelNames: ['status'],
    registers: [registry],
  });
  const outboxOldest = new client.Gauge({
    name: 'webhook_inbox_outbox_oldest_pending_seconds',
    help: 'Age of the oldest waiting delivery (since its change was committed; 0 when none).',
    registers: [registry],
  });
  const subscriptionPending = new client.Gauge({
    name: 'webhook_inbox_outbox_subscription_pending',
    help: 'Deliveries waiting per subscription (database-wide).',
    labelNames: ['subscription'],
    registers: [registry],
  });
  const subscriptionCircuit = new client.Gauge({
    name: 'webhook_inbox_outbox_subscription_circuit',
    help: '1 for the circuit state each subscription is in (closed, open, half_open, disabled).',
    labelNames: ['subscription', 'state'],
    registers: [registry],
  });

  let lastFullCount = 0;
  const boundDeliveries = new Map<string, { count: client.Counter.Internal; ack: client.Histogram.Internal<'source' | 'outcome'> }>();

  async function readOutbox(): Promise<void> {
    const subs = await deps.sql<{ id: string; circuit_state: string; pending: number; oldest: number | null }[]>`
      select s.id, s.circuit_state,
             (select count(*)::int from deliveries d where d.subscription_id = s.id and d.status in ('PENDING', 'FAILED')) as pending,
             (select extract(epoch from now() - min(d.created_at))::float8 from deliveries d
               where d.subscription_id = s.id and d.status in ('PENDING', 'FAILED')) as oldest
        from outbox_subscriptions s where s.deleted_at is null`;
    const [dead] = await deps.sql<{ n: number }[]>`select count(*)::int as n from deliveries where status = 'DEAD'`;
    const [byStatus] = await deps.sql<{ pending: number; failed: number }[]>`
      select count(*) filter (where status = 'PENDING')::int as pending, count(*) filter (where status = 'FAILED')::int as failed
        from deliveries where status in ('PENDING', 'FAILED')`;
    outboxWaiting.set({ status: 'PENDING' }, byStatus?.pending ?? 0);
    outboxWaiting.set({ status: 'FAILED' }, byStatus?.failed ?? 0);
    outboxWaiting.set({ status: 'DEAD' }, dead?.n ?? 0);
    outboxOldest.set(Math.max(0, ...subs.map((s) => s.oldest ?? 0)));
    subscriptionPending.reset();
    subscriptionCircuit.reset();
    for (const s of subs) {
      subscriptionPending.set({ subscription: s.id }, s.pending);
      for (const state of ['closed', 'open', 'half_open', 'disabled']) {
        subscriptionCircuit.set({ subscription: s.id, state }, s.circuit_state === state ? 1 : 0);
      }
    }
  }

  async function readDatabase(): Promise<void> {
    try {
      // RECEIVED and FAILED are few and indexed: exact on every scrape. PROCESSED and IGNORED are
      // nearly the whole table (tens of millions of rows at 30 days): counted at most every
      // 5 minutes, so a 15 s scrape interval does not walk the table each time.
      const full = Date.now() - lastFullCount >= (deps.fullCountEveryMs ?? 5 * 60_000);
      const counted = full
        ? deps.sql`select status, count(*)::int as n from events group by status`
        : deps.sql`select status, count(*)::int as n from events where status in ('RECEIVED', 'FAILED') group by status`;
      const [row] = await deps.sql<{ counts: Record<string, number> | null; oldest: number | null }[]>`
        select
          (select jsonb_object_agg(status, n) from (${counted}) s) as counts,
          (select extract(epoch from now() - min(received_at))::float8 from events where status = 'RECEIVED') as oldest`;
      for (const s of STATUSES) {
        if (full || s === 'RECEIVED' || s === 'FAILED') byStatus.set({ status: s }, row?.counts?.[s] ?? 0);
      }
      if (full) lastFullCount = Date.now();
      oldest.set(Math.max(0, row?.oldest ?? 0));
      const [links] = await deps.sql<{ n: number; oldest: number | null; unresolvable: number }[]>`
        select count(*)::int as n, extract(epoch from now() - min(since))::float8 as oldest,
               count(*) filter (where unresolvable_reason is not null)::int as unresolvable
          from pending_links`;
      pending.set(links?.n ?? 0);
      pendingOldest.set(Math.max(0, links?.oldest ?? 0));
      unresolvable.set(links?.unresolvable ?? 0);
      const cursors = await deps.sql<{ scope: string; success: number | null; lag: number }[]>`
        select scope, extract(epoch from last_success_at)::float8 as success,
               extract(epoch from now() - covered_until)::float8 as lag
          from reconcile_cursors`;
      for (const c of cursors) {
        if (c.success !== null) reconcileSuccess.set({ scope: c.scope }, c.success);
        reconcileLag.set({ scope: c.scope }, Math.max(0, c.lag));
      }
      await readOutbox();
      databaseUp.set(1);
    } catch (err) {
      databaseUp.set(0);
      deps.log.warn({ err: (err as Error).message }, 'metrics: could not read the database gauges');
    }
  }

  return {
    registry,
    observeDelivery(source, outcome, seconds) {
      // The source comes from the URL: unknown names must not mint new label values. The label
      // children are bound once per (source, outcome): no label lookup per delivery.
      const key = `${known.has(source) ? source : 'unknown'}\n${outcome}`;
      let bound = boundDeliveries.get(key);
      if (!bound) {
        const labels = { source: known.has(source) ? source : 'unknown', outcome };
        bound = { count: deliveries.labels(labels), ack: ack.labels(labels) };
        boundDeliveries.set(key, bound);
      }
      bound.count.inc();
      bound.ack.observe(seconds);
    },
    observeFold(outcome, ms) {
      folds.observe({ outcome }, ms / 1000);
      if (outcome === 'retry') retries.inc();
      if (outcome === 'failed') failures.inc();
    },
    observePause(seconds) {
      paused.inc(seconds);
    },
    stripeApi: {
      parentFetch: (outcome) => parentFetches.inc({ outcome }),
      thinEvent: (outcome) => thinEvents.inc({ outcome }),
      recovered: (events) => recovered.inc(events),
    },
    outbox: {
      observeAttempt(outcome, status, seconds) {
        attempts.inc({ outcome, status });
        attemptSeconds.observe({ outcome }, seconds);
      },
      observeLatency(seconds) {
        latency.observe(seconds);
      },
      observeTransition(from, to, reason) {
        transitions.inc({ from, to, reason });
      },
    },
    async render() {
      await readDatabase();
      return registry.metrics();
    },
  };
}

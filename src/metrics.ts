// Prometheus metrics (prom-client), one registry per process. Counters and histograms are fed by
// the ingest route (observeDelivery) and the fold workers (observeFold); the database-wide gauges
// (events by status, oldest unprocessed, pending links) are read from Postgres at scrape time.
import client from 'prom-client';
import type postgres from 'postgres';
import type { Logger } from './log.ts';

/** 'skipped': the claimed event was already finished by another worker (a lease ran out). */
export type FoldOutcome = 'processed' | 'ignored' | 'retry' | 'failed' | 'skipped';

export type Metrics = {
  registry: client.Registry;
  /** One answered delivery: which source, what happened (stored, duplicate, SignatureError, ...). */
  observeDelivery: (source: string, outcome: string, seconds: number) => void;
  /** One fold attempt and how long it took; the workers' `onFold`. */
  observeFold: (outcome: FoldOutcome, ms: number) => void;
  /** A fold loop paused this long so ingest could keep the CPU; the workers' `onPause`. */
  observePause: (seconds: number) => void;
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

  let lastFullCount = 0;
  const boundDeliveries = new Map<string, { count: client.Counter.Internal; ack: client.Histogram.Internal<'source' | 'outcome'> }>();

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
      const [links] = await deps.sql<{ n: number; oldest: number | null }[]>`
        select count(*)::int as n, extract(epoch from now() - min(since))::float8 as oldest from pending_links`;
      pending.set(links?.n ?? 0);
      pendingOldest.set(Math.max(0, links?.oldest ?? 0));
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
    async render() {
      await readDatabase();
      return registry.metrics();
    },
  };
}

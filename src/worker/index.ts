// startWorkers: the claim loops (hot path), the outbox relay, and the pg-boss schedules around
// them, started once per process, and, with STRIPE_API_KEY, what reads Stripe's API: the parent
// fetcher, the thin-event fetcher and the reconcile-events schedule. ROLE=api never calls this.
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import { connect } from '../db/client.ts';
import type { Logger } from '../log.ts';
import { startClaimLoops } from './claim.ts';
import { purgeOutbox } from '../db/retention.ts';
import type { FoldOutcome, OutboxMetrics, StripeApiObserver } from '../metrics.ts';
import { stripeApiOf } from '../stripe-api/from-config.ts';
import { startParentFetcher, type ParentFetcher } from './parent-fetch.ts';
import { RECONCILE_SWEEP, reconcileSweep } from './reconcile.ts';
import { startRelay, type Relay } from './relay.ts';
import { startSweeps, sweepLeases, sweepLinks, type Sweep, type Sweeper } from './sweeps.ts';
import { createThinEvents } from './thin-events.ts';

export type Workers = { stop(): Promise<void> };

/** Connections of the Stripe API readers (parent fetch, thin events) per process. */
const API_POOL_MAX = 2;

export type WorkerDeps = {
  sql: postgres.Sql;
  /** pg-boss opens its own small pool on the same database. */
  databaseUrl: string;
  config: Config;
  log: Logger;
  onFold?: (outcome: FoldOutcome, ms: number) => void;
  /** More scheduled work (e.g. retention), run by the same pg-boss. */
  sweeps?: Sweep[];
  /** True while ingest in this process needs the CPU (ROLE=all): claim loop number `loop` pauses. */
  busy?: (loop: number) => boolean;
  /** How long a claim loop just paused for busy(), in seconds. */
  onPause?: (seconds: number) => void;
  /** Tests that only exercise folding skip pg-boss; the service always starts it. */
  schedules?: boolean;
  /** Counts what the Stripe API readers do (parent fetches, thin events, recovered events). */
  observeStripeApi?: StripeApiObserver;
  /** Where the relay reports attempts, latencies and circuit transitions. */
  outboxMetrics?: OutboxMetrics;
  /** Tests of folding alone run no relay; by default it runs when OUTBOX_CONCURRENCY > 0. */
  relay?: boolean;
};

/** The service's handle on this module: it is handed in by src/main.ts, unless ROLE=api. */
export type StartWorkers = (deps: WorkerDeps) => Workers | Promise<Workers>;

export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  const { sql, config, log } = deps;
  const wlog = log.child({ component: 'worker' });
  const api = stripeApiOf(config, log);
  if (!api) {
    log.info(
      'STRIPE_API_KEY is not set: parent fetch, reconciliation of missed events and thin-event folding are off (thin events are stored and wait for a key); set a restricted key with read access to turn them on',
    );
  }
  // What reads Stripe's API folds on connections of its own: a burst of reads (a new install's
  // parked links) then queues there, never in front of the fold workers.
  const apiSql = api && deps.databaseUrl
    ? connect(deps.databaseUrl, {
        max: API_POOL_MAX,
        connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
        statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
        applicationName: 'webhook-inbox-stripe-api',
      })
    : undefined;
  const thin = createThinEvents({
    sql: apiSql ?? sql,
    api,
    log: log.child({ component: 'thin-events' }),
    leaseSeconds: config.WORKER_LEASE_S,
    maxAttempts: config.WORKER_MAX_ATTEMPTS,
    retryBaseMs: config.RETRY_BASE_MS,
    retryMaxMs: config.RETRY_MAX_MS,
    onOutcome: deps.observeStripeApi?.thinEvent,
  });
  await thin.start();
  const loops = await startClaimLoops({
    sql,
    log: wlog,
    onFold: deps.onFold,
    busy: deps.busy,
    onPause: deps.onPause,
    options: {
      concurrency: config.WORKER_CONCURRENCY,
      batchSize: config.WORKER_BATCH_SIZE,
      pollMs: config.WORKER_POLL_MS,
      leaseSeconds: config.WORKER_LEASE_S,
      maxAttempts: config.WORKER_MAX_ATTEMPTS,
      retryBaseMs: config.RETRY_BASE_MS,
      retryMaxMs: config.RETRY_MAX_MS,
      handOff: thin.handOff,
    },
  });

  let fetcher: ParentFetcher | undefined;
  if (api) {
    fetcher = startParentFetcher({
      sql: apiSql ?? sql,
      api,
      log: log.child({ component: 'parent-fetch' }),
      afterSeconds: config.PARENT_FETCH_AFTER_S,
      pollMs: config.WORKER_POLL_MS,
      onOutcome: deps.observeStripeApi?.parentFetch,
    });
  }

  let relay: Relay | undefined;
  if (deps.relay !== false && config.OUTBOX_CONCURRENCY > 0) {
    try {
      relay = await startRelay({ sql, databaseUrl: deps.databaseUrl || undefined, config, log: wlog, metrics: deps.outboxMetrics });
    } catch (err) {
      await Promise.all([loops.stop(), fetcher?.stop()]);
      await thin.stop();
      await apiSql?.end({ timeout: 5 });
      throw err;
    }
  }

  let sweeper: Sweeper | undefined;
  if (deps.schedules !== false) {
    const slog = log.child({ component: 'sweeps' });
    const sweeps: Sweep[] = [
      { name: 'sweep-links', cron: '* * * * *', run: () => sweepLinks(sql, slog).then((r) => r.length) },
      { name: 'recover-leases', cron: '* * * * *', run: () => sweepLeases(sql, slog) },
      {
        name: 'purge-outbox',
        cron: '*/10 * * * *',
        run: async () => {
          const purged = await purgeOutbox(sql, { olderThanDays: config.RETENTION_DAYS, batchSize: config.RETENTION_BATCH_SIZE, maxBatches: 500 });
          if (purged.deliveries + purged.messages > 0) slog.info({ ...purged, olderThanDays: config.RETENTION_DAYS }, 'retention: purged finished deliveries');
          return purged;
        },
      },
      ...(deps.sweeps ?? []),
    ];
    const reconcile = api && config.RECONCILE_EVERY ? reconcileSweep(sql, api, config, slog, deps.observeStripeApi) : undefined;
    if (reconcile) sweeps.push(reconcile);
    try {
      sweeper = await startSweeps({ databaseUrl: deps.databaseUrl, sweeps, retired: reconcile ? [] : [RECONCILE_SWEEP], log: slog });
    } catch (err) {
      await Promise.all([loops.stop(), fetcher?.stop(), relay?.stop()]);
      await thin.stop();
      await apiSql?.end({ timeout: 5 });
      throw err;
    }
  }

  return {
    async stop() {
      // Claims first (folds in flight finish, unstarted ones are released; no more hand-offs;
      // sends in flight finish or are handed back), then the Stripe API readers, then the schedules.
      await Promise.all([loops.stop(), fetcher?.stop(), relay?.stop()]);
      await thin.stop();
      await sweeper?.stop();
      await apiSql?.end({ timeout: 5 });
    },
  };
}

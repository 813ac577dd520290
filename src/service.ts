// The process lifecycle: open the database (the embedded one when DATABASE_URL is unset), migrate,
// serve HTTP and/or run the workers by ROLE, and stop in order: stop accepting, drain requests and
// workers, close the pools, stop Postgres. src/main.ts owns the signals and the exit status; the
// workers are handed in (startWorkers), so nothing here loads worker code for ROLE=api.
import type { RequestListener, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type postgres from 'postgres';
import type { Config } from './config.ts';
import { EmbeddedPostgresError } from './db/embedded.ts';
import { migrate } from './db/migrate.ts';
import { openDatabase } from './db/open.ts';
import { openPools, type Pools } from './db/pools.ts';
import { purgeEvents } from './db/retention.ts';
import { createHttp, createSources } from './http/app.ts';
import { closeServer, listen } from './http/server.ts';
import type { Logger } from './log.ts';
import { consoleUrl, withGeneratedAdminToken } from './console/first-run.ts';
import { createMetrics } from './metrics.ts';
import type { StartWorkers, Workers } from './worker/index.ts';
import type { Sweep } from './worker/sweeps.ts';
import { createYieldRule, type YieldRule } from './worker/yield.ts';

// Retention every 10 minutes keeps each run short; maxBatches bounds one run on a large backlog
// (the next run carries on).
export function retentionSweep(sql: postgres.Sql, config: Config, log: Logger): Sweep {
  return {
    name: 'purge-events',
    cron: '*/10 * * * *',
    run: async () => {
      const purged = await purgeEvents(sql, {
        olderThanDays: config.RETENTION_DAYS,
        batchSize: config.RETENTION_BATCH_SIZE,
        maxBatches: 500,
      });
      if (purged > 0) log.info({ purged, olderThanDays: config.RETENTION_DAYS }, 'retention: purged finished events');
      return purged;
    },
  };
}

export type ServiceOptions = { config: Config; log: Logger; startWorkers?: StartWorkers };

export type Service = {
  /** http://host:port when this process serves HTTP. */
  url: string | undefined;
  /** HTTP requests being handled right now. */
  inFlight: () => number;
  /** The ordered shutdown; resolves when everything is closed. Safe to call twice. */
  stop: (reason?: string) => Promise<void>;
};

/** Starts everything ROLE asks for and returns the running service; throws if it cannot start. */
export async function startService(options: ServiceOptions): Promise<Service> {
  const { log } = options;
  let config = options.config;
  const serveHttp = config.ROLE !== 'worker';
  const foldsHere = config.ROLE !== 'api' && config.WORKER_CONCURRENCY > 0;
  // Failures here (the embedded Postgres's port taken, a DATABASE_URL that is no URL) were thrown
  // past every log line, and `npm start` exited 1 without a word: log them like the ones below.
  let pools: Pools;
  try {
    pools = openPools(await openDatabase(config, { log }), config, serveHttp, foldsHere);
  } catch (err) {
    // The embedded Postgres's own failures say what to do; a stack trace would only bury that.
    log.fatal(err instanceof EmbeddedPostgresError ? { reason: err.message } : { err }, 'could not start');
    throw err;
  }
  const { databaseUrl, embedded, sql, adminSql, workerSql } = pools;
  const closeDatabase = async () => {
    await Promise.all([sql.end({ timeout: 5 }), adminSql?.end({ timeout: 5 }), workerSql?.end({ timeout: 5 })]);
    await embedded?.stop();
  };

  try {
    await migrate(sql, log);
  } catch (err) {
    log.fatal({ err }, 'migrations failed; not starting');
    await closeDatabase();
    throw err;
  }
  // The embedded default without ADMIN_TOKEN: a generated one, so a first run can open the console
  // (once the database is up: a start that fails logs only why).
  config = await withGeneratedAdminToken(config, log);

  // Open every connection of the ingest pool now. Opened on demand, the first ones would be
  // opened under the first burst of deliveries, and a connection (a server process and SCRAM)
  // that takes longer than DB_CONNECT_TIMEOUT_MS on a busy machine answers a delivery 503.
  if (serveHttp) {
    await Promise.all(Array.from({ length: config.DB_POOL_MAX }, () => sql`select 1`)).catch((err) =>
      log.warn({ err }, 'could not open the whole pool; connections will be opened on demand'),
    );
  }

  if (serveHttp && !config.STRIPE_WEBHOOK_SECRET) {
    log.warn(
      'STRIPE_WEBHOOK_SECRET is not set: Stripe deliveries answer 503 (Stripe retries them) until you set it to your endpoint secret, or to the whsec_... that `stripe listen --forward-to localhost:3000/webhooks/stripe` prints',
    );
  }
  if (serveHttp && !config.ADMIN_TOKEN) {
    log.info('ADMIN_TOKEN is not set: the admin API (/events) is off; set it to a secret of at least 16 characters to enable it');
  }

  let stopping = false;
  let starting = true;
  const metrics = createMetrics({ sql, log, sources: [...createSources(config).keys()] });
  const http = createHttp({ sql, adminSql, config, log, metrics, isStopping: () => stopping, isStarting: () => starting });

  let inFlight = 0;
  const yieldRule: YieldRule | undefined =
    serveHttp && foldsHere && config.WORKER_YIELD_IN_FLIGHT > 0 ? createYieldRule(config.WORKER_YIELD_IN_FLIGHT) : undefined;
  const done = () => inFlight--;
  const listener: RequestListener = (req, res) => {
    inFlight++;
    yieldRule?.seeRequest(inFlight);
    // 'close' comes once per response: sent, or its connection gone.
    res.once('close', done);
    http.listener(req, res);
  };

  let server: Server | undefined;
  let workers: Workers | undefined;
  try {
    // Every role serves HTTP: a worker-only process answers /healthz, /readyz and /metrics only.
    server = await listen(listener, config);
    const port = (server.address() as AddressInfo).port;
    log.info({ port, role: config.ROLE, admin: Boolean(config.ADMIN_TOKEN) && serveHttp }, 'listening');
    if (serveHttp && config.ADMIN_TOKEN) log.info({ url: consoleUrl(config, port) }, 'console: open url and sign in with ADMIN_TOKEN');
    if (config.ROLE === 'api') {
      // HTTP only; workers run in other processes.
    } else if (config.WORKER_CONCURRENCY === 0) {
      log.info('WORKER_CONCURRENCY is 0: this process folds nothing and runs no schedules');
    } else if (!options.startWorkers) {
      log.warn('no fold workers in this build: events are stored but not folded');
    } else {
      const sweeps = [retentionSweep(sql, config, log)];
      // With HTTP in the same process, acks come first (worker/yield.ts).
      const busy = yieldRule ? (loop: number) => yieldRule.busy(loop, inFlight) : undefined;
      workers = await options.startWorkers({ sql: workerSql!, databaseUrl, config, log, onFold: metrics.observeFold, onPause: metrics.observePause, observeStripeApi: metrics.stripeApi, outboxMetrics: metrics.outbox, sweeps, busy });
      log.info({ concurrency: config.WORKER_CONCURRENCY }, 'workers started');
    }
  } catch (err) {
    log.fatal({ err }, 'could not start');
    yieldRule?.stop();
    if (server) await closeServer(server);
    await closeDatabase();
    throw err;
  }

  starting = false;
  log.info('ready');
  const address = server.address() as AddressInfo;
  let stopped: Promise<void> | undefined;
  const stop = (reason = 'stop') => {
    stopped ??= (async () => {
      stopping = true;
      log.info({ reason, inFlight }, 'shutting down: no new requests; draining requests and workers');
      // The HTTP drain and the workers' drain are independent; both finish before the pool closes
      // because requests in flight and folds in flight both still write.
      const results = await Promise.allSettled([
        server ? closeServer(server).then(() => log.info('http drained')) : undefined,
        workers?.stop().then(() => log.info('workers stopped')),
      ]);
      yieldRule?.stop();
      for (const r of results) if (r.status === 'rejected') log.error({ err: r.reason }, 'error while draining');
      await closeDatabase();
      log.info('stopped');
    })();
    return stopped;
  };

  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`,
    inFlight: () => inFlight,
    stop,
  };
}

// The process lifecycle: open the database (the embedded one when DATABASE_URL is unset), migrate,
// serve HTTP and/or run the workers by ROLE, and on SIGTERM/SIGINT shut down in order within
// SHUTDOWN_TIMEOUT_MS: stop accepting, drain requests and workers, close the pools, stop Postgres.
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type postgres from 'postgres';
import type { Config } from './config.ts';
import { connect } from './db/client.ts';
import { EmbeddedPostgresError, startEmbeddedPostgres, type Embedded } from './db/embedded.ts';
import { migrate } from './db/migrate.ts';
import { purgeEvents } from './db/retention.ts';
import { createHttp, createSources } from './http/app.ts';
import type { Logger } from './log.ts';
import { consoleUrl, withGeneratedAdminToken } from './console/first-run.ts';
import { createMetrics, type FoldOutcome } from './metrics.ts';

export type Workers = { stop(): Promise<void> };

/** Scheduled work the workers' pg-boss runs (once across all processes per tick). */
export type Sweep = { name: string; cron: string; run: () => Promise<unknown> };

/** What src/worker/index.ts provides; the service calls it unless ROLE=api. */
export type StartWorkers = (deps: {
  sql: postgres.Sql;
  databaseUrl: string;
  config: Config;
  log: Logger;
  onFold: (outcome: FoldOutcome, ms: number) => void;
  sweeps: Sweep[];
  /** True while fold loop number `loop` should leave the CPU to this process's HTTP side (ROLE=all only). */
  busy?: (loop: number) => boolean;
  onPause?: (seconds: number) => void;
}) => Workers | Promise<Workers>;

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

/** Whether this process's event loop is saturated while it answers requests. */
export type Saturation = { saturated(): boolean; stop(): void };

// How the fold workers notice that ingest needs the CPU although few requests are in flight.
// Node accepts one new connection per event-loop iteration (libuv stopped accepting in a loop in
// 2022, libuv pull request 3696; strace of the service shows one accept4 per epoll_pwait). Under a
// burst of new connections, with folding making each iteration long, the connections waited in
// the kernel's accept queue (ss showed 100-200 there for seconds), not counted as in flight, and
// senders waited 1-2.5 s for an ack. The event loop's utilization counts that: past 90% over the
// last 50 ms while requests were arriving, all fold loops but one yield. Requests must be
// arriving, so folding alone (a backlog drained at night) never pauses itself.
const SATURATION_WINDOW_MS = 50;
const SATURATION_LIMIT = 0.9;

export function watchSaturation(requestCount: () => number): Saturation {
  let last = performance.eventLoopUtilization();
  let lastRequests = requestCount();
  let saturated = false;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const requests = requestCount();
    saturated = performance.eventLoopUtilization(now, last).utilization > SATURATION_LIMIT && requests > lastRequests;
    last = now;
    lastRequests = requests;
  }, SATURATION_WINDOW_MS);
  timer.unref();
  return { saturated: () => saturated, stop: () => clearInterval(timer) };
}

/** The largest value seen over the last one to two windows of `windowMs`. */
export function peakOver(windowMs: number): { see(n: number): void; peak(): number } {
  let start = performance.now();
  let current = 0;
  let previous = 0;
  const rotate = () => {
    const now = performance.now();
    if (now - start < windowMs) return;
    previous = now - start < 2 * windowMs ? current : 0;
    current = 0;
    start = now;
  };
  return {
    see(n) {
      rotate();
      if (n > current) current = n;
    },
    peak() {
      rotate();
      return Math.max(current, previous);
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

async function openDatabase(config: Config, log: Logger): Promise<{ url: string; embedded?: Embedded }> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL };
  const embedded = await startEmbeddedPostgres({
    dir: config.EMBEDDED_PG_DIR,
    port: config.EMBEDDED_PG_PORT,
    database: 'webhook_inbox',
    onLog: (line) => log.debug({ postgres: line.trim() }, 'embedded postgres'),
    onWarn: (fields, message) => log.warn(fields, message),
  });
  log.info(
    { dir: embedded.dir, port: config.EMBEDDED_PG_PORT },
    'DATABASE_URL is unset: started the embedded Postgres with its data in dir (set DATABASE_URL to use your own)',
  );
  return { url: embedded.url, embedded };
}

function listen(listener: RequestListener, config: Config): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer(listener);
    server.listen(config.PORT, config.HOST, () => resolve(server));
    // A load balancer that reuses an idle connection at the moment this server closes it gets a
    // reset and answers the sender 502. The server must keep idle connections longer than the
    // balancer does (AWS ALB: 60 s), so its timeout is configurable; Node's own is 5 s. Headers
    // of a request on a kept connection must be allowed at least as long.
    server.keepAliveTimeout = config.HTTP_KEEP_ALIVE_TIMEOUT_MS;
    server.headersTimeout = Math.max(server.headersTimeout, config.HTTP_KEEP_ALIVE_TIMEOUT_MS + 1000);
    server.once('error', reject);
  });
}

// server.close() stops listening and closes idle keep-alive sockets once; a socket busy with a
// request becomes idle again afterwards, so keep closing idle ones until the server reports done.
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearInterval(sweep);
      resolve();
    });
  });
}

type Pools = { databaseUrl: string; embedded?: Embedded; sql: postgres.Sql; adminSql?: postgres.Sql; workerSql?: postgres.Sql };

function openPools(db: { url: string; embedded?: Embedded }, config: Config, serveHttp: boolean, foldsHere: boolean): Pools {
  const sql = connect(db.url, { max: config.DB_POOL_MAX, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS });
  return {
    databaseUrl: db.url,
    embedded: db.embedded,
    sql,
    // Operators' queries get their own small pool and a longer timeout: a slow listing can neither
    // starve ingest of connections nor be cut at ingest's 1 s.
    adminSql: serveHttp
      ? connect(db.url, { max: 2, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.ADMIN_STATEMENT_TIMEOUT_MS, applicationName: 'webhook-inbox-admin' })
      : undefined,
    // The fold workers get their own connections, one per claim loop: a fold never waits for a
    // connection behind ingest, nor an ack behind a fold, and only these few backends compile the
    // fold functions (a cold backend's first folds cost tens of ms of CPU each).
    workerSql: foldsHere
      ? connect(db.url, { max: config.WORKER_CONCURRENCY, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS, applicationName: 'webhook-inbox-worker' })
      : undefined,
  };
}

/** Starts everything ROLE asks for and returns the running service; throws if it cannot start. */
export async function startService(options: ServiceOptions): Promise<Service> {
  const { log } = options;
  // The embedded default without ADMIN_TOKEN: a generated one, so a first run can open the console.
  const config = await withGeneratedAdminToken(options.config, log);
  const serveHttp = config.ROLE !== 'worker';
  const foldsHere = config.ROLE !== 'api' && config.WORKER_CONCURRENCY > 0;
  // Failures here (the embedded Postgres's port taken, a DATABASE_URL that is no URL) were thrown
  // past every log line, and `npm start` exited 1 without a word: log them like the ones below.
  let pools: Pools;
  try {
    pools = openPools(await openDatabase(config, log), config, serveHttp, foldsHere);
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
  let requests = 0;
  // Group commit answers a whole batch at once, so the count of requests in flight dips for an
  // instant between batches: a fold loop that looked then claimed and folded 50 events in the
  // middle of a burst. The workers look at the most in flight over the last 50-100 ms instead.
  const recent = peakOver(SATURATION_WINDOW_MS);
  const done = () => inFlight--;
  const listener: RequestListener = (req, res) => {
    inFlight++;
    requests++;
    recent.see(inFlight);
    // 'close' comes once per response: sent, or its connection gone.
    res.once('close', done);
    http.listener(req, res);
  };

  let server: Server | undefined;
  let workers: Workers | undefined;
  let saturation: Saturation | undefined;
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
      // With HTTP in the same process, acks come first: past WORKER_YIELD_IN_FLIGHT requests in
      // flight every fold loop pauses, and while requests come to a saturated event loop all but
      // the first do, until ingest catches up (events wait, stored; acks do not). The first loop
      // keeps folding through short saturations: at 500 req/s, pausing all of them put the
      // end-to-end p99 at 132-315 ms, one folding at 59-82 ms (four runs each), while the first
      // 3 s after a start peaked at 0.2-0.3 s and 0.3-1.2 s.
      const yieldAt = config.WORKER_YIELD_IN_FLIGHT;
      let busy: ((loop: number) => boolean) | undefined;
      if (serveHttp && yieldAt > 0) {
        const eventLoop = (saturation = watchSaturation(() => requests));
        busy = (loop) => Math.max(inFlight, recent.peak()) > yieldAt || (loop > 0 && eventLoop.saturated());
      }
      workers = await options.startWorkers({ sql: workerSql!, databaseUrl, config, log, onFold: metrics.observeFold, onPause: metrics.observePause, sweeps, busy });
      log.info({ concurrency: config.WORKER_CONCURRENCY }, 'workers started');
    }
  } catch (err) {
    log.fatal({ err }, 'could not start');
    saturation?.stop();
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
      saturation?.stop();
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

/**
 * `npm start`: startService, then SIGTERM/SIGINT run the ordered shutdown and exit 0, or exit 1
 * if it takes longer than SHUTDOWN_TIMEOUT_MS. A failure to start exits 1.
 */
export async function runService(options: ServiceOptions): Promise<void> {
  const { config, log } = options;
  let service: Service | undefined;
  let signalled: string | undefined;

  const shutdown = async (signal: string) => {
    if (signalled) {
      log.warn({ signal }, 'already shutting down');
      return;
    }
    signalled = signal;
    const force = setTimeout(() => {
      log.error({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS }, 'shutdown took longer than SHUTDOWN_TIMEOUT_MS; exiting anyway');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    force.unref();
    // A signal during startup is acted on once startup is done (or failed).
    if (!service) return;
    await service.stop(signal);
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));

  try {
    service = await startService(options);
  } catch {
    process.exit(1);
  }
  if (signalled) {
    await service.stop(signalled);
    process.exit(0);
  }
}

// createApp(deps) -> Hono: request id and logger per request, the routes, and the one error mapping
// (errorResponse) that turns named errors into responses. createHttp(deps) adds the Node request
// listener the service serves: webhooks straight from Node (ingest.ts), everything else via Hono.
// Never imports worker/: the API and the workers scale apart.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import { createWakeup } from '../db/events.ts';
import { createIngestBatcher, type IngestBatcher } from '../db/ingest-batch.ts';
import { BadRequestError, HttpError, UnauthorizedError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { createMetrics, type Metrics } from '../metrics.ts';
import { standardSource } from '../sources/standard.ts';
import { stripeSource } from '../sources/stripe.ts';
import { stripeThinSource } from '../sources/stripe-thin.ts';
import type { Source } from '../sources/types.ts';
import { mountConsole } from '../console/index.ts';
import { mountAdmin } from './admin.ts';
import { mountDeliveries } from './deliveries.ts';
import { mountHealth } from './health.ts';
import { createIngest, ingestListener, mountIngest, type Ingest } from './ingest.ts';
import { mountOpenApi } from './openapi.ts';
import { mountSubscriptions } from './subscriptions.ts';

export type AppEnv = { Variables: { log: Logger; requestId: string } };

export type AppDeps = {
  sql: postgres.Sql;
  config: Config;
  log: Logger;
  /** Pool for the admin API, with a statement timeout that suits operator queries; default: sql. */
  adminSql?: postgres.Sql;
  /** Default: a fresh registry for this app. */
  metrics?: Metrics;
  /** True while the process drains: /readyz answers 503 so load balancers stop sending. */
  isStopping?: () => boolean;
  /** True until everything this process runs has started; /readyz answers 503 meanwhile. */
  isStarting?: () => boolean;
};

export function createSources(config: Config): Map<string, Source> {
  const sources = new Map<string, Source>();
  sources.set('stripe', stripeSource(config.STRIPE_WEBHOOK_SECRET, config.STRIPE_SIGNATURE_TOLERANCE_S));
  sources.set('stripe-thin', stripeThinSource(config.STRIPE_THIN_WEBHOOK_SECRET, config.STRIPE_SIGNATURE_TOLERANCE_S));
  for (const [name, secrets] of Object.entries(config.sources)) {
    sources.set(name, standardSource(name, secrets, config.STRIPE_SIGNATURE_TOLERANCE_S));
  }
  return sources;
}

/** The response for an error thrown by a route; unknown errors are logged and answered 500. */
export function errorResponse(err: unknown, log: Logger): { status: 400 | 401 | 404 | 409 | 413 | 500 | 503; body: string; headers?: Record<string, string> } {
  // Named errors were logged where they arose, with their context.
  if (err instanceof BadRequestError) return { status: 400, body: JSON.stringify({ error: err.message, parameter: err.parameter }) };
  if (err instanceof HttpError) {
    const headers = err instanceof UnauthorizedError ? { 'WWW-Authenticate': 'Bearer realm="webhook-inbox admin"' } : undefined;
    return { status: err.status, body: JSON.stringify({ error: err.message }), headers };
  }
  // Unknown failures: log everything, tell the caller nothing but that it may retry.
  log.error({ err }, 'unhandled error');
  return { status: 500, body: JSON.stringify({ error: 'internal error, retry later' }) };
}

export type Http = {
  app: Hono<AppEnv>;
  /** For http.createServer: POST /webhooks/:source handled from Node directly, the rest by Hono. */
  listener: RequestListener;
  /** The ingest group commit, for tests and the bench to read its statement count. */
  batcher?: IngestBatcher;
};

export function createApp(deps: AppDeps): Hono<AppEnv> {
  return createHttp(deps).app;
}

export function createHttp(deps: AppDeps): Http {
  const app = new Hono<AppEnv>();
  app.use(requestId());
  app.use(async (c, next) => {
    c.set('log', deps.log.child({ requestId: c.get('requestId') }));
    await next();
    // Draining: ask the client to drop its keep-alive connection so the server can close.
    if (deps.isStopping?.()) c.header('Connection', 'close');
  });

  const sources = createSources(deps.config);
  const metrics = deps.metrics ?? createMetrics({ sql: deps.sql, log: deps.log, sources: [...sources.keys()] });
  let ingest: Ingest | undefined;
  let batcher: IngestBatcher | undefined;
  // A worker-only process still answers probes and scrapes, but takes no deliveries or admin calls.
  if (deps.config.ROLE !== 'worker') {
    batcher = createIngestBatcher(deps.sql, {
      maxRows: deps.config.INGEST_BATCH_MAX_ROWS,
      maxBytes: deps.config.INGEST_BATCH_MAX_BYTES,
      maxInFlight: deps.config.INGEST_STATEMENTS_IN_FLIGHT,
    });
    ingest = createIngest({
      batcher,
      sources,
      maxBodyBytes: deps.config.WEBHOOK_MAX_BODY_BYTES,
      timeoutMs: deps.config.INGEST_TIMEOUT_MS,
      log: deps.log,
      onOutcome: metrics.observeDelivery,
      wake: createWakeup(deps.sql, (err) =>
        deps.log.warn({ err }, 'could not wake the fold workers; they find the stored events at their next poll'),
      ),
    });
    mountIngest(app, ingest);
    mountAdmin(app, { sql: deps.adminSql ?? deps.sql, token: deps.config.ADMIN_TOKEN });
    const outbox = { sql: deps.adminSql ?? deps.sql, token: deps.config.ADMIN_TOKEN, config: deps.config };
    mountSubscriptions(app, outbox);
    mountDeliveries(app, outbox);
    mountConsole(app, { sql: deps.adminSql ?? deps.sql, token: deps.config.ADMIN_TOKEN, log: deps.log, config: deps.config });
    mountOpenApi(app);
  }
  mountHealth(app, { sql: deps.sql, metrics, isStopping: deps.isStopping, isStarting: deps.isStarting });

  app.notFound((c) => c.json({ error: 'not found' }, 404));
  app.onError((err, c) => {
    const r = errorResponse(err, c.get('log') ?? deps.log);
    return c.body(r.body, r.status, { 'content-type': 'application/json', ...r.headers });
  });

  const viaHono = getRequestListener(app.fetch);
  const webhooks = ingest
    ? ingestListener(ingest, { onError: (err, requestId) => errorResponse(err, deps.log.child({ requestId })), isStopping: deps.isStopping })
    : undefined;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    if (!webhooks?.(req, res)) void viaHono(req, res);
  };
  return { app, listener, batcher };
}

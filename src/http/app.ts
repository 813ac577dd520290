// createApp(deps) -> Hono: request id and logger per request, the routes, and the one onError that
// maps named errors to responses. Never imports worker/: the API and the workers scale apart.
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import { createWakeup } from '../db/events.ts';
import { BadRequestError, HttpError, UnauthorizedError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { createMetrics, type Metrics } from '../metrics.ts';
import { standardSource } from '../sources/standard.ts';
import { stripeSource } from '../sources/stripe.ts';
import type { Source } from '../sources/types.ts';
import { mountConsole } from '../console/index.ts';
import { mountAdmin } from './admin.ts';
import { mountHealth } from './health.ts';
import { mountIngest } from './ingest.ts';
import { mountOpenApi } from './openapi.ts';

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
  for (const [name, secrets] of Object.entries(config.sources)) {
    sources.set(name, standardSource(name, secrets, config.STRIPE_SIGNATURE_TOLERANCE_S));
  }
  return sources;
}

export function createApp(deps: AppDeps): Hono<AppEnv> {
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
  // A worker-only process still answers probes and scrapes, but takes no deliveries or admin calls.
  if (deps.config.ROLE !== 'worker') {
    mountIngest(app, {
      sql: deps.sql,
      sources,
      maxBodyBytes: deps.config.WEBHOOK_MAX_BODY_BYTES,
      timeoutMs: deps.config.INGEST_TIMEOUT_MS,
      onOutcome: metrics.observeDelivery,
      wake: createWakeup(deps.sql, (err) =>
        deps.log.warn({ err }, 'could not wake the fold workers; they find the stored events at their next poll'),
      ),
    });
    mountAdmin(app, { sql: deps.adminSql ?? deps.sql, token: deps.config.ADMIN_TOKEN });
    mountConsole(app, { sql: deps.adminSql ?? deps.sql, token: deps.config.ADMIN_TOKEN, log: deps.log });
    mountOpenApi(app);
  }
  mountHealth(app, { sql: deps.sql, metrics, isStopping: deps.isStopping, isStarting: deps.isStarting });

  app.notFound((c) => c.json({ error: 'not found' }, 404));
  app.onError((err, c) => {
    // Named errors were logged where they arose, with their context.
    if (err instanceof BadRequestError) return c.json({ error: err.message, parameter: err.parameter }, 400);
    if (err instanceof UnauthorizedError) c.header('WWW-Authenticate', 'Bearer realm="webhook-inbox admin"');
    if (err instanceof HttpError) return c.json({ error: err.message }, err.status);
    // Unknown failures: log everything, tell the caller nothing but that it may retry.
    c.get('log').error({ err }, 'unhandled error');
    return c.json({ error: 'internal error, retry later' }, 500);
  });
  return app;
}

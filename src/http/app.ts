// createApp(deps) -> Hono: request id and logger per request, the routes, and the one onError that
// maps named errors to responses. Never imports worker/: the API and the workers scale apart.
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import { HttpError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { standardSource } from '../sources/standard.ts';
import { stripeSource } from '../sources/stripe.ts';
import type { Source } from '../sources/types.ts';
import { mountHealth } from './health.ts';
import { mountIngest, type IngestDeps } from './ingest.ts';

export type AppEnv = { Variables: { log: Logger; requestId: string } };

export type AppDeps = {
  sql: postgres.Sql;
  config: Config;
  log: Logger;
  onIngestOutcome?: IngestDeps['onOutcome'];
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
  });

  mountIngest(app, {
    sql: deps.sql,
    sources: createSources(deps.config),
    maxBodyBytes: deps.config.WEBHOOK_MAX_BODY_BYTES,
    timeoutMs: deps.config.INGEST_TIMEOUT_MS,
    onOutcome: deps.onIngestOutcome,
  });
  mountHealth(app, { sql: deps.sql });

  app.notFound((c) => c.json({ error: 'not found' }, 404));
  app.onError((err, c) => {
    // Named errors were logged where they arose, with their context.
    if (err instanceof HttpError) return c.json({ error: err.message }, err.status);
    // Unknown failures: log everything, tell the caller nothing but that it may retry.
    c.get('log').error({ err }, 'unhandled error');
    return c.json({ error: 'internal error, retry later' }, 500);
  });
  return app;
}

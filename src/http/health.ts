// /healthz: the process answers. /readyz: the process has started everything its role runs, the
// database answers, every migration is applied, and the process is not draining. /metrics:
// Prometheus text format.
import type { Hono } from 'hono';
import type postgres from 'postgres';
import { pendingMigrations } from '../db/migrate.ts';
import type { Metrics } from '../metrics.ts';
import type { AppEnv } from './app.ts';

export function mountHealth(
  app: Hono<AppEnv>,
  deps: { sql: postgres.Sql; metrics: Metrics; isStopping?: () => boolean; isStarting?: () => boolean },
): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    if (deps.isStopping?.()) return c.json({ status: 'unavailable', reason: 'shutting down' }, 503);
    // Listening starts before the workers and their schedules (pg-boss installs its schema on a
    // first start); a load balancer should send traffic once all of it runs.
    if (deps.isStarting?.()) return c.json({ status: 'unavailable', reason: 'starting' }, 503);
    try {
      await deps.sql`select 1`;
      const pending = await pendingMigrations(deps.sql);
      if (pending.length > 0) return c.json({ status: 'unavailable', reason: 'migrations pending', pending }, 503);
      return c.json({ status: 'ok' });
    } catch {
      return c.json({ status: 'unavailable', reason: 'database unreachable' }, 503);
    }
  });
  app.get('/metrics', async (c) => {
    const body = await deps.metrics.render();
    return c.body(body, 200, { 'content-type': deps.metrics.registry.contentType });
  });
}

// /healthz: the process answers. /readyz: the database answers and every migration is applied.
import type { Hono } from 'hono';
import type postgres from 'postgres';
import { pendingMigrations } from '../db/migrate.ts';
import type { AppEnv } from './app.ts';

export function mountHealth(app: Hono<AppEnv>, deps: { sql: postgres.Sql }): void {
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    try {
      await deps.sql`select 1`;
      const pending = await pendingMigrations(deps.sql);
      if (pending.length > 0) return c.json({ status: 'unavailable', reason: 'migrations pending', pending }, 503);
      return c.json({ status: 'ok' });
    } catch {
      return c.json({ status: 'unavailable', reason: 'database unreachable' }, 503);
    }
  });
}

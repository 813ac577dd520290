// The scheduled work around the hot path, run by pg-boss: its cron survives restarts, runs each
// schedule once across all processes, and retries a sweep that failed. The hot path itself does
// not go through pg-boss: its polling floor (500 ms) would break the 200 ms end-to-end goal.
import { PgBoss } from 'pg-boss';
import type postgres from 'postgres';
import { recoverExpiredLeases } from '../db/events.ts';
import { findResolvableParents, resolveLinksTo, type ResolvedLink } from '../db/fold.ts';
import type { Logger } from '../log.ts';

/** Resolves parked links whose parent exists after all; one short transaction per parent. */
export async function sweepLinks(sql: postgres.Sql, log: Logger, limit = 1000): Promise<ResolvedLink[]> {
  const resolved: ResolvedLink[] = [];
  for (const p of await findResolvableParents(sql, limit)) {
    resolved.push(...(await sql.begin((tx) => resolveLinksTo(tx, p.parent_table, p.parent_id))));
  }
  if (resolved.length > 0) {
    // The fold's locks should make this impossible: seeing it means something to look into.
    log.warn({ resolved: resolved.length, sample: resolved.slice(0, 5) }, 'link sweeper resolved links the fold had left parked');
  }
  return resolved;
}

/** Logs events whose worker died holding them; they are claimable again already. */
export async function sweepLeases(sql: postgres.Sql, log: Logger): Promise<number> {
  const expired = await recoverExpiredLeases(sql);
  for (const e of expired) {
    log.warn({ id: e.id, eventId: e.event_id, lockedBy: e.locked_by }, 'lease expired; event released to other workers');
  }
  return expired.length;
}

export type Sweep = { name: string; cron: string; run: () => Promise<unknown> };

export type Sweeper = { boss: PgBoss; stop(): Promise<void> };

/**
 * Starts pg-boss (once per process) and registers each sweep as a schedule with a worker. The
 * `retired` schedules are removed if a run before this one created them (reconcile-events once
 * STRIPE_API_KEY is unset): pg-boss keeps schedules in the database, and one no process works
 * would pile up jobs.
 */
export async function startSweeps(deps: { databaseUrl: string; sweeps: Sweep[]; retired?: string[]; log: Logger }): Promise<Sweeper> {
  const { log } = deps;
  const boss = new PgBoss({
    connectionString: deps.databaseUrl,
    schema: 'pgboss',
    max: 2,
    application_name: 'webhook-inbox-sweeps',
  });
  boss.on('error', (err) => log.error({ err }, 'pg-boss error'));
  await boss.start();
  for (const sweep of deps.sweeps) {
    // singleton: a sweep that is still running is not started a second time by the next tick.
    await boss.createQueue(sweep.name, { policy: 'singleton', retryLimit: 2, expireInSeconds: 600 });
    await boss.schedule(sweep.name, sweep.cron);
    await boss.work(sweep.name, async () => {
      const started = performance.now();
      const result = await sweep.run();
      log.debug({ sweep: sweep.name, result, ms: Math.round(performance.now() - started) }, 'sweep done');
    });
  }
  for (const name of deps.retired ?? []) {
    if ((await boss.getSchedules(name)).length === 0) continue;
    await boss.unschedule(name);
    log.info({ sweep: name }, 'pg-boss schedule removed: this configuration does not run it');
  }
  log.info({ sweeps: deps.sweeps.map((s) => `${s.name} (${s.cron})`) }, 'pg-boss schedules started');
  return {
    boss,
    async stop() {
      await boss.stop({ graceful: true, timeout: 5000, close: true });
    },
  };
}

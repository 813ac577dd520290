// startWorkers: the claim loops (hot path) and the pg-boss schedules around them, started once per
// process. ROLE=api processes never call this.
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { startClaimLoops } from './claim.ts';
import type { FoldOutcome } from '../metrics.ts';
import { startSweeps, sweepLeases, sweepLinks, type Sweep, type Sweeper } from './sweeps.ts';

export type Workers = { stop(): Promise<void> };

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
};

/** The service's handle on this module: it is handed in by src/main.ts, unless ROLE=api. */
export type StartWorkers = (deps: WorkerDeps) => Workers | Promise<Workers>;

export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  const { sql, config, log } = deps;
  const wlog = log.child({ component: 'worker' });
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
    },
  });

  let sweeper: Sweeper | undefined;
  if (deps.schedules !== false) {
    const slog = log.child({ component: 'sweeps' });
    const sweeps: Sweep[] = [
      { name: 'sweep-links', cron: '* * * * *', run: () => sweepLinks(sql, slog).then((r) => r.length) },
      { name: 'recover-leases', cron: '* * * * *', run: () => sweepLeases(sql, slog) },
      ...(deps.sweeps ?? []),
    ];
    try {
      sweeper = await startSweeps({ databaseUrl: deps.databaseUrl, sweeps, log: slog });
    } catch (err) {
      await loops.stop();
      throw err;
    }
  }

  return {
    async stop() {
      // Claims first (folds in flight finish, unstarted ones are released), then the schedules.
      await loops.stop();
      await sweeper?.stop();
    },
  };
}

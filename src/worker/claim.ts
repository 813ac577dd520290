// The claim loops: the hot path from "stored" to "folded". Each loop claims a batch with SKIP
// LOCKED and folds it a few events per transaction. Loops sleep until a NOTIFY from ingest (each
// wake-up goes to one idle loop; ingest sends one per few ms of stored events, and a loop that
// claims a full batch claims again at once) or the poll interval, the backstop for retries coming
// due, expired leases, and notifications lost while the listener reconnected.
import { hostname } from 'node:os';
import type postgres from 'postgres';
import { EVENTS_CHANNEL, claimEvents, releaseClaims } from '../db/events.ts';
import type { Logger } from '../log.ts';
import type { FoldOutcome } from '../metrics.ts';
import { MAX_FOLD_BATCH, foldBatch, type FoldOptions } from './fold.ts';

export type ClaimLoopOptions = FoldOptions & {
  concurrency: number;
  /** How long a paused loop waits before it looks at `busy` again. */
  yieldMs?: number;
  batchSize: number;
  pollMs: number;
  leaseSeconds: number;
};

export type ClaimLoops = { stop(): Promise<void> };

/** Wakes sleeping loops: one per notification, or all of them (stop). The relay uses one too. */
export class Doorbell {
  #sleepers: (() => void)[] = [];
  /** A ring nobody was asleep to hear: the next loop to finish a batch claims again at once. */
  #missed = false;

  ring(): void {
    const sleeper = this.#sleepers.shift();
    if (sleeper) sleeper();
    else this.#missed = true;
  }

  ringAll(): void {
    for (const s of this.#sleepers.splice(0)) s();
  }

  sleep(ms: number): Promise<void> {
    if (this.#missed) {
      this.#missed = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        const i = this.#sleepers.indexOf(wake);
        if (i >= 0) this.#sleepers.splice(i, 1);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#sleepers.push(wake);
    });
  }
}

export async function startClaimLoops(deps: {
  sql: postgres.Sql;
  options: ClaimLoopOptions;
  log: Logger;
  onFold?: (outcome: FoldOutcome, ms: number) => void;
  /**
   * Asked by loop number `loop` (0 to concurrency - 1) before each claim: true while this
   * process's ingest needs the CPU. That loop then claims nothing new (batches in hand are
   * finished), so acks get the CPU; the events wait, stored, until the burst is over.
   */
  busy?: (loop: number) => boolean;
  /** How long a loop just paused for busy(), in seconds. */
  onPause?: (seconds: number) => void;
}): Promise<ClaimLoops> {
  const { sql, options, log } = deps;
  const bell = new Doorbell();
  let stopping = false;

  const listener = await sql.listen(EVENTS_CHANNEL, () => bell.ring());

  const loop = async (n: number) => {
    const workerId = `${hostname()}:${process.pid}:${n}`;
    const wlog = log.child({ worker: workerId });
    let paused = false;
    while (!stopping) {
      if (deps.busy?.(n)) {
        if (!paused) wlog.debug('ingest is busy: this fold loop pauses');
        paused = true;
        // A plain timer, not the doorbell: wake-ups that come meanwhile are kept for later.
        const pausedAt = performance.now();
        await new Promise((r) => setTimeout(r, options.yieldMs ?? 20));
        deps.onPause?.((performance.now() - pausedAt) / 1000);
        continue;
      }
      if (paused) wlog.debug('ingest is no longer busy: this fold loop resumes');
      paused = false;
      let batch: Awaited<ReturnType<typeof claimEvents>> = [];
      try {
        batch = await claimEvents(sql, { limit: options.batchSize, leaseSeconds: options.leaseSeconds, workerId });
      } catch (err) {
        wlog.error({ err }, 'claiming events failed; retrying after the poll interval');
        await bell.sleep(options.pollMs);
        continue;
      }
      // Fold the claim in a few equal transactions of at most MAX_FOLD_BATCH events.
      const chunks = Math.ceil(batch.length / MAX_FOLD_BATCH);
      const size = Math.ceil(batch.length / Math.max(1, chunks));
      for (let i = 0; i < batch.length; i += size) {
        if (stopping) {
          // Finish nothing new: hand the rest back so another process takes them now.
          const rest = batch.slice(i).map((e) => e.id);
          await releaseClaims(sql, rest, workerId).catch((err) =>
            wlog.warn({ err, events: rest.length }, 'could not release claims; their lease will expire'),
          );
          break;
        }
        const chunk = batch.slice(i, i + size);
        const started = performance.now();
        let folded: { outcome: FoldOutcome; ms: number }[];
        try {
          folded = await foldBatch(sql, chunk, options, wlog);
        } catch (err) {
          // Only a bug, or the database gone while recording a failure, gets here; the lease
          // brings the events back.
          wlog.error({ err, ids: chunk.map((e) => e.id) }, 'fold crashed; the events come back when their lease expires');
          const ms = (performance.now() - started) / chunk.length;
          folded = chunk.map(() => ({ outcome: 'retry' as const, ms }));
        }
        for (const f of folded) deps.onFold?.(f.outcome, f.ms);
      }
      if (batch.length < options.batchSize && !stopping) await bell.sleep(options.pollMs);
    }
  };

  const loops = Array.from({ length: options.concurrency }, (_, n) => loop(n));
  log.info({ concurrency: options.concurrency, batchSize: options.batchSize }, 'fold workers started');

  return {
    async stop() {
      stopping = true;
      bell.ringAll();
      await Promise.all(loops);
      await listener.unlisten().catch(() => {});
      log.info('fold workers stopped');
    },
  };
}

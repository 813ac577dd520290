// The reference a fault test compares with: the same stream stored in stream order and folded by
// one worker, one event after the other (the queue order is the stream order).
import type postgres from 'postgres';
import { silentLogger } from '../../src/log.ts';
import { startWorkers } from '../../src/worker/index.ts';
import { testConfig } from './app.ts';
import { waitFor } from '../../scripts/lib/wait.ts';
import { storeEvents, unfinished, type Ev } from './fold.ts';

/** Like drain() with one worker, but with room for a few thousand events on a busy machine. */
export async function foldInOrder(sql: postgres.Sql, events: Ev[], timeoutMs = 60_000): Promise<void> {
  await storeEvents(sql, events);
  const config = testConfig({ WORKER_CONCURRENCY: '1', WORKER_BATCH_SIZE: '100', WORKER_POLL_MS: '20' });
  const workers = await startWorkers({ sql, databaseUrl: '', config, log: silentLogger(), schedules: false });
  try {
    await waitFor(async () => (await unfinished(sql)) === 0, { timeoutMs, what: 'the in-order fold' });
  } finally {
    await workers.stop();
  }
}

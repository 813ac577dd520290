// Shared pieces of the benchmark scripts: a database to run against, closed loops, percentiles
// and a table. The service process and signed deliveries come from test/helpers/service.ts.
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, startEmbeddedPostgres, type Embedded } from '../src/db/embedded.ts';

/** DATABASE_URL when given, else a fresh embedded Postgres with durable (default) settings. */
export async function benchDatabase(): Promise<{ url: string; label: string; stop: () => Promise<void> }> {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, label: 'DATABASE_URL', stop: async () => {} };
  const embedded: Embedded = await startEmbeddedPostgres({
    dir: path.join(tmpdir(), `webhook-inbox-bench-${randomBytes(4).toString('hex')}`),
    port: await freePort(),
    database: 'webhook_inbox_bench',
  });
  return { url: embedded.url, label: 'embedded Postgres (fsync on)', stop: embedded.stop };
}

/** Runs `total` tasks with `concurrency` loops; returns per-task ms and the wall time. */
export async function closedLoop<T>(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<{ results: T[]; seconds: number }> {
  const results: T[] = new Array(total);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return { results, seconds: (performance.now() - started) / 1000 };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function printTable(rows: Record<string, string | number>[]): void {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v ?? ''));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => `| ${vals.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(cols));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
}

/**
 * Open loop: starts task i at start + i/rate whatever earlier tasks are doing, like senders that
 * do not wait for each other. Each task gets its scheduled time, so latency can be measured from
 * when the request was due (no coordinated omission).
 */
export async function openLoop<T>(
  rate: number,
  seconds: number,
  task: (i: number, dueAt: number) => Promise<T>,
): Promise<{ results: T[]; lagMs: number }> {
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const pending: Promise<T>[] = [];
  let worstLag = 0;
  let i = 0;
  while (i < total) {
    const now = performance.now();
    while (i < total && started + (i * 1000) / rate <= now) {
      const dueAt = started + (i * 1000) / rate;
      worstLag = Math.max(worstLag, now - dueAt);
      pending.push(task(i, dueAt));
      i++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return { results: await Promise.all(pending), lagMs: worstLag };
}

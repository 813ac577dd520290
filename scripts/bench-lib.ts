// Shared pieces of the benchmark scripts: a database to run against, the service as a child
// process, signed 5 KB Stripe deliveries, a keep-alive HTTP client, percentiles and a table.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Stripe from 'stripe';
import { stripeEvent } from '../test/helpers/app.ts';
import { freePort, startEmbeddedPostgres, type Embedded } from '../src/db/embedded.ts';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const SECRET = 'whsec_bench_0123456789abcdef0123456789';


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

export type Service = { url: string; child: ChildProcess; stop: () => Promise<void> };

export async function startService(databaseUrl: string, env: Record<string, string> = {}): Promise<Service> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(root, 'src/main.ts')], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      STRIPE_WEBHOOK_SECRET: SECRET,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error('the service did not become ready in 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** A unique Stripe event of about `bytes` bytes, with a valid signature made now. */
export function signedDelivery(bytes = 5000, type = 'customer.updated'): { id: string; body: string; signature: string } {
  const event = stripeEvent({ type }, bytes);
  const body = JSON.stringify(event);
  return { id: event.id as string, body, signature: Stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET }) };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** POSTs one delivery; resolves with the status and the milliseconds to the full response. */
export function deliver(base: string, d: { body: string; signature: string }): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      `${base}/webhooks/stripe`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(d.body),
          'stripe-signature': d.signature,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      },
    );
    req.on('error', () => resolve({ status: 0, ms: performance.now() - started }));
    req.end(d.body);
  });
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

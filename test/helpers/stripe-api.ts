// For tests of what reads Stripe's API: real workers pointed at the fake Stripe, a client of our
// own against it, and graphs compared without the columns that say where a row came from (an API
// read is ordered by when it was read, so its order key differs from the event's it stands for).
import type postgres from 'postgres';
import pino from 'pino';
import { createLogger, silentLogger, type Logger } from '../../src/log.ts';
import { createStripeApi, type StripeApi, type StripeApiOptions } from '../../src/stripe-api/client.ts';
import { startWorkers, type Workers } from '../../src/worker/index.ts';
import { TEST_KEY, type FakeStripe } from './fake-stripe.ts';
import { testConfig } from './app.ts';
import type { Graph } from './fold.ts';

export function testLog(): Logger {
  return process.env.TEST_LOG ? createLogger(process.env.TEST_LOG, { pretty: false }) : silentLogger();
}

/** The environment that points the workers' Stripe API client at the fake. */
export function apiEnv(fake: FakeStripe, extra: Record<string, string> = {}): Record<string, string> {
  return { STRIPE_API_KEY: TEST_KEY, STRIPE_API_BASE: fake.url, PARENT_FETCH_AFTER_S: '0', WORKER_POLL_MS: '20', ...extra };
}

/** Real workers (claim loops, parent fetcher, thin events; no pg-boss) with this environment. */
export async function runWorkers(sql: postgres.Sql, env: Record<string, string>, options: { log?: Logger; observe?: Parameters<typeof startWorkers>[0]['observeStripeApi'] } = {}): Promise<Workers> {
  const config = testConfig({ WORKER_CONCURRENCY: '2', WORKER_BATCH_SIZE: '10', WORKER_POLL_MS: '20', ...env });
  return startWorkers({ sql, databaseUrl: '', config, log: options.log ?? testLog(), schedules: false, observeStripeApi: options.observe });
}

export function testApi(fake: FakeStripe, options: Partial<StripeApiOptions> = {}): StripeApi {
  return createStripeApi({ apiKey: TEST_KEY, apiBase: fake.url, log: pino({ level: 'silent' }), ...options });
}

const PROVENANCE = ['last_event_id', 'last_event_created', 'last_event_rank', 'api_version'];

/** The graph without what says which event or read wrote each row. */
export function withoutProvenance(graph: Graph): Graph {
  const out: Graph = {};
  for (const [table, rows] of Object.entries(graph)) {
    out[table] = (rows as Record<string, unknown>[]).map((row) => Object.fromEntries(Object.entries(row).filter(([k]) => !PROVENANCE.includes(k))));
  }
  return out;
}

/** The tables of two graphs that differ, for a readable failure. */
export function differingTables(a: Graph, b: Graph): string[] {
  return Object.keys({ ...a, ...b }).filter((t) => JSON.stringify(a[t]) !== JSON.stringify(b[t]));
}

export async function waitingLinks(sql: postgres.Sql): Promise<number> {
  const [row] = await sql`select count(*)::int as n from pending_links where unresolvable_reason is null`;
  return row!.n as number;
}

// The one place that reads the environment. It is parsed once by zod at startup and the typed
// Config is passed down; a bad environment fails listing every problem by variable name.
import { z } from 'zod';
import { DEFAULT_RETRY_SCHEDULE, parseRetrySchedule } from './outbox/schedule.ts';
import { parseNetworkList } from './outbox/ssrf.ts';

const list = (name: string) =>
  z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0))
    .refine((secrets) => secrets.every((s) => s.startsWith('whsec_')), {
      message: `${name} takes one or more whsec_... secrets, comma-separated`,
    });

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

// A span of time as people write it: 90s, 10m, 3h, 30d. In seconds.
const SPAN = /^(\d+)\s*(s|m|h|d)$/;
const SPAN_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;
const span = (maxSeconds: number) =>
  z
    .string()
    .regex(SPAN, 'takes a number and a unit: 90s, 10m, 3h or 7d')
    .transform((text) => {
      const [, n, unit] = SPAN.exec(text)!;
      return Number(n) * SPAN_SECONDS[unit as keyof typeof SPAN_SECONDS];
    })
    .refine((seconds) => seconds <= maxSeconds, { message: `at most ${maxSeconds / 86_400} days (Stripe keeps events for 30 days)` });

// How often reconciliation runs, as a pg-boss cron: every N minutes (N divides 60), every N hours
// (N divides 24), or off. Anything else would drift against the clock.
const every = z
  .string()
  .transform((text, ctx) => {
    if (text === 'off') return null;
    const m = /^(\d+)(m|h)$/.exec(text);
    const n = m ? Number(m[1]) : 0;
    if (m && m[2] === 'm' && n >= 1 && n <= 60 && 60 % n === 0) return n === 60 ? '0 * * * *' : `*/${n} * * * *`;
    if (m && m[2] === 'h' && n >= 1 && n <= 24 && 24 % n === 0) return n === 24 ? '0 0 * * *' : `0 */${n} * * *`;
    ctx.addIssue({ code: 'custom', message: 'takes minutes that divide an hour (1m, 5m, 10m, 15m, 30m, 60m), hours that divide a day (1h, 2h, 6h, 12h, 24h), or off' });
    return z.NEVER;
  });

function isApiBase(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.pathname === '/' && !url.search && !url.hash;
  } catch {
    return false;
  }
}

const accounts = z
  .string()
  .transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0))
  .refine((ids) => ids.every((id) => /^acct_\w+$/.test(id)), { message: 'takes acct_... ids, comma-separated' });

// Empty strings count as unset: compose files and shells often export `VAR=`.
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

const withDefault = <T extends z.ZodType>(schema: T, fallback: z.input<T>) =>
  z.preprocess((v) => (v === '' || v === undefined ? fallback : v), schema);

// A duration with a unit (90s, 30m, 24h, 5d), in milliseconds.
const DURATION_UNITS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const duration = (min: number, max: number) =>
  z.string().transform((v, ctx) => {
    const m = /^(\d{1,9})(s|m|h|d)$/.exec(v.trim());
    const ms = m ? Number(m[1]) * DURATION_UNITS[m[2] as keyof typeof DURATION_UNITS] : NaN;
    if (!(ms >= min && ms <= max)) {
      ctx.addIssue({ code: 'custom', message: `expected a duration from ${min / 1000}s to ${max / 86_400_000}d with a unit, like 90s, 30m, 24h or 5d` });
      return z.NEVER;
    }
    return ms;
  });

/** Parses with a function that throws a TypeError naming the problem (the outbox's own parsers). */
const parsedWith = <T>(parse: (text: string) => T) =>
  z.string().transform((v, ctx) => {
    try {
      return parse(v);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });

const envSchema = z.object({
  DATABASE_URL: optional(
    z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL'),
  ),
  HOST: withDefault(z.string(), '0.0.0.0'),
  PORT: withDefault(int(0, 65535), 3000),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: withDefault(int(1000, 290_000), 5000),
  ROLE: withDefault(z.enum(['all', 'api', 'worker']), 'all'),
  LOG_LEVEL: withDefault(z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info'),
  STRIPE_WEBHOOK_SECRET: optional(list('STRIPE_WEBHOOK_SECRET')),
  STRIPE_SIGNATURE_TOLERANCE_S: withDefault(int(1, 86_400), 300),
  WEBHOOK_MAX_BODY_BYTES: withDefault(int(1024, 64 * 1024 * 1024), 1024 * 1024),
  DB_POOL_MAX: withDefault(int(1, 200), 10),
  DB_CONNECT_TIMEOUT_MS: withDefault(int(100, 60_000), 1000),
  DB_STATEMENT_TIMEOUT_MS: withDefault(int(100, 600_000), 1000),
  INGEST_TIMEOUT_MS: withDefault(int(100, 60_000), 1200),
  INGEST_BATCH_MAX_ROWS: withDefault(int(1, 1000), 32),
  INGEST_BATCH_MAX_BYTES: withDefault(int(1024, 64 * 1024 * 1024), 1024 * 1024),
  INGEST_STATEMENTS_IN_FLIGHT: withDefault(int(1, 200), 2),
  EMBEDDED_PG_DIR: withDefault(z.string(), '.data/postgres'),
  EMBEDDED_PG_PORT: withDefault(int(1, 65535), 54329),
  ADMIN_TOKEN: optional(z.string().min(16, 'must be at least 16 characters')),
  WORKER_CONCURRENCY: withDefault(int(0, 64), 4),
  WORKER_BATCH_SIZE: withDefault(int(1, 1000), 50),
  WORKER_POLL_MS: withDefault(int(10, 60_000), 1000),
  WORKER_LEASE_S: withDefault(int(1, 3600), 60),
  WORKER_MAX_ATTEMPTS: withDefault(int(1, 100), 8),
  WORKER_YIELD_IN_FLIGHT: withDefault(int(0, 100_000), 16),
  RETRY_BASE_MS: withDefault(int(1, 3_600_000), 1000),
  RETRY_MAX_MS: withDefault(int(1, 86_400_000), 3_600_000),
  RETENTION_DAYS: withDefault(int(1, 3650), 30),
  RETENTION_BATCH_SIZE: withDefault(int(1, 100_000), 1000),
  ADMIN_STATEMENT_TIMEOUT_MS: withDefault(int(100, 3_600_000), 30_000),
  SHUTDOWN_TIMEOUT_MS: withDefault(int(100, 600_000), 10_000),
  // Stripe's API as the source of truth (parent fetch, reconciliation, backfill, thin events):
  // everything below is off while STRIPE_API_KEY is unset.
  STRIPE_API_KEY: optional(
    z.string().regex(/^(sk|rk)_(test|live)_\w+$/, 'must be a secret (sk_...) or, better, a restricted (rk_...) key with read access'),
  ),
  STRIPE_API_BASE: withDefault(z.string().refine(isApiBase, 'must be an http(s) URL without a path, such as https://api.stripe.com'), 'https://api.stripe.com'),
  STRIPE_API_RPS: withDefault(int(1, 100), 20),
  STRIPE_API_VERSION: optional(z.string().regex(/^\d{4}-\d{2}-\d{2}(\.\w+)?$/, 'must be a Stripe API version such as 2025-03-31.basil')),
  STRIPE_CONNECT_ACCOUNTS: withDefault(accounts, ''),
  STRIPE_THIN_WEBHOOK_SECRET: optional(list('STRIPE_THIN_WEBHOOK_SECRET')),
  PARENT_FETCH_AFTER_S: withDefault(int(0, 30 * 86_400), 60),
  RECONCILE_EVERY: withDefault(every, '10m'),
  RECONCILE_LOOKBACK: withDefault(span(30 * 86_400), '3d'),
  // The outbox (README "Subscribe to changes", docs/outbox.md).
  OUTBOX_TIMEOUT_MS: withDefault(int(100, 120_000), 10_000),
  OUTBOX_RETRY_SCHEDULE: withDefault(parsedWith(parseRetrySchedule), DEFAULT_RETRY_SCHEDULE),
  OUTBOX_BREAKER_FAILURES: withDefault(int(1, 10_000), 10),
  OUTBOX_BREAKER_FAILURE_RATE: withDefault(z.coerce.number().gt(0).max(1), 0.5),
  OUTBOX_BREAKER_MIN_REQUESTS: withDefault(int(1, 1_000_000), 20),
  OUTBOX_BREAKER_WINDOW: withDefault(duration(1000, 86_400_000), '5m'),
  OUTBOX_BREAKER_COOL_DOWN: withDefault(duration(100, 86_400_000), '60s'),
  OUTBOX_BREAKER_MAX_COOL_DOWN: withDefault(duration(100, 7 * 86_400_000), '1h'),
  OUTBOX_DISABLE_AFTER: withDefault(duration(1000, 365 * 86_400_000), '5d'),
  OUTBOX_ROTATION_OVERLAP: withDefault(duration(0, 30 * 86_400_000), '24h'),
  OUTBOX_ALLOW_NETWORKS: withDefault(parsedWith(parseNetworkList), ''),
  OUTBOX_ALLOW_HTTP: withDefault(z.stringbool(), 'false'),
  OUTBOX_CONCURRENCY: withDefault(int(0, 10_000), 64),
  OUTBOX_SUBSCRIPTION_CONCURRENCY: withDefault(int(1, 10_000), 16),
  OUTBOX_LEASE_S: withDefault(int(1, 3600), 60),
  OUTBOX_POLL_MS: withDefault(int(10, 60_000), 1000),
});

/** Every variable the service reads (besides WEBHOOK_SECRET_<NAME>). */
export const CONFIG_VARIABLES = Object.keys(envSchema.shape);

// Other HMAC sources are named by the variable: WEBHOOK_SECRET_ACME=whsec_... serves
// POST /webhooks/acme with Standard Webhooks signatures.
const SOURCE_VAR = /^WEBHOOK_SECRET_([A-Z0-9_]+)$/;

export type Config = z.infer<typeof envSchema> & {
  /** Standard Webhooks sources: source name -> secrets (several during rotation). */
  sources: Record<string, string[]>;
};

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = [];
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${issue.path.join('.')}: ${issue.message}`);
    }
  }

  const sources: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(env)) {
    const match = SOURCE_VAR.exec(key);
    if (!match || value === undefined || value === '') continue;
    const name = match[1]!.toLowerCase().replaceAll('_', '-');
    if (name === 'stripe') {
      problems.push(`${key}: Stripe's secret goes in STRIPE_WEBHOOK_SECRET`);
      continue;
    }
    if (name === 'stripe-thin') {
      problems.push(`${key}: the secret of Stripe's thin-event destination goes in STRIPE_THIN_WEBHOOK_SECRET`);
      continue;
    }
    const result = list(key).safeParse(value);
    if (result.success) sources[name] = result.data;
    else problems.push(`${key}: ${result.error.issues[0]?.message}`);
  }

  // A lease that ran out while its request is still waiting for an answer would let another relay
  // send the next version of the object before this one is answered.
  if (parsed.success && parsed.data.OUTBOX_LEASE_S * 1000 < parsed.data.OUTBOX_TIMEOUT_MS + 5000) {
    problems.push(`OUTBOX_LEASE_S: must be at least OUTBOX_TIMEOUT_MS + 5 s (${Math.ceil(parsed.data.OUTBOX_TIMEOUT_MS / 1000) + 5})`);
  }

  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return { ...parsed.data, sources };
}

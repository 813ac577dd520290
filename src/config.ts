// The one place that reads the environment. It is parsed once by zod at startup and the typed
// Config is passed down; a bad environment fails listing every problem by variable name.
import { z } from 'zod';

const list = (name: string) =>
  z
    .string()
    .transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0))
    .refine((secrets) => secrets.every((s) => s.startsWith('whsec_')), {
      message: `${name} takes one or more whsec_... secrets, comma-separated`,
    });

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

// Empty strings count as unset: compose files and shells often export `VAR=`.
const optional = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => (v === '' ? undefined : v), schema.optional());

const withDefault = <T extends z.ZodType>(schema: T, fallback: z.input<T>) =>
  z.preprocess((v) => (v === '' || v === undefined ? fallback : v), schema);

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
    const result = list(key).safeParse(value);
    if (result.success) sources[name] = result.data;
    else problems.push(`${key}: ${result.error.issues[0]?.message}`);
  }

  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  return { ...parsed.data, sources };
}

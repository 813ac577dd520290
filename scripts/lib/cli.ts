// What npm run reconcile and npm run backfill share: configuration, database, Stripe client, a
// progress line on a TTY, and Ctrl-C that stops after the work in flight. Exit codes: 0 done,
// 1 failed or interrupted (run it again), 2 bad arguments or configuration.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import pino from 'pino';
import type postgres from 'postgres';
import { z } from 'zod';
import { ConfigError, loadConfig, type Config } from '../../src/config.ts';
import { filterFields } from '../../src/db/event-filter.ts';
import { connect } from '../../src/db/client.ts';
import { openDatabase as open, type OpenedDatabase } from '../../src/db/open.ts';
import { pendingMigrations } from '../../src/db/migrate.ts';
import type { Logger } from '../../src/log.ts';
import type { StripeApi } from '../../src/stripe-api/client.ts';
import { stripeApiOf } from '../../src/stripe-api/from-config.ts';

export class UsageError extends Error {}

export const out = (line: string) => process.stdout.write(`${line}\n`);
export const tty = process.stderr.isTTY === true;
export const num = (n: number) => n.toLocaleString('en-US');

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m}m${String(Math.round(seconds % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** On a TTY: one line on stderr, rewritten in place. Elsewhere nothing (the summary says it all). */
export function progress(line: string): void {
  if (tty) process.stderr.write(`\r\x1b[K${line}`);
}

export function clearProgress(): void {
  if (tty) process.stderr.write('\r\x1b[K');
}

/** The configuration and a Stripe client, or the exit code after saying what is wrong. */
export function configure(tool: string): { config: Config; api: StripeApi; log: Logger } | number {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${tool}: ${err.message}\n`);
    return 2;
  }
  // Warnings and errors only, on stderr: stdout is the tool's own summary.
  const log = pino({ level: process.env.LOG_LEVEL ? config.LOG_LEVEL : 'warn', base: { service: 'webhook-inbox' } }, pino.destination({ fd: 2, sync: true }));
  const api = stripeApiOf(config, log);
  if (!api) {
    process.stderr.write(`${tool}: STRIPE_API_KEY is not set: give it a restricted key (rk_...) with read access (see README, "Stripe's API as the source of truth")\n`);
    return 2;
  }
  return { config, api, log };
}

export type Database = { sql: postgres.Sql; close: () => Promise<void> };

/**
 * DATABASE_URL, or the embedded Postgres as npm start uses it (already running, or started here),
 * migrated: a tool never migrates by itself. The exit code after saying why when it cannot.
 */
export async function openDatabase(tool: string, config: Config): Promise<Database | number> {
  let opened: OpenedDatabase | undefined;
  let sql: postgres.Sql;
  try {
    opened = await open(config, { reuseRunning: true });
    sql = connect(opened.url, { max: 4, connectTimeoutMs: 5000, statementTimeoutMs: 600_000, applicationName: `webhook-inbox-${tool}` });
    await sql`select 1`;
  } catch (err) {
    process.stderr.write(`${tool}: cannot reach the database (${(err as Error).message}); check DATABASE_URL\n`);
    await opened?.embedded?.stop();
    return 1;
  }
  const close = async () => {
    await sql.end({ timeout: 5 });
    await opened?.embedded?.stop();
  };
  const pending = await pendingMigrations(sql);
  if (pending.length > 0) {
    process.stderr.write(`${tool}: the database lacks migrations ${pending.join(', ')}: run npm run migrate (or start the service) first\n`);
    await close();
    return 1;
  }
  return { sql, close };
}

/** node:util parseArgs, strict, with its complaint as a UsageError (exit 2). */
export function parseFlags<O extends ParseArgsConfig['options']>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: false, options }).values;
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
}

/** --since and the like: an age (90m, 24h, 3d), a date, or an ISO-8601 time, as the admin filters take them. */
export function parseTime(flag: string, text: string): Date {
  const parsed = z.object({ at: filterFields.from }).safeParse({ at: text });
  if (!parsed.success) throw new UsageError(`${flag}: ${parsed.error.issues[0]!.message}`);
  return new Date(parsed.data.at!);
}

export type ToolContext = { config: Config; api: StripeApi; log: Logger; sql: postgres.Sql; signal: AbortSignal };

/**
 * The life of a tool: parse the arguments (a UsageError exits 2), print --help, read the
 * configuration and open the database, run, close, and exit with what `run` returned (1 if it threw).
 */
export async function runTool<P>(tool: string, help: string, parse: (argv: string[]) => P | 'help', run: (plan: P, ctx: ToolContext) => Promise<number>): Promise<never> {
  process.exit(await main());

  async function main(): Promise<number> {
    let plan: P | 'help';
    try {
      plan = parse(process.argv.slice(2));
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      process.stderr.write(`${tool}: ${err.message}\nTry: npm run ${tool} -- --help\n`);
      return 2;
    }
    if (plan === 'help') {
      out(help.trimEnd());
      return 0;
    }
    const setup = configure(tool);
    if (typeof setup === 'number') return setup;
    const db = await openDatabase(tool, setup.config);
    if (typeof db === 'number') return db;
    try {
      return await run(plan, { ...setup, sql: db.sql, signal: interruptible() });
    } catch (err) {
      clearProgress();
      process.stderr.write(`${tool}: failed: ${(err as Error).message}\nRun the same command again to carry on.\n`);
      return 1;
    } finally {
      await db.close();
    }
  }
}

/** Ctrl-C or SIGTERM: stop after the work in flight (the signal); a second Ctrl-C exits at once. */
export function interruptible(): AbortSignal {
  const abort = new AbortController();
  process.on('SIGINT', () => {
    if (abort.signal.aborted) process.exit(1);
    abort.abort();
  });
  process.on('SIGTERM', () => abort.abort());
  return abort.signal;
}

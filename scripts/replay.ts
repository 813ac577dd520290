// `npm run replay -- ...`: put events back to be folded again (by id, or by status, source, type
// and time window), or import Stripe events from an NDJSON file. --dry-run changes nothing.
// Exit codes: 0 done, 1 failed or interrupted, 2 bad arguments. Run with --help for the flags.
import { createReadStream, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type postgres from 'postgres';
import { z } from 'zod';
import { ConfigError, loadConfig, type Config } from '../src/config.ts';
import { EVENT_REF_HELP, checkWindow, filterFields, isEmptyFilter, parseEventRef, type EventFilter, type EventRef } from '../src/db/event-filter.ts';
import type { EventItem } from '../src/db/event-lookup.ts';
import { countReplayable, replayEvent, replayEvents, sampleReplayable, type ReplayProgress } from '../src/db/replay.ts';
import { connect } from '../src/db/client.ts';
import type { Embedded } from '../src/db/embedded.ts';
import { openDatabase } from '../src/db/open.ts';
import type { NewEvent } from '../src/db/events.ts';
import { countStored, insertEvents, parseEventLine } from '../src/db/import.ts';
import { pendingMigrations } from '../src/db/migrate.ts';

const HELP = `Usage: npm run replay -- [options]

Puts events back to be folded again: status RECEIVED, due now, attempts 0 (last_error is kept).
Events a worker holds right now are left alone. Replaying an event twice is harmless, so a run
can be interrupted (Ctrl-C) and started again. Or, with --file, imports Stripe events.

Choose events (at least one; they combine with AND):
  --id <ref>          One event: the surrogate id (12345), source:event_id (stripe:evt_1Abc), or
                      a Stripe evt_ id. Repeat for several. Not combined with the filters below.
  --status <list>     RECEIVED, PROCESSED, FAILED or IGNORED; several comma-separated.
  --source <name>     stripe, or a Standard Webhooks source name.
  --type <pattern>    An event type (invoice.paid) or a prefix pattern (invoice.*; quote it).
  --from <time>       received_at at or after: ISO-8601 with an offset (2024-05-01T18:00:00Z),
                      a date (2024-05-01, midnight UTC), or an age (90m, 24h, 7d).
  --to <time>         received_at before; same forms as --from.
  --limit <n>         At most n events, the oldest first.

Or import:
  --file <path>       Stripe events, one JSON event per line (NDJSON), stored as RECEIVED and
                      deduplicated like webhooks: importing the same file twice adds nothing.

Options:
  --dry-run           Show how many events match (or how many lines are new) and a sample;
                      change nothing.
  --batch-size <n>    Events per statement (default 500).
  -h, --help          This text.

The database is DATABASE_URL, or the embedded Postgres (EMBEDDED_PG_DIR, EMBEDDED_PG_PORT) when it
is unset, as for npm start.

Examples:
  npm run replay -- --status FAILED --from 24h --dry-run     what failed in the last day
  npm run replay -- --status FAILED --from 2024-05-01T18:00:00Z --to 2024-05-02T06:00:00Z
  npm run replay -- --type 'invoice.*' --from 7d --limit 1000
  npm run replay -- --id stripe:evt_1PqRsT2eZvKYlo2C --id 12345
  npm run replay -- --file events.ndjson --dry-run           then without --dry-run to import

Exit status: 0 done, 1 failed or interrupted (run it again), 2 bad arguments.
`;

class UsageError extends Error {}

type Plan =
  | { mode: 'ids'; refs: { text: string; ref: EventRef }[]; dryRun: boolean }
  | { mode: 'filter'; filter: EventFilter; limit?: number; dryRun: boolean; batchSize: number }
  | { mode: 'file'; path: string; dryRun: boolean; batchSize: number };

const positive = (name: string, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number({ error: `${name}: expected a whole number` }).int(`${name}: expected a whole number`).min(1, `${name}: must be at least 1`).max(max, `${name}: at most ${max}`);

function parseCommandLine(argv: string[]): Plan | 'help' {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        id: { type: 'string', multiple: true },
        status: { type: 'string' },
        source: { type: 'string' },
        type: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        limit: { type: 'string' },
        file: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'batch-size': { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
  if (values.help) return 'help';
  const dryRun = values['dry-run'];
  const batch = positive('--batch-size', 10_000).safeParse(values['batch-size'] ?? '500');
  if (!batch.success) throw new UsageError(batch.error.issues[0]!.message);
  const filterGiven = ['status', 'source', 'type', 'from', 'to', 'limit'].filter((k) => values[k as keyof typeof values] !== undefined);

  if (values.file !== undefined) {
    if (values.id || filterGiven.length > 0) throw new UsageError(`--file imports a file: it does not combine with --id or --${filterGiven[0] ?? 'id'}`);
    try {
      if (!statSync(values.file).isFile()) throw new Error();
    } catch {
      throw new UsageError(`--file: cannot read ${values.file}`);
    }
    return { mode: 'file', path: values.file, dryRun, batchSize: batch.data };
  }

  if (values.id) {
    if (filterGiven.length > 0) throw new UsageError(`--id names events itself: drop --${filterGiven[0]}, or drop --id`);
    const refs = values.id.map((text) => {
      const ref = parseEventRef(text);
      if (!ref) throw new UsageError(`--id ${text}: ${EVENT_REF_HELP}`);
      return { text, ref };
    });
    return { mode: 'ids', refs, dryRun };
  }

  const schema = z.strictObject({ ...filterFields, limit: positive('--limit').optional() }).superRefine(checkWindow);
  const parsed = schema.safeParse({
    status: values.status,
    source: values.source,
    type: values.type,
    from: values.from,
    to: values.to,
    limit: values.limit,
  });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0]);
    throw new UsageError(issue.message.startsWith('--') ? issue.message : `--${name}: ${issue.message}`);
  }
  const { limit, ...filter } = parsed.data;
  if (isEmptyFilter(filter)) {
    throw new UsageError('choose events: give --id, --status, --source, --type, --from or --to (to replay every event: --from 1970-01-01)');
  }
  return { mode: 'filter', filter, limit, dryRun, batchSize: batch.data };
}

// ---- Output ------------------------------------------------------------------------------------

const out = (line: string) => process.stdout.write(`${line}\n`);
const tty = process.stderr.isTTY === true;
const num = (n: number) => n.toLocaleString('en-US');

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  const m = Math.floor(seconds / 60);
  return m < 60 ? `${m}m${String(Math.round(seconds % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** On a TTY: one line on stderr, rewritten in place: count, share done, rate, ETA. */
function progressLine(label: string, count: number, fraction: number, startedMs: number): void {
  if (!tty) return;
  const seconds = (Date.now() - startedMs) / 1000;
  const rate = count / Math.max(seconds, 0.001);
  const f = Math.min(1, Math.max(0, fraction));
  const eta = f > 0 ? (seconds * (1 - f)) / f : Infinity;
  process.stderr.write(`\r\x1b[K${label} (${Math.floor(f * 100)}%)  ${num(Math.round(rate))}/s  ETA ${duration(eta)}`);
}

function clearProgress(): void {
  if (tty) process.stderr.write('\r\x1b[K');
}

function printSample(items: EventItem[]): void {
  if (items.length === 0) return;
  const rows = items.map((e) => [
    e.id,
    e.received_at.toISOString(),
    `${e.source}:${e.event_id}`,
    e.type,
    e.status,
    String(e.attempts),
    (e.last_error ?? '').replace(/\s+/g, ' ').slice(0, 60),
  ]);
  const head = ['id', 'received_at', 'event', 'type', 'status', 'attempts', 'last_error'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const r of [head, ...rows]) out(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());
}

// ---- Database ----------------------------------------------------------------------------------

async function openPool(config: Config): Promise<{ sql: postgres.Sql; embedded?: Embedded }> {
  const { url, embedded } = await openDatabase(config, { reuseRunning: true });
  return { sql: connect(url, { max: 2, connectTimeoutMs: 5000, statementTimeoutMs: 600_000, applicationName: 'webhook-inbox-replay' }), embedded };
}

// ---- Modes -------------------------------------------------------------------------------------

async function replayIds(sql: postgres.Sql, plan: Extract<Plan, { mode: 'ids' }>): Promise<number> {
  let failures = 0;
  for (const { text, ref } of plan.refs) {
    if (plan.dryRun) {
      const [row] = await sql<{ id: string; status: string; leased: boolean }[]>`
        select id::text, status, (status = 'RECEIVED' and locked_until > now()) as leased from events
         where ${'id' in ref ? sql`id = ${ref.id}` : sql`source = ${ref.source} and event_id = ${ref.eventId}`}`;
      if (!row) {
        failures++;
        out(`${text}: no such event`);
      } else out(`${text}: would replay (id ${row.id}, ${row.status}${row.leased ? ', but a worker holds it right now' : ''})`);
      continue;
    }
    const done = await replayEvent(sql, ref);
    if (done.outcome === 'replayed') out(`${text}: replayed (id ${done.id})`);
    else {
      failures++;
      out(done.outcome === 'missing' ? `${text}: no such event` : `${text}: a worker is folding it right now; run again in a minute`);
    }
  }
  out(`${plan.dryRun ? 'dry run: ' : ''}${plan.refs.length - failures} of ${plan.refs.length} ${plan.dryRun ? 'would be replayed' : 'replayed'}`);
  return failures > 0 ? 1 : 0;
}

async function replayFiltered(sql: postgres.Sql, plan: Extract<Plan, { mode: 'filter' }>, signal: AbortSignal): Promise<number> {
  if (plan.dryRun) {
    const [matched, sample] = await Promise.all([
      countReplayable(sql, plan.filter, plan.limit),
      sampleReplayable(sql, plan.filter, Math.min(10, plan.limit ?? 10)),
    ]);
    out(`dry run: ${num(matched)} event${matched === 1 ? '' : 's'} would be replayed (oldest first; events a worker holds right now are not counted)`);
    printSample(sample);
    if (matched > sample.length && sample.length > 0) out(`... and ${num(matched - sample.length)} more`);
    return 0;
  }
  const started = Date.now();
  const done = await replayEvents(sql, plan.filter, {
    batchSize: plan.batchSize,
    limit: plan.limit,
    signal,
    onProgress: (p: ReplayProgress) => progressLine(`replayed ${num(p.replayed)} of ${num(p.total)}`, p.replayed, p.scanned / Math.max(p.total, 1), started),
  });
  clearProgress();
  const seconds = (Date.now() - started) / 1000;
  const rate = Math.round(done.replayed / Math.max(seconds, 0.001));
  if (done.interrupted) {
    out(`interrupted: replayed ${num(done.replayed)} of ${num(done.total)} matching events; run the same command again to carry on (replaying an event twice is harmless)`);
    return 1;
  }
  const skipped = done.scanned - done.replayed;
  out(
    `replayed ${num(done.replayed)} event${done.replayed === 1 ? '' : 's'} in ${duration(seconds)} (${num(rate)}/s)` +
      (skipped > 0 ? `; ${num(skipped)} skipped because a worker took them meanwhile` : ''),
  );
  return 0;
}

async function importFile(sql: postgres.Sql, plan: Extract<Plan, { mode: 'file' }>, signal: AbortSignal): Promise<number> {
  const size = statSync(plan.path).size;
  const stream = createReadStream(plan.path);
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  const started = Date.now();
  const bad: string[] = [];
  const seen = new Set<string>();
  let lineNo = 0;
  let read = 0;
  let inserted = 0;
  let duplicates = 0;
  let batch: NewEvent[] = [];

  const flush = async () => {
    if (batch.length === 0) return;
    if (plan.dryRun) {
      // New = not stored yet and not earlier in the file.
      const ids = [...new Set(batch.map((e) => e.eventId))].filter((id) => !seen.has(id));
      for (const id of ids) seen.add(id);
      const fresh = ids.length - (await countStored(sql, 'stripe', ids));
      inserted += fresh;
      duplicates += batch.length - fresh;
    } else {
      const n = await insertEvents(sql, batch);
      inserted += n;
      duplicates += batch.length - n;
    }
    read += batch.length;
    batch = [];
    progressLine(`${plan.dryRun ? 'checked' : 'imported'} ${num(read)} events`, read, stream.bytesRead / Math.max(size, 1), started);
  };

  for await (const line of lines) {
    lineNo++;
    if (signal.aborted) break;
    if (line.trim() === '') continue;
    const parsed = parseEventLine(line);
    if ('error' in parsed) {
      bad.push(`line ${lineNo}: ${parsed.error}`);
      continue;
    }
    batch.push(parsed.event);
    if (batch.length >= plan.batchSize) await flush();
  }
  if (!signal.aborted) await flush();
  clearProgress();

  for (const b of bad.slice(0, 20)) process.stderr.write(`replay: ${b}\n`);
  if (bad.length > 20) process.stderr.write(`replay: ... and ${bad.length - 20} more bad lines\n`);
  const seconds = (Date.now() - started) / 1000;
  const summary = plan.dryRun
    ? `dry run: ${num(read)} events read, ${num(inserted)} would be new, ${num(duplicates)} already stored`
    : `imported ${num(inserted)} new events (${num(duplicates)} already stored) from ${num(read)} read in ${duration(seconds)}`;
  out(`${summary}${bad.length > 0 ? `; ${num(bad.length)} bad lines skipped (see above)` : ''}`);
  if (signal.aborted) {
    out('interrupted: run the same command again to carry on (lines already imported are skipped as duplicates)');
    return 1;
  }
  return bad.length > 0 ? 1 : 0;
}

// ---- Main --------------------------------------------------------------------------------------

async function main(): Promise<number> {
  let plan: Plan | 'help';
  try {
    plan = parseCommandLine(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`replay: ${err.message}\nTry: npm run replay -- --help\n`);
    return 2;
  }
  if (plan === 'help') {
    out(HELP.trimEnd());
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`replay: ${err.message}\n`);
    return 2;
  }

  let db: Awaited<ReturnType<typeof openPool>>;
  try {
    db = await openPool(config);
    await db.sql`select 1`;
    const pending = await pendingMigrations(db.sql);
    if (pending.length > 0) {
      process.stderr.write(`replay: the database lacks migrations ${pending.join(', ')}: run npm run migrate (or start the service) first\n`);
      await db.sql.end({ timeout: 1 });
      await db.embedded?.stop();
      return 1;
    }
  } catch (err) {
    process.stderr.write(`replay: cannot reach the database (${(err as Error).message}); check DATABASE_URL\n`);
    return 1;
  }

  // Ctrl-C: finish the batch in flight, report, and exit 1; a second Ctrl-C exits at once.
  const abort = new AbortController();
  process.on('SIGINT', () => {
    if (abort.signal.aborted) process.exit(1);
    abort.abort();
  });
  process.on('SIGTERM', () => abort.abort());

  try {
    if (plan.mode === 'ids') return await replayIds(db.sql, plan);
    if (plan.mode === 'filter') return await replayFiltered(db.sql, plan, abort.signal);
    return await importFile(db.sql, plan, abort.signal);
  } catch (err) {
    clearProgress();
    process.stderr.write(`replay: failed: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await db.sql.end({ timeout: 5 });
    await db.embedded?.stop();
  }
}

process.exit(await main());

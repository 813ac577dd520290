// `npm run backfill -- ...`: list Stripe objects from the API, parents first, and fold them as
// snapshots read now, so a new install starts with its whole graph linked. Resumable: the cursor
// is stored after every object. --dry-run only counts. Run with --help for the flags.
import { NOT_LISTABLE, backfillTables, orderTables, runBackfill, type BackfillProgress } from '../src/worker/backfill.ts';
import { UsageError, clearProgress, parseFlags, duration, num, out, parseTime, progress, runTool } from './lib/cli.ts';

/** Words filled into lines of at most 100 characters, each indented. */
function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && indent + line.length + 1 + word.length > 100) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines.map((l) => ' '.repeat(indent) + l).join('\n');
}

const HELP = `Usage: npm run backfill -- [options]

Lists objects from Stripe's API (GET /v1/customers, ...), parents first, and folds each one into
its table as a snapshot read now: the same fold as an event's, so a webhook newer than the read
still wins and an older one does not overwrite it. Every read is stored as an events row of
source stripe-api (type <object>.fetched). A new install then starts with its whole graph linked
instead of months of links waiting for parents that were created before the endpoint existed.

It reads with STRIPE_API_KEY (a restricted key needs read access to each object it lists) at
STRIPE_API_RPS requests per second, 100 objects a request. Ctrl-C stops after the object in
flight; the same command carries on where it stopped (its cursor is in backfill_runs), also after
a crash. Once a run has finished, the same command starts a new one.

Options:
  --objects <list>    Tables to fill, comma-separated, in any order (they are filled parents
                      first). Default: all of them:
${wrap(backfillTables().join(', '), 24)}
                      Not listable on their own:
${wrap(Object.entries(NOT_LISTABLE).map(([t, why]) => `${t}: ${why}.`).join(' '), 24)}
  --since <time>      Only objects created at or after: a date (2024-05-01), an ISO-8601 time
                      with an offset, or an age (90m, 24h, 30d).
  --account <acct_>   Read a connected account's objects (Stripe-Account).
  --dry-run           List and count, per table, how many objects Stripe has and how many the
                      database has already; fold nothing. (It reads every page.)
  -h, --help          This text.

The database is DATABASE_URL, or the embedded Postgres (EMBEDDED_PG_DIR, EMBEDDED_PG_PORT) when it
is unset, as for npm start.

Examples:
  npm run backfill -- --dry-run                                   how much there is
  npm run backfill -- --objects customers,products,prices,subscriptions,invoices
  npm run backfill -- --since 2024-01-01
  npm run backfill -- --account acct_1Abc --objects customers,charges

Exit status: 0 done, 1 failed or interrupted (run it again to carry on), 2 bad arguments or configuration.
`;

type Plan = { tables: string[]; since?: Date; account?: string; dryRun: boolean };

function parseCommandLine(argv: string[]): Plan | 'help' {
  const values = parseFlags(argv, {
    objects: { type: 'string' },
    since: { type: 'string' },
    account: { type: 'string' },
    'dry-run': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  const names = values.objects === undefined ? backfillTables() : values.objects.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new UsageError('--objects: name at least one table, e.g. customers,invoices');
  const ordered = orderTables(names);
  if ('error' in ordered) throw new UsageError(`--objects: ${ordered.error}`);
  const since = values.since === undefined ? undefined : parseTime('--since', values.since);
  if (values.account !== undefined && !/^acct_\w+$/.test(values.account)) throw new UsageError(`--account ${values.account}: expected an acct_... id`);
  return { tables: ordered.tables, since, account: values.account, dryRun: values['dry-run'] };
}

/** count, rate, and how far back in time the list has come; with --since, the share done and an ETA. */
function progressText(p: BackfillProgress, since: Date | undefined, dryRun: boolean): string {
  const seconds = (Date.now() - p.startedAt) / 1000;
  const rate = p.countedHere / Math.max(seconds, 0.001);
  let text = `${p.table}: ${num(p.count)} ${dryRun ? 'listed' : 'folded'}  ${num(Math.round(rate))}/s`;
  if (p.oldest) text += `  back to ${p.oldest.toISOString().slice(0, 10)}`;
  // Lists go newest first: with a start date, how far back the list has come is the share done.
  if (since && p.oldest) {
    const span = Date.now() - since.getTime();
    const f = Math.min(1, Math.max(0, (Date.now() - p.oldest.getTime()) / Math.max(span, 1)));
    text += ` (${Math.floor(f * 100)}%)  ETA ${f > 0 ? duration((seconds * (1 - f)) / f) : '?'}`;
  }
  return text;
}

await runTool('backfill', HELP, parseCommandLine, async (plan, { api, log, sql, signal }) => {
  const { dryRun, since } = plan;
  const started = Date.now();
  const report = await runBackfill({
    sql,
    api,
    log,
    tables: plan.tables,
    account: plan.account,
    since,
    dryRun,
    signal,
    onProgress: (p) => progress(progressText(p, since, dryRun)),
    onTable: (p) => {
      clearProgress();
      const seconds = (Date.now() - p.startedAt) / 1000;
      out(
        dryRun
          ? `${p.table}: ${num(p.count)} listed, ${num(p.existing)} already in the database`
          : `${p.table}: ${num(p.count)} folded (${num(p.countedHere)} in ${duration(seconds)}, ${num(Math.round(p.countedHere / Math.max(seconds, 0.001)))}/s)`,
      );
    },
  });
  clearProgress();
  const total = Object.values(report.counts).reduce((n, c) => n + c, 0);
  if (report.interrupted) {
    out(`interrupted: ${num(total)} objects folded so far (run ${report.run}); run the same command again to carry on`);
    return 1;
  }
  if (dryRun) {
    const existing = Object.values(report.existing).reduce((n, c) => n + c, 0);
    out(`dry run: ${num(total)} objects listed, ${num(existing)} already in the database; nothing folded`);
  } else {
    out(`${report.resumed ? 'resumed and finished' : 'finished'} run ${report.run}: ${num(total)} objects folded in ${duration((Date.now() - started) / 1000)}` + (report.ignored > 0 ? `; ${num(report.ignored)} listed objects were not folded (see the log)` : ''));
  }
  return 0;
});

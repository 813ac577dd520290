// `npm run reconcile -- ...`: by hand, what the reconcile-events schedule does every RECONCILE_EVERY:
// list Stripe's Events API and store the events no webhook delivered (marked recovered_at), for the
// workers to fold. --dry-run only counts them. Run with --help for the flags.
import { reconcileEvents, SETTLE_S, type ReconcileReport } from '../src/worker/reconcile.ts';
import { UsageError, clearProgress, parseFlags, duration, num, out, parseTime, progress, runTool } from './lib/cli.ts';

const HELP = `Usage: npm run reconcile -- [options]

Lists the events Stripe's Events API has (GET /v1/events) and stores those no webhook delivered,
exactly as a delivery is stored (deduplicated by event id), with recovered_at set so they can be
told apart; the workers then fold them. Stripe keeps events for 30 days. It reads with
STRIPE_API_KEY (a restricted key needs "Events: read") at STRIPE_API_RPS requests per second.

Without --since it carries on from where the last run (or the reconcile-events schedule) stopped,
and moves that cursor; the first run looks back RECONCILE_LOOKBACK. Events of the last ${SETTLE_S} s
are left to the next run (their webhook is normally on its way).

Options:
  --since <time>      List from here instead of the cursor: an age (90m, 24h, 3d), a date
                      (2024-05-01, midnight UTC) or an ISO-8601 time with an offset. At most 30 days.
  --account <acct_>   Only this connected account (Stripe-Account), instead of the platform and
                      every account in STRIPE_CONNECT_ACCOUNTS. Repeat for several; "platform"
                      names the platform itself.
  --dry-run           Count the events that are missing; store nothing, move no cursor.
  -h, --help          This text.

The database is DATABASE_URL, or the embedded Postgres (EMBEDDED_PG_DIR, EMBEDDED_PG_PORT) when it
is unset, as for npm start.

Examples:
  npm run reconcile -- --since 3d --dry-run       how many events of the last 3 days never arrived
  npm run reconcile -- --since 3d                 store them
  npm run reconcile                               what the schedule does
  npm run reconcile -- --account acct_1Abc --since 24h

Exit status: 0 done, 1 failed or interrupted (run it again), 2 bad arguments or configuration.
`;

type Plan = { since?: Date; accounts?: string[]; dryRun: boolean };

const MAX_SINCE_MS = 30 * 86_400_000;

function parseCommandLine(argv: string[]): Plan | 'help' {
  const values = parseFlags(argv, {
    since: { type: 'string' },
    account: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (values.help) return 'help';
  let since: Date | undefined;
  if (values.since !== undefined) {
    since = parseTime('--since', values.since);
    if (Date.now() - since.getTime() > MAX_SINCE_MS) throw new UsageError('--since: at most 30 days ago (Stripe keeps events for 30 days)');
    if (since.getTime() > Date.now()) throw new UsageError('--since: must be in the past');
  }
  const accounts = values.account;
  for (const a of accounts ?? []) {
    if (a !== 'platform' && !/^acct_\w+$/.test(a)) throw new UsageError(`--account ${a}: expected an acct_... id, or platform`);
  }
  return { since, accounts, dryRun: values['dry-run'] };
}

function summary(r: ReconcileReport, dryRun: boolean): string {
  const window = `${r.since.toISOString()} to ${r.until.toISOString()}`;
  const what = dryRun ? `${num(r.missing)} missing` : `${num(r.missing)} recovered`;
  const state = r.error ? `; FAILED: ${r.error}` : r.complete ? '' : '; interrupted';
  return `${r.scope}: ${num(r.listed)} events listed (${window}), ${what}${state}`;
}

await runTool('reconcile', HELP, parseCommandLine, async (plan, { config, api, log, sql, signal }) => {
  const started = Date.now();
  // --account platform is the platform; any other --account replaces STRIPE_CONNECT_ACCOUNTS.
  const chosen = plan.accounts;
  const reports = await reconcileEvents({
    sql,
    api,
    log,
    lookbackSeconds: config.RECONCILE_LOOKBACK,
    accounts: chosen ? chosen.filter((a) => a !== 'platform') : config.STRIPE_CONNECT_ACCOUNTS,
    platform: !chosen || chosen.includes('platform'),
    since: plan.since,
    dryRun: plan.dryRun,
    signal,
    onPage: (scope, listed, missing, oldest) => {
      const seconds = (Date.now() - started) / 1000;
      progress(`${scope}: ${num(listed)} events listed, ${num(missing)} ${plan.dryRun ? 'missing' : 'recovered'}, back to ${oldest?.toISOString() ?? '?'}  ${num(Math.round(listed / Math.max(seconds, 0.001)))}/s`);
    },
  });
  clearProgress();
  for (const r of reports) out(summary(r, plan.dryRun));
  const total = reports.reduce((n, r) => n + r.missing, 0);
  out(
    plan.dryRun
      ? `dry run: ${num(total)} event${total === 1 ? '' : 's'} missing; nothing stored (run again without --dry-run to store them)`
      : `${num(total)} event${total === 1 ? '' : 's'} recovered in ${duration((Date.now() - started) / 1000)}; the workers fold them`,
  );
  if (signal.aborted) {
    out('interrupted: run the same command again to carry on (events already stored are skipped)');
    return 1;
  }
  return reports.some((r) => r.error !== undefined) ? 1 : 0;
});

-- Stripe's API as the source of truth: the state of fetching parents that never arrived (on
-- pending_links), events recovered from Stripe's Events API (on events), and the cursors of
-- reconciliation and backfill. Snapshots read from the API are events rows of source 'stripe-api'.

-- A parked link whose parent has not arrived after PARENT_FETCH_AFTER_S is fetched from the API.
-- The state is per link, but a worker claims a parent with all the links waiting for it, so every
-- column below is the same for the links of one parent.
alter table pending_links
  add column fetch_attempts integer not null default 0,
  add column next_fetch_at timestamptz,
  add column last_fetch_at timestamptz,
  add column last_fetch_error text,
  add column unresolvable_reason text,
  add column unresolvable_at timestamptz;

-- The parent fetcher reads the oldest links still worth fetching.
create index pending_links_fetch_idx on pending_links (since) where unresolvable_reason is null;

comment on column pending_links.fetch_attempts is
  'How many times a worker read the parent from Stripe''s API for this link (STRIPE_API_KEY set; 0 while it waits PARENT_FETCH_AFTER_S for the parent''s own event).';
comment on column pending_links.next_fetch_at is
  'Not fetched again before this: a worker''s lease while it fetches, or the back-off after a rate limit (Retry-After) or a Stripe error. NULL: due once the link is PARENT_FETCH_AFTER_S old.';
comment on column pending_links.last_fetch_at is 'When the parent was last read from Stripe''s API for this link.';
comment on column pending_links.last_fetch_error is
  'Why the last read failed (rate limited, Stripe 5xx, timeout, key refused...); it is retried at next_fetch_at. NULL after a read that answered.';
comment on column pending_links.unresolvable_reason is
  'Set when Stripe''s API says the parent cannot be had: 404 (deleted without a trace, or never in this account), or an object without a retrieve endpoint. Never fetched again; the link stays NULL and blocks nothing. Cleared if the parent arrives after all (the link then resolves).';
comment on column pending_links.unresolvable_at is 'When the link was marked unresolvable.';

-- Reconciliation stores the events Stripe's Events API lists and no webhook delivered, through
-- the same INSERT ... ON CONFLICT DO NOTHING as a webhook; this says which ones it was.
alter table events add column recovered_at timestamptz;
comment on column events.recovered_at is
  'Set when reconciliation (the reconcile-events schedule or npm run reconcile) stored this event from Stripe''s Events API because no webhook had delivered it: the time it was recovered. NULL for deliveries.';

create table reconcile_cursors (
  scope           text primary key,
  covered_until   timestamptz not null,
  newest_event_at timestamptz,
  last_started_at timestamptz,
  last_success_at timestamptz,
  last_error      text,
  last_listed     integer not null default 0,
  last_recovered  integer not null default 0,
  recovered_total bigint not null default 0,
  updated_at      timestamptz not null default now()
);

comment on table reconcile_cursors is
  'Where reconciliation of missed events stands, per Stripe account: every event created before covered_until has been listed from Stripe''s Events API and stored. The next run lists again from a few minutes before it.';
comment on column reconcile_cursors.scope is 'platform, or the connected account (acct_...) whose events are listed (STRIPE_CONNECT_ACCOUNTS).';
comment on column reconcile_cursors.covered_until is
  'Events created up to this time are stored. Starts RECONCILE_LOOKBACK before the first run; now() minus this is the reconciliation lag.';
comment on column reconcile_cursors.newest_event_at is 'The created time of the newest event a run listed.';
comment on column reconcile_cursors.last_started_at is 'When the latest run started.';
comment on column reconcile_cursors.last_success_at is 'When a run last finished its whole window.';
comment on column reconcile_cursors.last_error is 'Why the latest run failed (NULL when it succeeded); the next run carries on from covered_until.';
comment on column reconcile_cursors.last_listed is 'Events the latest successful run listed.';
comment on column reconcile_cursors.last_recovered is 'Of those, how many no webhook had delivered (stored with recovered_at).';
comment on column reconcile_cursors.recovered_total is 'Events recovered by every run so far.';
comment on column reconcile_cursors.updated_at is 'When this row last changed.';

create table backfill_runs (
  id             bigint generated always as identity primary key,
  account        text,
  objects        text[] not null,
  created_gte    timestamptz,
  started_at     timestamptz not null default now(),
  updated_at     timestamptz not null default now(),
  finished_at    timestamptz,
  object_table   text,
  starting_after text,
  counts         jsonb not null default '{}',
  last_error     text
);

create index backfill_runs_unfinished_idx on backfill_runs (started_at desc) where finished_at is null;

comment on table backfill_runs is
  'npm run backfill: one row per run, with its cursor, so an interrupted run (Ctrl-C, a crash) carries on where it stopped when started again with the same options.';
comment on column backfill_runs.id is 'Run number.';
comment on column backfill_runs.account is 'The connected account (acct_...) it read with Stripe-Account; NULL for the platform.';
comment on column backfill_runs.objects is 'The tables it fills, parents first, e.g. {customers,products,prices,subscriptions,invoices}.';
comment on column backfill_runs.created_gte is 'Only objects created at or after this (--since); NULL for all.';
comment on column backfill_runs.started_at is 'When the run started.';
comment on column backfill_runs.updated_at is 'When its cursor last moved.';
comment on column backfill_runs.finished_at is 'When every table was done; NULL while it runs or after it was interrupted.';
comment on column backfill_runs.object_table is 'The table being filled now (the cursor); the tables before it in objects are done.';
comment on column backfill_runs.starting_after is 'The last object id of object_table folded: the next page starts after it. NULL: from the newest.';
comment on column backfill_runs.counts is 'Objects folded so far, per table: {"customers": 1200, ...}.';
comment on column backfill_runs.last_error is 'Why the run stopped, if it failed.';

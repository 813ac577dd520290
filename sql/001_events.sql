-- The events ledger. Every acknowledged webhook is one row here, stored before the 200 is sent.
-- The same table is the work queue: workers claim RECEIVED rows with FOR UPDATE SKIP LOCKED.

create table events (
  id              bigint generated always as identity primary key,
  source          text        not null,
  event_id        text        not null,
  type            text        not null,
  api_version     text,
  account         text,
  livemode        boolean,
  created         timestamptz,
  payload         jsonb       not null,
  received_at     timestamptz not null default now(),
  status          text        not null default 'RECEIVED'
                  check (status in ('RECEIVED', 'PROCESSED', 'FAILED', 'IGNORED')),
  attempts        integer     not null default 0,
  next_attempt_at timestamptz not null default now(),
  locked_until    timestamptz,
  locked_by       text,
  processed_at    timestamptz,
  last_error      text,
  result          jsonb,
  constraint events_source_event_id_key unique (source, event_id)
);

-- The claim query reads only this index: unfinished events in the order they become due.
create index events_ready_idx on events (next_attempt_at, id) where status = 'RECEIVED';
-- The admin API and support staff list events newest first, optionally by status or source.
create index events_received_at_idx on events (received_at desc, id desc);
create index events_status_received_at_idx on events (status, received_at desc, id desc);
create index events_type_idx on events (type text_pattern_ops);

comment on table events is
  'Every webhook delivery that was acknowledged, stored before the 200 was sent. Doubles as the work queue for the fold workers.';
comment on column events.id is 'Surrogate id, increasing in arrival order. The admin API and replay CLI accept it.';
comment on column events.source is 'Which sender: stripe, or the name of a Standard Webhooks source (WEBHOOK_SECRET_<NAME>).';
comment on column events.event_id is 'The provider''s own event id (Stripe evt_..., or the webhook-id header). Unique per source: duplicates are dropped on arrival.';
comment on column events.type is 'Event type as the provider names it, e.g. invoice.paid.';
comment on column events.api_version is 'Stripe API version the payload was rendered in; object shapes differ between versions.';
comment on column events.account is 'Stripe Connect account the event belongs to (acct_...); NULL for the platform itself.';
comment on column events.livemode is 'true for live-mode Stripe events, false for test mode; NULL when the source does not say.';
comment on column events.created is 'When the provider says the event happened (Stripe event.created, one-second resolution).';
comment on column events.payload is 'The event body exactly as received and verified (as jsonb: key order and whitespace are not kept).';
comment on column events.received_at is 'When webhook-inbox committed the delivery.';
comment on column events.status is 'RECEIVED: waiting to be folded (or to be retried). PROCESSED: folded into the object tables. FAILED: gave up after WORKER_MAX_ATTEMPTS or malformed; see last_error, replayable. IGNORED: a type webhook-inbox does not fold; kept for the record.';
comment on column events.attempts is 'How many times a worker has claimed this event.';
comment on column events.next_attempt_at is 'A RECEIVED event is not claimed before this time; retries push it out with exponential backoff.';
comment on column events.locked_until is 'Lease: the worker that claimed the event owns it until then. An expired lease means the worker died and the event is claimed again.';
comment on column events.locked_by is 'Which worker holds (or last held) the lease, as host:pid:worker.';
comment on column events.processed_at is 'When the event reached PROCESSED, IGNORED or FAILED.';
comment on column events.last_error is 'The error of the latest failed attempt, if any.';
comment on column events.result is 'What folding did: objects created, updated or skipped as stale; links parked or resolved.';

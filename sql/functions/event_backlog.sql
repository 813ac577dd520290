create view event_backlog as
select status,
       source,
       type,
       count(*) as events,
       count(*) filter (where status = 'RECEIVED' and attempts > 0) as retrying,
       max(attempts) as max_attempts,
       min(received_at) as oldest_received_at,
       max(received_at) as newest_received_at,
       now() - min(received_at) filter (where status = 'RECEIVED') as oldest_unprocessed_age
  from events
 group by status, source, type;

comment on view event_backlog is
  'Events counted by status, source and type, with the age of the oldest one not folded yet. Start here: RECEIVED rows with a large oldest_unprocessed_age mean the workers are behind or stuck; FAILED rows need a look (failed_events) and a replay.';
comment on column event_backlog.status is 'RECEIVED (waiting or retrying), PROCESSED, FAILED or IGNORED.';
comment on column event_backlog.source is 'stripe, or a Standard Webhooks source name.';
comment on column event_backlog.type is 'Event type, e.g. invoice.paid.';
comment on column event_backlog.events is 'How many events have this status, source and type.';
comment on column event_backlog.retrying is 'RECEIVED events that already failed at least once and wait for their next attempt.';
comment on column event_backlog.max_attempts is 'The most attempts any of these events took (FAILED ones stopped at WORKER_MAX_ATTEMPTS).';
comment on column event_backlog.oldest_received_at is 'When the oldest of these events arrived.';
comment on column event_backlog.newest_received_at is 'When the newest of these events arrived.';
comment on column event_backlog.oldest_unprocessed_age is 'For RECEIVED: how long the oldest one has waited. NULL for the other statuses.';

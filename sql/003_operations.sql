-- Views for support staff who read SQL: the backlog, what failed and why, which links still wait
-- for a parent, and every event that touched an object or a customer, in order. Read-only; the
-- README section "Answering questions with SQL" has ready queries over them.

-- Per-object timelines look events up by the object in the payload. "if not exists": on a large
-- events table an operator can build these first with CREATE INDEX CONCURRENTLY under the same
-- names, and this migration then takes no long lock.
create index if not exists events_object_id_idx on events ((payload #>> '{data,object,id}'));
create index if not exists events_object_customer_idx on events ((payload #>> '{data,object,customer}'))
  where payload #>> '{data,object,customer}' is not null;

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

create view failed_events as
select id,
       source,
       event_id,
       type,
       attempts,
       last_error,
       received_at,
       processed_at as failed_at,
       payload #>> '{data,object,object}' as object_type,
       payload #>> '{data,object,id}' as object_id,
       payload
  from events
 where status = 'FAILED';

comment on view failed_events is
  'Events the workers gave up on (attempts exhausted, or malformed), with the last error and the object they were about. After fixing the cause: npm run replay -- --status FAILED (or POST /events/replay).';
comment on column failed_events.id is 'Surrogate id (events.id): what the admin API and npm run replay -- --id take.';
comment on column failed_events.source is 'Which sender.';
comment on column failed_events.event_id is 'The provider''s event id (evt_...).';
comment on column failed_events.type is 'Event type.';
comment on column failed_events.attempts is 'How many times a worker tried.';
comment on column failed_events.last_error is 'The error of the last attempt: why it failed.';
comment on column failed_events.received_at is 'When it arrived.';
comment on column failed_events.failed_at is 'When it became FAILED.';
comment on column failed_events.object_type is 'The Stripe object in the event (data.object.object), e.g. invoice.';
comment on column failed_events.object_id is 'Its id (data.object.id), e.g. in_1Abc.';
comment on column failed_events.payload is 'The whole event as received.';

create view orphans as
select l.child_table,
       l.child_id,
       l.link_column,
       l.parent_table,
       l.parent_id,
       l.since,
       now() - l.since as age,
       l.event_id,
       e.id as event_row_id,
       e.type as event_type,
       e.received_at as event_received_at
  from pending_links l
  left join events e on e.source = 'stripe' and e.event_id = l.event_id;

comment on view orphans is
  'Links still waiting for their parent object: the child row exists with its link column NULL because the parent never arrived (yet). A few seconds old is normal under out-of-order delivery; hours old means Stripe never sent the parent to this endpoint (another account, an event type not enabled, or data older than the endpoint): backfill it with npm run replay -- --file.';
comment on column orphans.child_table is 'Table of the row whose link is NULL, e.g. invoices.';
comment on column orphans.child_id is 'Id of that row, e.g. in_1Abc.';
comment on column orphans.link_column is 'The NULL link column, e.g. customer_id.';
comment on column orphans.parent_table is 'Table the missing parent belongs in, e.g. customers.';
comment on column orphans.parent_id is 'Id of the missing parent, e.g. cus_9Xyz.';
comment on column orphans.since is 'When the link was parked.';
comment on column orphans.age is 'How long it has waited.';
comment on column orphans.event_id is 'The Stripe event (evt_...) whose snapshot asked for the link.';
comment on column orphans.event_row_id is 'That event''s surrogate id in events; NULL if retention purged it.';
comment on column orphans.event_type is 'That event''s type.';
comment on column orphans.event_received_at is 'When that event arrived.';

create view object_events as
select payload #>> '{data,object,object}' as object_type,
       payload #>> '{data,object,id}' as object_id,
       id,
       source,
       event_id,
       type,
       created,
       received_at,
       status,
       last_error,
       payload -> 'data' -> 'previous_attributes' as previous_attributes,
       payload -> 'data' -> 'object' as object,
       result
  from events
 where payload #>> '{data,object,id}' is not null;

comment on view object_events is
  'Every event about one Stripe object (its data.object), for a timeline: select * from object_events where object_id = ''in_1Abc'' order by created, id. Served by an index on the object id.';
comment on column object_events.object_type is 'data.object.object, e.g. invoice.';
comment on column object_events.object_id is 'data.object.id, e.g. in_1Abc.';
comment on column object_events.id is 'Surrogate id of the event (arrival order).';
comment on column object_events.source is 'Which sender.';
comment on column object_events.event_id is 'The provider''s event id (evt_...).';
comment on column object_events.type is 'Event type, e.g. invoice.paid.';
comment on column object_events.created is 'When Stripe says it happened: order a timeline by created, then id.';
comment on column object_events.received_at is 'When it arrived here.';
comment on column object_events.status is 'Whether it was folded (PROCESSED), waits (RECEIVED), FAILED or IGNORED.';
comment on column object_events.last_error is 'Error of its last failed attempt, if any.';
comment on column object_events.previous_attributes is 'For *.updated events: the fields that changed, with their old values.';
comment on column object_events.object is 'The object''s snapshot in this event.';
comment on column object_events.result is 'What folding this event did (objects written, links parked and resolved).';

create view customer_timeline as
select payload #>> '{data,object,id}' as customer_id,
       payload #>> '{data,object,object}' as object_type,
       payload #>> '{data,object,id}' as object_id,
       id,
       event_id,
       type,
       created,
       received_at,
       status,
       last_error
  from events
 where payload #>> '{data,object,object}' = 'customer'
union all
select payload #>> '{data,object,customer}',
       payload #>> '{data,object,object}',
       payload #>> '{data,object,id}',
       id,
       event_id,
       type,
       created,
       received_at,
       status,
       last_error
  from events
 where payload #>> '{data,object,customer}' is not null
   and payload #>> '{data,object,object}' is distinct from 'customer';

comment on view customer_timeline is
  'Everything that happened to a customer: events about the customer itself and about any object that names it (invoices, subscriptions, payment intents, charges, ...). select * from customer_timeline where customer_id = ''cus_9Xyz'' order by created, id.';
comment on column customer_timeline.customer_id is 'The customer (cus_...).';
comment on column customer_timeline.object_type is 'What the event is about: customer, invoice, subscription, charge, ...';
comment on column customer_timeline.object_id is 'Its id.';
comment on column customer_timeline.id is 'Surrogate id of the event.';
comment on column customer_timeline.event_id is 'The Stripe event id (evt_...).';
comment on column customer_timeline.type is 'Event type.';
comment on column customer_timeline.created is 'When Stripe says it happened.';
comment on column customer_timeline.received_at is 'When it arrived here.';
comment on column customer_timeline.status is 'PROCESSED, RECEIVED, FAILED or IGNORED.';
comment on column customer_timeline.last_error is 'Error of its last failed attempt, if any.';

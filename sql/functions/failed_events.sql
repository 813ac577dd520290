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

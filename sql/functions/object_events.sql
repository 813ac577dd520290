create view object_events as
select payload #>> '{data,object,object}' as object_type,
       object_id,
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
 where object_id is not null;

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

create view dead_letter_queue as
select d.id,
       d.subscription_id,
       s.url,
       m.type,
       d.object_id,
       d.version,
       d.message_id,
       d.attempts,
       d.last_status,
       d.last_error,
       d.created_at,
       d.finished_at as died_at
  from deliveries d
  join outbox_subscriptions s on s.id = d.subscription_id
  join outbox_messages m on m.id = d.message_id
 where d.status = 'DEAD';

comment on view dead_letter_queue is
  'Deliveries the relay gave up on after the last attempt of OUTBOX_RETRY_SCHEDULE. Send them again with POST /deliveries/replay {"ids": [...]} (or {"status": "DEAD", ...}), or POST /subscriptions/:id/recover.';
comment on column dead_letter_queue.id is 'Delivery id (deliveries.id): what POST /deliveries/replay takes.';
comment on column dead_letter_queue.subscription_id is 'The receiver.';
comment on column dead_letter_queue.url is 'Its URL.';
comment on column dead_letter_queue.type is 'Message type, e.g. invoice.updated.';
comment on column dead_letter_queue.object_id is 'The object it was about.';
comment on column dead_letter_queue.version is 'The object''s version in the message.';
comment on column dead_letter_queue.message_id is 'The webhook-id.';
comment on column dead_letter_queue.attempts is 'How many times it was sent.';
comment on column dead_letter_queue.last_status is 'HTTP status of the last attempt (NULL: no answer).';
comment on column dead_letter_queue.last_error is 'Why the last attempt failed.';
comment on column dead_letter_queue.created_at is 'When the change was committed.';
comment on column dead_letter_queue.died_at is 'When it became DEAD.';

-- The transactional outbox: who subscribes to changes of the object tables, the message of each
-- change, one delivery of it per matching subscription, every attempt to send one, and the per
-- (subscription, object) stream that keeps versions in order. The fold writes outbox_messages and
-- deliveries in its own transaction (sql/functions/outbox_enqueue.sql); the relay claims, sends and
-- records (outbox_claim.sql, outbox_record.sql, src/worker/relay.ts).
--
-- Not called `subscriptions`: that is the table of Stripe subscriptions.

create table outbox_subscriptions (
  id                         text        primary key,
  url                        text        not null,
  description                text,
  types                      text[],
  headers                    jsonb       not null default '{}',
  secret                     text        not null,
  previous_secret            text,
  previous_secret_expires_at timestamptz,
  enabled                    boolean     not null default true,
  disabled_reason            text,
  disabled_at                timestamptz,
  deleted_at                 timestamptz,
  breaker                    jsonb       not null,
  circuit_state              text        not null default 'closed'
                             check (circuit_state in ('closed', 'open', 'half_open', 'disabled')),
  circuit_probe_at           timestamptz,
  last_success_at            timestamptz,
  last_failure_at            timestamptz,
  created_at                 timestamptz not null default now(),
  updated_at                 timestamptz not null default now()
);

comment on table outbox_subscriptions is
  'Receivers of change notifications (POST /subscriptions). A deleted one keeps its row and its history (deleted_at).';
comment on column outbox_subscriptions.id is 'Subscription id (ep_...), as the API shows it.';
comment on column outbox_subscriptions.url is 'Where deliveries are POSTed. Checked against OUTBOX_ALLOW_NETWORKS at registration and at every connect.';
comment on column outbox_subscriptions.description is 'Free text from whoever registered it.';
comment on column outbox_subscriptions.types is 'Message types it wants: exact (invoice.updated) or a prefix pattern (invoice.*); NULL: every type.';
comment on column outbox_subscriptions.headers is 'Extra request headers the receiver requires (e.g. its own Authorization). Credentials: never returned by the API, never logged; only their names are shown.';
comment on column outbox_subscriptions.secret is 'The whsec_ secret deliveries are signed with (Standard Webhooks). Shown once, at creation or rotation.';
comment on column outbox_subscriptions.previous_secret is 'The secret before the last rotation: deliveries carry its signature too until previous_secret_expires_at.';
comment on column outbox_subscriptions.previous_secret_expires_at is 'End of the rotation overlap (OUTBOX_ROTATION_OVERLAP after the rotation).';
comment on column outbox_subscriptions.enabled is 'false: no delivery is created or sent for it (disabled by PATCH, by a 410 Gone, or after failing for OUTBOX_DISABLE_AFTER).';
comment on column outbox_subscriptions.disabled_reason is 'Why it is disabled: by_request, gone (the receiver answered 410), failing_too_long.';
comment on column outbox_subscriptions.disabled_at is 'When it was disabled.';
comment on column outbox_subscriptions.deleted_at is 'When DELETE /subscriptions/:id stopped it; its deliveries and attempts stay for the record.';
comment on column outbox_subscriptions.breaker is 'The circuit breaker''s whole state (src/outbox/breaker.ts BreakerState, times in epoch ms).';
comment on column outbox_subscriptions.circuit_state is 'closed: deliveries go. open: nothing is sent until circuit_probe_at. half_open: one probe is out. disabled: see disabled_reason.';
comment on column outbox_subscriptions.circuit_probe_at is 'open: when the cool-down ends and a probe may go; half_open: when a lost probe may be replaced.';
comment on column outbox_subscriptions.last_success_at is 'When a delivery to it was last answered 2xx.';
comment on column outbox_subscriptions.last_failure_at is 'When an attempt to it last failed.';
comment on column outbox_subscriptions.created_at is 'When it was registered.';
comment on column outbox_subscriptions.updated_at is 'When it was last changed through the API or by its breaker.';

create table outbox_messages (
  id           text        primary key default 'msg_' || replace(gen_random_uuid()::text, '-', ''),
  object       text        not null,
  object_table text        not null,
  object_id    text        not null,
  version      bigint      not null,
  type         text        not null,
  source_event text,
  data         jsonb       not null,
  links        jsonb       not null,
  created_at   timestamptz not null default now()
);

create index outbox_messages_object_idx on outbox_messages (object_id, version);
create index outbox_messages_created_at_idx on outbox_messages (created_at);

comment on table outbox_messages is
  'One change of one object row, written by the fold in the transaction that changed the row (only when some enabled subscription wants its type). The body every delivery of it sends.';
comment on column outbox_messages.id is 'Message id: the webhook-id header and the body''s id, the same on every attempt (receivers dedupe on it).';
comment on column outbox_messages.object is 'Stripe object name, e.g. invoice, checkout.session.';
comment on column outbox_messages.object_table is 'The table of the row that changed, e.g. invoices.';
comment on column outbox_messages.object_id is 'The Stripe id of the object (in_1Abc).';
comment on column outbox_messages.version is 'The row''s version after this change (1 when created, one more per change): newer has a higher version.';
comment on column outbox_messages.type is '<object>.created, <object>.updated or <object>.deleted.';
comment on column outbox_messages.source_event is 'The Stripe event (evt_...) whose fold made the change; NULL when a parent''s arrival set a link.';
comment on column outbox_messages.data is 'The object''s newest Stripe snapshot at this version.';
comment on column outbox_messages.links is 'The row''s parent links at this version: {"customer_id": "cus_..." or null, ...}.';
comment on column outbox_messages.created_at is 'When the change was made (the fold transaction''s time).';

create table deliveries (
  id               bigint      generated always as identity primary key,
  message_id       text        not null references outbox_messages (id) on delete cascade,
  subscription_id  text        not null references outbox_subscriptions (id),
  object_id        text        not null,
  version          bigint      not null,
  status           text        not null default 'PENDING'
                   check (status in ('PENDING', 'FAILED', 'DELIVERED', 'DEAD', 'SUPERSEDED')),
  attempts         integer     not null default 0,
  next_attempt_at  timestamptz not null default now(),
  locked_until     timestamptz,
  locked_by        text,
  previous_version bigint,
  superseded_by    bigint,
  last_status      integer,
  last_error       text,
  last_attempt_at  timestamptz,
  finished_at      timestamptz,
  created_at       timestamptz not null default now()
);

-- The claim reads these two: what is due per subscription, and the waiting versions of one object.
create index deliveries_due_idx on deliveries (subscription_id, next_attempt_at, id) where status in ('PENDING', 'FAILED');
create index deliveries_stream_idx on deliveries (subscription_id, object_id, version) where status in ('PENDING', 'FAILED');
-- Listings (newest first by id), statistics, retention, and the cascade from outbox_messages.
create index deliveries_subscription_idx on deliveries (subscription_id, id);
create index deliveries_object_idx on deliveries (object_id, id);
create index deliveries_finished_idx on deliveries (finished_at) where finished_at is not null;
create index deliveries_message_idx on deliveries (message_id);

comment on table deliveries is
  'One message to one subscription. Written with the message by the fold; claimed, sent and finished by the relay.';
comment on column deliveries.id is 'Delivery id, increasing: the API lists newest first by it.';
comment on column deliveries.message_id is 'The message (outbox_messages.id, the webhook-id).';
comment on column deliveries.subscription_id is 'The receiver (outbox_subscriptions.id).';
comment on column deliveries.object_id is 'The object the message is about (copied from the message: the claim orders by it).';
comment on column deliveries.version is 'The object''s version in the message (copied from the message).';
comment on column deliveries.status is 'PENDING: not tried yet (or waiting for an open circuit). FAILED: tried and failed, will be retried at next_attempt_at. DELIVERED: answered 2xx. DEAD: the last attempt of OUTBOX_RETRY_SCHEDULE failed (the dead-letter queue; replayable). SUPERSEDED: a newer version of the object went to this subscriber instead.';
comment on column deliveries.attempts is 'How many times it was sent (claimed for sending).';
comment on column deliveries.next_attempt_at is 'Not sent before this time: the retry schedule, a Retry-After, or the lease while it is in flight.';
comment on column deliveries.locked_until is 'Lease of the relay sending it; an expired lease means the relay died and it is sent again (same webhook-id).';
comment on column deliveries.locked_by is 'Which relay holds (or last held) it, as host:pid.';
comment on column deliveries.previous_version is 'previous_version in the body of its last attempt: the version this subscriber had last received of the object.';
comment on column deliveries.superseded_by is 'SUPERSEDED: the delivery of the newer version that replaced it.';
comment on column deliveries.last_status is 'HTTP status of the last attempt (NULL: timeout or connection error).';
comment on column deliveries.last_error is 'What went wrong at the last attempt, if anything.';
comment on column deliveries.last_attempt_at is 'When it was last sent.';
comment on column deliveries.finished_at is 'When it became DELIVERED, DEAD or SUPERSEDED.';
comment on column deliveries.created_at is 'When the change was committed (the message''s created_at).';

create table delivery_attempts (
  id            bigint      generated always as identity primary key,
  delivery_id   bigint      not null references deliveries (id) on delete cascade,
  attempt       integer     not null,
  attempted_at  timestamptz not null,
  duration_ms   integer     not null,
  status_code   integer,
  outcome       text        not null check (outcome in ('success', 'http', 'timeout', 'network', 'ssrf')),
  error         text,
  response_body text
);

create index delivery_attempts_delivery_idx on delivery_attempts (delivery_id, id);
create index delivery_attempts_attempted_at_idx on delivery_attempts (attempted_at);

comment on table delivery_attempts is 'Every time a delivery was sent, and what came back.';
comment on column delivery_attempts.id is 'Attempt id.';
comment on column delivery_attempts.delivery_id is 'The delivery (deliveries.id).';
comment on column delivery_attempts.attempt is 'Its number: 1 for the first send.';
comment on column delivery_attempts.attempted_at is 'When the request started.';
comment on column delivery_attempts.duration_ms is 'Until the answer (or the error), in milliseconds.';
comment on column delivery_attempts.status_code is 'HTTP status, NULL when there was no answer.';
comment on column delivery_attempts.outcome is 'success (2xx), http (answered otherwise), timeout (OUTBOX_TIMEOUT_MS), network (DNS, refused, reset, TLS), ssrf (refused: a non-public address).';
comment on column delivery_attempts.error is 'The failure in words, NULL on success.';
comment on column delivery_attempts.response_body is 'The first 1 KB of the response body.';

create table delivery_streams (
  subscription_id   text        not null references outbox_subscriptions (id),
  object_id         text        not null,
  delivered_version bigint,
  delivered_at      timestamptz,
  in_flight         bigint,
  locked_until      timestamptz,
  locked_by         text,
  primary key (subscription_id, object_id)
);

comment on table delivery_streams is
  'One row per (subscription, object) ever claimed: the versions of one object to one subscriber go one at a time, newest first, never backwards.';
comment on column delivery_streams.subscription_id is 'The receiver.';
comment on column delivery_streams.object_id is 'The object.';
comment on column delivery_streams.delivered_version is 'The highest version this subscriber answered 2xx for: the next delivery''s previous_version. Nothing older is sent after it.';
comment on column delivery_streams.delivered_at is 'When that version was delivered.';
comment on column delivery_streams.in_flight is 'The delivery being sent now (deliveries.id), if any.';
comment on column delivery_streams.locked_until is 'Lease of the send in flight: until then no other version of this object goes to this subscriber.';
comment on column delivery_streams.locked_by is 'Which relay sends it.';

create table circuit_transitions (
  id              bigint      generated always as identity primary key,
  subscription_id text        not null references outbox_subscriptions (id),
  at              timestamptz not null,
  from_state      text        not null,
  to_state        text        not null,
  reason          text        not null
);

create index circuit_transitions_subscription_idx on circuit_transitions (subscription_id, at desc);

comment on table circuit_transitions is 'Every change of a subscription''s circuit breaker, for GET /subscriptions/:id and the record.';
comment on column circuit_transitions.id is 'Transition id.';
comment on column circuit_transitions.subscription_id is 'The subscription.';
comment on column circuit_transitions.at is 'When it happened.';
comment on column circuit_transitions.from_state is 'State before: closed, open, half_open, disabled.';
comment on column circuit_transitions.to_state is 'State after.';
comment on column circuit_transitions.reason is 'consecutive_failures, failure_rate, cool_down_elapsed, probe_succeeded, probe_failed, late_success, failing_too_long, gone, reset.';

create view subscriber_health as
select s.id,
       s.url,
       s.enabled,
       s.disabled_reason,
       s.circuit_state,
       s.circuit_probe_at,
       (s.breaker ->> 'consecutiveFailures')::integer as consecutive_failures,
       s.last_success_at,
       s.last_failure_at,
       w.pending,
       w.oldest_pending_at,
       now() - w.oldest_pending_at as oldest_pending_age,
       h.delivered_last_hour,
       h.dead_last_hour,
       a.failed_attempts_last_hour
  from outbox_subscriptions s
  cross join lateral (
    select count(*) as pending, min(d.created_at) as oldest_pending_at
      from deliveries d where d.subscription_id = s.id and d.status in ('PENDING', 'FAILED')) w
  cross join lateral (
    select count(*) filter (where d.status = 'DELIVERED') as delivered_last_hour,
           count(*) filter (where d.status = 'DEAD') as dead_last_hour
      from deliveries d where d.subscription_id = s.id and d.finished_at >= now() - interval '1 hour') h
  cross join lateral (
    select count(*) as failed_attempts_last_hour
      from delivery_attempts a join deliveries d on d.id = a.delivery_id
     where d.subscription_id = s.id and a.attempted_at >= now() - interval '1 hour' and a.outcome <> 'success') a
 where s.deleted_at is null;

comment on view subscriber_health is
  'Each subscription''s circuit, backlog and last hour: is a receiver down, and since when?';
comment on column subscriber_health.id is 'Subscription id.';
comment on column subscriber_health.url is 'Its URL.';
comment on column subscriber_health.enabled is 'false: nothing is created or sent for it.';
comment on column subscriber_health.disabled_reason is 'by_request, gone (410), failing_too_long.';
comment on column subscriber_health.circuit_state is 'closed, open, half_open, disabled.';
comment on column subscriber_health.circuit_probe_at is 'When the next probe may go (open circuit).';
comment on column subscriber_health.consecutive_failures is 'Failures since the last success.';
comment on column subscriber_health.last_success_at is 'Last 2xx.';
comment on column subscriber_health.last_failure_at is 'Last failed attempt.';
comment on column subscriber_health.pending is 'Deliveries waiting (PENDING or FAILED).';
comment on column subscriber_health.oldest_pending_at is 'When the oldest waiting change was committed.';
comment on column subscriber_health.oldest_pending_age is 'How long it has waited.';
comment on column subscriber_health.delivered_last_hour is 'Deliveries answered 2xx in the last hour.';
comment on column subscriber_health.dead_last_hour is 'Deliveries that became DEAD in the last hour.';
comment on column subscriber_health.failed_attempts_last_hour is 'Attempts that failed in the last hour.';

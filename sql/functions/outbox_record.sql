-- The relay's record of what came back: for each attempt, the attempt row, the delivery's new
-- status (computed by the relay from the retry schedule: DELIVERED, FAILED with its next attempt,
-- or DEAD), and its stream: the lease ends, a 2xx raises delivered_version, and the versions that
-- waited behind it are due now. Then the subscriptions' circuit breakers, as the relay computed
-- them (it locked those rows first, FOR NO KEY UPDATE, in this transaction), and their transitions.
--
-- p_outcomes: [{"delivery_id", "subscription_id", "object_id", "version", "attempt", "attempted_at",
--   "duration_ms", "status_code", "outcome", "error", "response_body", "status", "next_attempt_at"}]
-- p_subscriptions: [{"id", "breaker", "circuit_state", "circuit_probe_at", "enabled",
--   "disabled_reason", "last_success_at", "last_failure_at", "transitions": [{"at", "from", "to", "reason"}]}]
-- Returns how many waiting deliveries became due (the caller wakes the relays when any did).
create or replace function outbox_record(p_outcomes jsonb, p_subscriptions jsonb) returns integer
language plpgsql as $$
declare
  o jsonb;
  s jsonb;
  t jsonb;
  v_id bigint;
  v_sub text;
  v_obj text;
  v_status text;
  v_woken integer := 0;
  v_n integer;
begin
  -- Streams in one order, so two relays recording at once cannot deadlock.
  for o in select value from jsonb_array_elements(p_outcomes) order by value ->> 'subscription_id', value ->> 'object_id' loop
    v_id := (o ->> 'delivery_id')::bigint;
    v_sub := o ->> 'subscription_id';
    v_obj := o ->> 'object_id';
    v_status := o ->> 'status';
    perform 1 from delivery_streams ds where ds.subscription_id = v_sub and ds.object_id = v_obj for update;

    insert into delivery_attempts (delivery_id, attempt, attempted_at, duration_ms, status_code, outcome, error, response_body)
    values (v_id, (o ->> 'attempt')::integer, (o ->> 'attempted_at')::timestamptz, (o ->> 'duration_ms')::integer,
            (o ->> 'status_code')::integer, o ->> 'outcome', o ->> 'error', o ->> 'response_body');

    -- Only while it is still waiting: a delivery another relay took over (this one's lease ran
    -- out) or that was superseded keeps what happened to it since; the attempt is recorded anyway.
    update deliveries d
       set status = v_status,
           next_attempt_at = coalesce((o ->> 'next_attempt_at')::timestamptz, now()),
           locked_until = null,
           last_status = (o ->> 'status_code')::integer,
           last_error = o ->> 'error',
           finished_at = case when v_status in ('DELIVERED', 'DEAD') then now() end
     where d.id = v_id and d.status in ('PENDING', 'FAILED');

    update delivery_streams ds
       set delivered_version = case when v_status = 'DELIVERED'
                                    then greatest(ds.delivered_version, (o ->> 'version')::bigint)
                                    else ds.delivered_version end,
           delivered_at = case when v_status = 'DELIVERED' then now() else ds.delivered_at end,
           in_flight = case when ds.in_flight = v_id then null else ds.in_flight end,
           locked_until = case when ds.in_flight = v_id then null else ds.locked_until end
     where ds.subscription_id = v_sub and ds.object_id = v_obj;

    update deliveries d set next_attempt_at = now()
     where d.subscription_id = v_sub and d.object_id = v_obj and d.status in ('PENDING', 'FAILED')
       and d.id <> v_id and d.next_attempt_at > now() and d.version > (o ->> 'version')::bigint;
    get diagnostics v_n = row_count;
    v_woken := v_woken + v_n;
  end loop;

  for s in select value from jsonb_array_elements(coalesce(p_subscriptions, '[]')) loop
    update outbox_subscriptions os
       set breaker = s -> 'breaker',
           circuit_state = s ->> 'circuit_state',
           circuit_probe_at = (s ->> 'circuit_probe_at')::timestamptz,
           enabled = os.enabled and (s ->> 'enabled')::boolean,
           disabled_reason = case when os.enabled and not (s ->> 'enabled')::boolean then s ->> 'disabled_reason' else os.disabled_reason end,
           disabled_at = case when os.enabled and not (s ->> 'enabled')::boolean then now() else os.disabled_at end,
           last_success_at = greatest(os.last_success_at, (s ->> 'last_success_at')::timestamptz),
           last_failure_at = greatest(os.last_failure_at, (s ->> 'last_failure_at')::timestamptz),
           updated_at = case when jsonb_array_length(s -> 'transitions') > 0 then now() else os.updated_at end
     where os.id = s ->> 'id';
    for t in select value from jsonb_array_elements(s -> 'transitions') loop
      insert into circuit_transitions (subscription_id, at, from_state, to_state, reason)
      values (s ->> 'id', (t ->> 'at')::timestamptz, t ->> 'from', t ->> 'to', t ->> 'reason');
    end loop;
  end loop;

  if v_woken > 0 then
    perform pg_notify('webhook_inbox_outbox', '');
  end if;
  return v_woken;
end
$$;

comment on function outbox_record(jsonb, jsonb) is
  'Records the relay''s attempts: attempt rows, delivery statuses, streams (delivered_version, lease), the waiting versions made due, and the subscriptions'' breakers.';

-- Folding a claimed batch in one transaction. One transaction per event spent as much time on its
-- round trip and commit as on the fold itself (scripts/bench.ts, drain); a batch pays them once.
-- Each event still folds in its own subtransaction, so one that throws rolls back alone and is
-- reported; the application then folds it by itself, on the path that records retries.

-- The part of a fold that runs once the locks are held: lock the event row, write the rows parents
-- first, mark the event PROCESSED. NULL when the event no longer needs folding.
create function fold_event_locked(p_event bigint, p_writes jsonb) returns jsonb
language plpgsql as $$
declare
  w jsonb;
  v_payload jsonb;
  v_data jsonb;
  v_out jsonb;
  objects jsonb := '[]';
  parked jsonb := '[]';
  resolved jsonb := '[]';
  v_result jsonb;
begin
  select payload into v_payload from events where id = p_event and status = 'RECEIVED' for update;
  if not found then
    return null;
  end if;

  for w in select value from jsonb_array_elements(p_writes) loop
    -- The snapshot comes from the stored event, at the path the plan names. It travels beside the
    -- row, not in it, so the small row jsonb is what gets copied while links are set.
    v_data := v_payload #> array(select jsonb_array_elements_text(w -> 'data_path'));
    v_out := case w ->> 'table'
      when 'customers' then fold_write_customers(w, v_data)
      when 'products' then fold_write_products(w, v_data)
      when 'prices' then fold_write_prices(w, v_data)
      when 'payment_methods' then fold_write_payment_methods(w, v_data)
      when 'subscriptions' then fold_write_subscriptions(w, v_data)
      when 'subscription_items' then fold_write_subscription_items(w, v_data)
      when 'invoices' then fold_write_invoices(w, v_data)
      when 'payment_intents' then fold_write_payment_intents(w, v_data)
      when 'invoice_payments' then fold_write_invoice_payments(w, v_data)
      when 'charges' then fold_write_charges(w, v_data)
      when 'refunds' then fold_write_refunds(w, v_data)
      when 'disputes' then fold_write_disputes(w, v_data)
      when 'checkout_sessions' then fold_write_checkout_sessions(w, v_data)
      when 'credit_notes' then fold_write_credit_notes(w, v_data)
    end;
    if v_out is null then
      raise exception 'fold_event: no table %', w ->> 'table';
    end if;
    objects := objects || jsonb_build_array(v_out -> 'object');
    parked := parked || (v_out -> 'parked');
    resolved := resolved || (v_out -> 'resolved');
  end loop;

  v_result := jsonb_build_object('objects', objects, 'parked', parked, 'resolved', resolved);
  update events
  set status = 'PROCESSED', result = v_result, processed_at = now(), locked_until = null, next_attempt_at = now()
  where id = p_event;
  return v_result;
end
$$;

-- One event, as before: its own transaction, its own locks.
create or replace function fold_event(p_event bigint, p_plan jsonb) returns jsonb
language plpgsql as $$
begin
  -- The graph rows and the PROCESSED mark commit together, so a crash that loses the newest folds
  -- loses both and the events are folded again: this commit need not wait for its WAL flush.
  perform set_config('synchronous_commit', 'off', true);
  -- Lock the event row before the advisory locks, as fold_event always did.
  perform 1 from events where id = p_event and status = 'RECEIVED' for update;
  if not found then
    return null;
  end if;
  perform pg_advisory_xact_lock(hashtextextended(k, 0))
  from jsonb_array_elements_text(p_plan -> 'lock_keys') with ordinality as u(k, n)
  order by n;
  return fold_event_locked(p_event, p_plan -> 'writes');
end
$$;

-- A batch: p_batch = [{"id": 1, "lock_keys": [...sorted...], "writes": [...]}
--                    | {"id": 2, "ignore": "reason"}, ...]
-- Returns one element per event, in order: {"result": {...}} (PROCESSED), {"ignored": "reason"},
-- {"skipped": true} (already finished elsewhere), {"busy": true} (another fold holds one of its
-- locks) or {"error": "...", "code": "SQLSTATE"}.
-- A batch never waits for an advisory lock: it tries each event's keys, and an event with a key
-- held elsewhere is left to be folded alone, which does wait. Waiting while holding the keys of
-- the events before it could deadlock with another batch. Each event is a subtransaction, whose
-- abort also lets go of the keys it took; more than 64 subtransactions in one transaction
-- overflow every backend's subxact cache, so the application sends at most 32 events.
create function fold_events(p_batch jsonb) returns jsonb
language plpgsql as $$
declare
  e jsonb;
  k text;
  v_result jsonb;
  v_out jsonb := '[]';
begin
  perform set_config('synchronous_commit', 'off', true);
  for e in select value from jsonb_array_elements(p_batch) loop
    begin
      if e ? 'ignore' then
        update events
        set status = 'IGNORED', result = jsonb_build_object('ignored', e -> 'ignore'), processed_at = now(),
            locked_until = null, next_attempt_at = now()
        where id = (e ->> 'id')::bigint and status = 'RECEIVED';
        v_out := v_out || jsonb_build_array(case when found then jsonb_build_object('ignored', e -> 'ignore')
                                                 else '{"skipped": true}'::jsonb end);
        continue;
      end if;
      for k in select value from jsonb_array_elements_text(e -> 'lock_keys') loop
        if not pg_try_advisory_xact_lock(hashtextextended(k, 0)) then
          raise exception using errcode = 'WIBSY', message = 'busy: ' || k;
        end if;
      end loop;
      v_result := fold_event_locked((e ->> 'id')::bigint, e -> 'writes');
      v_out := v_out || jsonb_build_array(case when v_result is null then '{"skipped": true}'::jsonb
                                               else jsonb_build_object('result', v_result) end);
    exception
      when sqlstate 'WIBSY' then
        v_out := v_out || jsonb_build_array('{"busy": true}'::jsonb);
      when others then
        v_out := v_out || jsonb_build_array(jsonb_build_object('error', sqlerrm, 'code', sqlstate));
    end;
  end loop;
  return v_out;
end
$$;

comment on function fold_event_locked(bigint, jsonb) is
  'Applies one plan''s writes (the caller holds its advisory locks) and marks the event PROCESSED; NULL when the event no longer needs folding.';
comment on function fold_event(bigint, jsonb) is
  'Applies one fold plan (computed by the application from the Stripe event) under advisory locks and marks the event PROCESSED; NULL when the event no longer needs folding.';
comment on function fold_events(jsonb) is
  'Folds a batch of claimed events in one transaction, each in its own subtransaction under its advisory locks (tried, never waited for); one result per event.';

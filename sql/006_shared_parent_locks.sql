-- A fold holds the advisory locks of the rows it writes exclusively, and those of the parents it
-- only links to shared. The parent's writer (and the sweeper resolving links to it) still takes
-- the parent's key exclusively, so a child never checks for its parent and parks the link while
-- that parent commits unseen: that pair stays mutually exclusive. What changes is that the many
-- children of one parent no longer exclude each other. With every key exclusive, every
-- subscription item held its price and every invoice its customer, so concurrent batches kept
-- colliding on the catalog: 3,779 of 20,000 events of the bench's drain came back busy and were
-- folded alone, waiting 2.3 ms each for a lock (pg_stat_statements, track = all); with this file,
-- 3,222. Most of those that remain write the same row: every subscription event rewrites its
-- embedded price. The drain (npm run bench -- --phases drain, four runs each, alternated): 1,325 to
-- 1,396 events/s before, 1,433 to 1,636 after.
--
-- p_plan gains "share_keys" (sorted, none of them in "lock_keys"). A plan without it (an older
-- application) takes only its exclusive keys, as before this file.

-- One event: wait for every key, in one order shared by all transactions (the key, bytewise), each
-- in its own mode. Taking the exclusive keys first and the shared ones after could deadlock two
-- folds that hold each other's next key.
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
  perform case when k.shared then pg_advisory_xact_lock_shared(hashtextextended(k.key, 0))
               else pg_advisory_xact_lock(hashtextextended(k.key, 0)) end
  from (
    select value as key, false as shared from jsonb_array_elements_text(p_plan -> 'lock_keys')
    union all
    select value, true from jsonb_array_elements_text(coalesce(p_plan -> 'share_keys', '[]'))
  ) k
  order by k.key collate "C";
  return fold_event_locked(p_event, p_plan -> 'writes');
end
$$;

-- A batch only tries its keys (see 004), so their order does not matter here.
create or replace function fold_events(p_batch jsonb) returns jsonb
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
      for k in select value from jsonb_array_elements_text(coalesce(e -> 'share_keys', '[]')) loop
        if not pg_try_advisory_xact_lock_shared(hashtextextended(k, 0)) then
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

comment on function fold_event(bigint, jsonb) is
  'Applies one fold plan (computed by the application from the Stripe event) under advisory locks (exclusive for the rows it writes, shared for the parents it links to) and marks the event PROCESSED; NULL when the event no longer needs folding.';
comment on function fold_events(jsonb) is
  'Folds a batch of claimed events in one transaction, each in its own subtransaction under its advisory locks (tried, never waited for); one result per event.';

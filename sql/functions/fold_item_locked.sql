-- The part of a fold that runs once the item's advisory locks are held: lock the event row, write
-- the planned rows parents first (fold_write dispatches to the table's writer), and mark the event
-- PROCESSED with what was done, or IGNORED with the reason.
--
-- p_item = {"event": events.id, "writes": [w, ...]} | {"event": events.id, "ignore": "reason"}
--        | {"snapshot": an object read from Stripe's API (no event row), "writes": [w, ...]};
-- see src/db/fold.ts. Each w names where its snapshot is (data_path) in the event's payload, or in
-- the item's snapshot: a 5 KB snapshot copied along with w through every step of the loop below
-- cost the fold more than reading it once from the row it locks anyway.
-- Returns {"result": {...}}, {"ignored": "reason"}, or {"skipped": true} when the event no longer
-- needs folding (another worker finished it after this one's lease ran out).
create or replace function fold_item_locked(p_item jsonb) returns jsonb
language plpgsql as $$
declare
  v_event bigint := (p_item ->> 'event')::bigint;
  v_doc jsonb;
  w jsonb;
  v_out jsonb;
  objects jsonb := '[]';
  parked jsonb := '[]';
  resolved jsonb := '[]';
  v_result jsonb;
begin
  if p_item ? 'ignore' then
    update events
       set status = 'IGNORED', result = jsonb_build_object('ignored', p_item -> 'ignore'), processed_at = now(),
           locked_until = null, next_attempt_at = now()
     where id = v_event and status = 'RECEIVED';
    return case when found then jsonb_build_object('ignored', p_item -> 'ignore') else '{"skipped": true}'::jsonb end;
  end if;
  if v_event is not null then
    select payload into v_doc from events where id = v_event and status = 'RECEIVED' for update;
    if not found then
      return '{"skipped": true}'::jsonb;
    end if;
  else
    v_doc := p_item -> 'snapshot';
  end if;

  for w in select value from jsonb_array_elements(p_item -> 'writes') loop
    v_out := fold_write(w, v_doc #> array(select jsonb_array_elements_text(w -> 'data_path')));
    objects := objects || jsonb_build_array(v_out -> 'object');
    parked := parked || (v_out -> 'parked');
    resolved := resolved || (v_out -> 'resolved');
  end loop;

  v_result := jsonb_build_object('objects', objects, 'parked', parked, 'resolved', resolved);
  if v_event is not null then
    update events
       set status = 'PROCESSED', result = v_result, processed_at = now(), locked_until = null, next_attempt_at = now()
     where id = v_event;
  end if;
  return jsonb_build_object('result', v_result);
end
$$;

comment on function fold_item_locked(jsonb) is
  'Applies one fold item (its advisory locks already held): writes its rows and marks its event PROCESSED or IGNORED.';

-- Folds a batch of items in the caller's transaction, each in its own subtransaction, so one that
-- throws rolls back alone and is reported while the others commit. One statement for a claim of
-- events: a fold is a dozen small reads and writes, and on a small machine the round trips, not
-- the work, were the cost.
--
-- A batch never waits for an advisory lock: it tries each item's keys, and an item with a key held
-- elsewhere comes back busy, to be folded alone by fold_item(), which does wait. Waiting while
-- holding the keys of the items before it could deadlock with another batch. More than 64
-- subtransactions in one transaction overflow every backend's subxact cache, so the application
-- sends at most 32 items.
--
-- Returns one element per item, in order: what fold_item_locked() returns, or {"busy": true}, or
-- {"error": "...", "code": "SQLSTATE"}.
create or replace function fold_items(p_items jsonb) returns jsonb
language plpgsql as $$
declare
  e jsonb;
  k text;
  v_out jsonb := '[]';
begin
  -- The fold commits without waiting for its WAL flush: the rows and the events' PROCESSED marks
  -- commit together, so a crash that loses the newest folds loses both, and the events are folded
  -- again. (The outbox's relay commits its claim synchronously before sending, which flushes this.)
  perform set_config('synchronous_commit', 'off', true);
  -- One look per batch at whether anyone subscribes; with nobody, the writers skip the outbox
  -- (src/db/fold-sql.ts). A subscription created while a batch runs gets the batches after it.
  perform set_config('webhook_inbox.outbox', case when exists (select 1 from outbox_subscriptions where enabled) then 'on' else 'off' end, true);
  for e in select value from jsonb_array_elements(p_items) loop
    begin
      for k in select value from jsonb_array_elements_text(coalesce(e -> 'lock_keys', '[]')) loop
        if not pg_try_advisory_xact_lock(hashtextextended(k, 0)) then
          raise exception using errcode = 'WIBSY', message = 'busy: ' || k;
        end if;
      end loop;
      for k in select value from jsonb_array_elements_text(coalesce(e -> 'share_keys', '[]')) loop
        if not pg_try_advisory_xact_lock_shared(hashtextextended(k, 0)) then
          raise exception using errcode = 'WIBSY', message = 'busy: ' || k;
        end if;
      end loop;
      v_out := v_out || jsonb_build_array(fold_item_locked(e));
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

comment on function fold_items(jsonb) is
  'Folds a batch of items in the caller''s transaction, each in its own subtransaction under its advisory locks (tried, never waited for); one outcome per item.';

-- Folds one item, waiting for its advisory locks: the path for an event a batch could not fold
-- (busy, or it failed there), and for snapshots read from Stripe's API. The caller opens the
-- transaction (src/worker/fold.ts).
--
-- It waits for every key in one order shared by all transactions (the key, bytewise), each in its
-- own mode: exclusive for the rows it writes, shared for the parents it only links to. Taking the
-- exclusive keys first and the shared ones after could deadlock two folds that hold each other's
-- next key. The event row is locked first, as it always was.
create or replace function fold_item(p_item jsonb) returns jsonb
language plpgsql as $$
begin
  if p_item ? 'event' and not p_item ? 'ignore' then
    perform 1 from events where id = (p_item ->> 'event')::bigint and status = 'RECEIVED' for update;
    if not found then
      return '{"skipped": true}'::jsonb;
    end if;
  end if;
  -- The fold commits without waiting for its WAL flush: the rows and the events' PROCESSED marks
  -- commit together, so a crash that loses the newest folds loses both, and the events are folded
  -- again. (The outbox's relay commits its claim synchronously before sending, which flushes this.)
  perform set_config('synchronous_commit', 'off', true);
  -- As in fold_items(): one look at whether anyone subscribes, for the writers.
  perform set_config('webhook_inbox.outbox', case when exists (select 1 from outbox_subscriptions where enabled) then 'on' else 'off' end, true);
  perform case when k.shared then pg_advisory_xact_lock_shared(hashtextextended(k.key, 0))
               else pg_advisory_xact_lock(hashtextextended(k.key, 0)) end
  from (
    select value as key, false as shared from jsonb_array_elements_text(coalesce(p_item -> 'lock_keys', '[]'))
    union all
    select value, true from jsonb_array_elements_text(coalesce(p_item -> 'share_keys', '[]'))
  ) k
  order by k.key collate "C";
  return fold_item_locked(p_item);
end
$$;

comment on function fold_item(jsonb) is
  'Folds one item (an event''s plan, or an API snapshot) under its advisory locks, waiting for them: exclusive for the rows it writes, shared for the parents it links to.';

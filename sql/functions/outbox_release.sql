-- A stopping relay hands back the deliveries it claimed but could not finish sending: due now for
-- another relay, the attempt not counted (the receiver may have got it: it dedupes on webhook-id).
create or replace function outbox_release(p_ids bigint[], p_worker text) returns integer
language plpgsql as $$
declare
  v_n integer;
begin
  update delivery_streams ds set in_flight = null, locked_until = null
   where ds.in_flight = any (p_ids) and ds.locked_by = p_worker;
  update deliveries d
     set next_attempt_at = now(), locked_until = null, attempts = greatest(d.attempts - 1, 0)
   where d.id = any (p_ids) and d.locked_by = p_worker and d.status in ('PENDING', 'FAILED');
  get diagnostics v_n = row_count;
  if v_n > 0 then
    perform pg_notify('webhook_inbox_outbox', '');
  end if;
  return v_n;
end
$$;

comment on function outbox_release(bigint[], text) is
  'Hands back deliveries a stopping relay claimed but did not finish: due now, attempt not counted.';

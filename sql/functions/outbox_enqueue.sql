-- The outbox half of a fold: called by the fold's writers (fold_write_<table>) and link resolvers
-- (resolve_links_to_<table>) right after they changed a row, in the fold's transaction, so the
-- message commits with the change or not at all (a fold item that fails rolls both back in its
-- subtransaction). Writes the message and one delivery per enabled subscription that wants its
-- type, and wakes the relays (the NOTIFY is sent at commit; the fold commits without waiting for
-- its WAL flush, so the notify lock is held for microseconds).
--
-- No subscription wants it: nothing is written, and the cost is one lookup in a small table. A
-- message nobody receives would only repeat what the events and the object rows already record.
create or replace function outbox_enqueue(p_object text, p_table text, p_id text, p_action text, p_version bigint,
                                          p_event text, p_data jsonb, p_links jsonb)
returns void
language plpgsql as $$
declare
  v_type text := p_object || '.' || case p_action when 'created' then 'created' when 'deleted' then 'deleted' else 'updated' end;
  v_subscriptions text[];
  v_message text;
begin
  select array_agg(s.id) into v_subscriptions
    from outbox_subscriptions s
   where s.enabled and outbox_types_match(s.types, v_type);
  if v_subscriptions is null then
    return;
  end if;
  insert into outbox_messages (object, object_table, object_id, version, type, source_event, data, links)
  values (p_object, p_table, p_id, p_version, v_type, p_event, coalesce(p_data, '{}'), coalesce(p_links, '{}'))
  returning id into v_message;
  insert into deliveries (message_id, subscription_id, object_id, version)
  select v_message, s, p_id, p_version from unnest(v_subscriptions) s;
  perform pg_notify('webhook_inbox_outbox', '');
end
$$;

comment on function outbox_enqueue(text, text, text, text, bigint, text, jsonb, jsonb) is
  'Writes the outbox message of one row change and a delivery per enabled subscription that wants its type; called by the fold writers in the fold''s transaction.';

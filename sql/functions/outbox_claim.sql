-- The relay's claim: up to p_limit deliveries to send now, at most p_per_subscription of each
-- subscription (a receiver that hangs cannot take every slot), from subscriptions that are enabled
-- and whose circuit is closed, or from the one subscription named by p_probe (its half-open probe).
--
-- Per (subscription, object) the versions go one at a time and never backwards: the claim takes
-- the object's stream row (delivery_streams) under a tried advisory lock and SKIP LOCKED, so two
-- relays never claim the same stream at once and never wait for each other. While a version is in
-- flight the others wait for its outcome (outbox_record wakes them). Otherwise the newest waiting
-- version goes, carrying the last delivered one as previous_version, and every older waiting one
-- is SUPERSEDED; one not newer than what was delivered is SUPERSEDED too. Delivery rows of a
-- stream are only changed by whoever holds the stream row: claim and record never deadlock.
--
-- The caller commits with synchronous_commit on before it sends anything: that commit flushes the
-- WAL up to itself, so the fold commits of the claimed messages (made without waiting for their
-- flush) are durable before any of them leaves.
create or replace function outbox_claim(p_limit integer, p_per_subscription integer, p_lease_s integer, p_worker text,
                                        p_exclude text[] default '{}', p_probe text default null)
returns table (delivery_id bigint, attempt integer, previous_version bigint, message_id text, type text, object text,
               object_id text, version bigint, created timestamptz, data jsonb, links jsonb, source_event text,
               subscription_id text, url text, headers jsonb, secret text, previous_secret text)
language plpgsql as $$
#variable_conflict use_column
declare
  c record;
  st record;
  v_id bigint;
  v_version bigint;
  v_lease timestamptz := now() + make_interval(secs => p_lease_s);
  v_seen text[] := '{}';
  v_key text;
  v_taken integer := 0;
begin
  for c in
    select d.subscription_id as sub, d.object_id as obj
      from outbox_subscriptions s
      cross join lateral (
        select d.subscription_id, d.object_id from deliveries d
         where d.subscription_id = s.id and d.status in ('PENDING', 'FAILED') and d.next_attempt_at <= now()
         order by d.next_attempt_at, d.id
         limit p_per_subscription) d
     where s.enabled and s.deleted_at is null
       and case when p_probe is null then s.circuit_state = 'closed' and s.id <> all (p_exclude)
                else s.id = p_probe end
  loop
    exit when v_taken >= p_limit;
    v_key := c.sub || ' ' || c.obj;
    continue when v_key = any (v_seen);
    v_seen := v_seen || v_key;
    continue when not pg_try_advisory_xact_lock(hashtextextended('outbox-stream:' || v_key, 0));
    select * into st from delivery_streams ds where ds.subscription_id = c.sub and ds.object_id = c.obj for update skip locked;
    if not found then
      -- Locked by a relay recording an outcome (skip it), or a stream never claimed before. Only
      -- a new one is inserted: an insert would wait for whoever is updating an existing row.
      continue when exists (select 1 from delivery_streams ds where ds.subscription_id = c.sub and ds.object_id = c.obj);
      insert into delivery_streams (subscription_id, object_id) values (c.sub, c.obj) on conflict do nothing;
      select * into st from delivery_streams ds where ds.subscription_id = c.sub and ds.object_id = c.obj for update skip locked;
      continue when not found;
    end if;

    if st.locked_until is not null and st.locked_until > now() then
      -- A version of this object is on its way to this subscriber: the others wait for its outcome.
      update deliveries d set next_attempt_at = st.locked_until
       where d.subscription_id = c.sub and d.object_id = c.obj and d.status in ('PENDING', 'FAILED')
         and d.next_attempt_at < st.locked_until;
      continue;
    end if;

    select d.id, d.version into v_id, v_version
      from deliveries d
     where d.subscription_id = c.sub and d.object_id = c.obj and d.status in ('PENDING', 'FAILED')
     order by d.version desc, d.id desc
     limit 1;
    continue when not found;
    update deliveries d
       set status = 'SUPERSEDED', superseded_by = v_id, finished_at = now(), locked_until = null
     where d.subscription_id = c.sub and d.object_id = c.obj and d.status in ('PENDING', 'FAILED') and d.id <> v_id;
    if st.delivered_version is not null and v_version <= st.delivered_version then
      -- A replayed delivery older than what the subscriber has: never backwards.
      update deliveries d set status = 'SUPERSEDED', finished_at = now(), locked_until = null where d.id = v_id;
      continue;
    end if;

    update deliveries d
       set attempts = d.attempts + 1, locked_until = v_lease, locked_by = p_worker, next_attempt_at = v_lease,
           last_attempt_at = now(), previous_version = st.delivered_version
     where d.id = v_id;
    update delivery_streams ds
       set in_flight = v_id, locked_until = v_lease, locked_by = p_worker
     where ds.subscription_id = c.sub and ds.object_id = c.obj;
    v_taken := v_taken + 1;
    -- Read here, not by the caller's statement: its snapshot predates deliveries committed while
    -- this function ran, which the statements in here see.
    return query
      select d.id, d.attempts, st.delivered_version, m.id, m.type, m.object, m.object_id, m.version, m.created_at,
             m.data, m.links, m.source_event, s.id, s.url, s.headers, s.secret,
             case when s.previous_secret_expires_at > now() then s.previous_secret end
        from deliveries d
        join outbox_messages m on m.id = d.message_id
        join outbox_subscriptions s on s.id = d.subscription_id
       where d.id = v_id;
  end loop;
end
$$;

comment on function outbox_claim(integer, integer, integer, text, text[], text) is
  'Claims deliveries to send now, one version per (subscription, object) at a time, newest first, superseding older waiting ones; commit it synchronously before sending.';

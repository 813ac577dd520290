create view orphans as
select l.child_table,
       l.child_id,
       l.link_column,
       l.parent_table,
       l.parent_id,
       l.since,
       now() - l.since as age,
       l.event_id,
       e.id as event_row_id,
       e.type as event_type,
       e.received_at as event_received_at,
       l.unresolvable_reason is not null as unresolvable,
       l.unresolvable_reason,
       l.fetch_attempts,
       l.last_fetch_at,
       l.last_fetch_error,
       l.next_fetch_at
  from pending_links l
  left join events e on e.source in ('stripe', 'stripe-api', 'stripe-thin') and e.event_id = l.event_id;

comment on view orphans is
  'Links still waiting for their parent object: the child row exists with its link column NULL because the parent never arrived (yet). A few seconds old is normal under out-of-order delivery. With STRIPE_API_KEY set, a link older than PARENT_FETCH_AFTER_S has its parent read from Stripe''s API: see fetch_attempts and last_fetch_error; unresolvable ones are parents Stripe does not have (the reason says why), which block nothing. Without a key, hours old means Stripe never sent the parent to this endpoint (another account, an event type not enabled, or data older than the endpoint): set STRIPE_API_KEY, or npm run backfill.';
comment on column orphans.child_table is 'Table of the row whose link is NULL, e.g. invoices.';
comment on column orphans.child_id is 'Id of that row, e.g. in_1Abc.';
comment on column orphans.link_column is 'The NULL link column, e.g. customer_id.';
comment on column orphans.parent_table is 'Table the missing parent belongs in, e.g. customers.';
comment on column orphans.parent_id is 'Id of the missing parent, e.g. cus_9Xyz.';
comment on column orphans.since is 'When the link was parked.';
comment on column orphans.age is 'How long it has waited.';
comment on column orphans.event_id is 'The event (evt_..., or api_... for a snapshot read from Stripe''s API) whose snapshot asked for the link.';
comment on column orphans.event_row_id is 'That event''s surrogate id in events; NULL if retention purged it.';
comment on column orphans.event_type is 'That event''s type.';
comment on column orphans.event_received_at is 'When that event arrived.';
comment on column orphans.unresolvable is 'true when Stripe''s API said the parent cannot be had: the link is no longer fetched and blocks nothing.';
comment on column orphans.unresolvable_reason is 'Why, e.g. Stripe''s 404 message (deleted, or not in this account).';
comment on column orphans.fetch_attempts is 'How many times the parent was read from Stripe''s API for this link.';
comment on column orphans.last_fetch_at is 'When it was last read.';
comment on column orphans.last_fetch_error is 'Why the last read failed (retried at next_fetch_at).';
comment on column orphans.next_fetch_at is 'When it is read again, after a back-off; NULL: once the link is PARENT_FETCH_AFTER_S old.';

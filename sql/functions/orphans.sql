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
       e.received_at as event_received_at
  from pending_links l
  left join events e on e.source = 'stripe' and e.event_id = l.event_id;

comment on view orphans is
  'Links still waiting for their parent object: the child row exists with its link column NULL because the parent never arrived (yet). A few seconds old is normal under out-of-order delivery; hours old means Stripe never sent the parent to this endpoint (another account, an event type not enabled, or data older than the endpoint): backfill it with npm run replay -- --file.';
comment on column orphans.child_table is 'Table of the row whose link is NULL, e.g. invoices.';
comment on column orphans.child_id is 'Id of that row, e.g. in_1Abc.';
comment on column orphans.link_column is 'The NULL link column, e.g. customer_id.';
comment on column orphans.parent_table is 'Table the missing parent belongs in, e.g. customers.';
comment on column orphans.parent_id is 'Id of the missing parent, e.g. cus_9Xyz.';
comment on column orphans.since is 'When the link was parked.';
comment on column orphans.age is 'How long it has waited.';
comment on column orphans.event_id is 'The Stripe event (evt_...) whose snapshot asked for the link.';
comment on column orphans.event_row_id is 'That event''s surrogate id in events; NULL if retention purged it.';
comment on column orphans.event_type is 'That event''s type.';
comment on column orphans.event_received_at is 'When that event arrived.';

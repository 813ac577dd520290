-- The fold's functions are now rendered from the Stripe catalogue (src/stripe/catalog.ts) or kept
-- in sql/functions/, one file each, and re-applied at every migrate. This drops the functions of
-- migrations 002, 004 and 006 whose names and arguments changed (the writers' new bodies, under
-- the same names, replace the old ones when sql/functions is applied).
drop function if exists fold_events(jsonb);
drop function if exists fold_event(bigint, jsonb);
drop function if exists fold_event_locked(bigint, jsonb);
drop function if exists parent_exists(text, text);
drop function if exists resolve_pending_links(text, text);

-- Every object row counts its changes: created at 1, one more for each newer snapshot, tombstone
-- or parent link set. The outbox sends it with each change, so a consumer can tell newer from older.
do $$
declare
  t text;
begin
  foreach t in array array[
    'customers', 'products', 'prices', 'payment_methods', 'subscriptions', 'subscription_items',
    'invoices', 'payment_intents', 'invoice_payments', 'charges', 'refunds', 'disputes',
    'checkout_sessions', 'credit_notes'
  ] loop
    execute format('alter table %I add column version bigint not null default 1', t);
    execute format('comment on column %I.version is %L', t,
      'How many times the row changed: 1 when created, one more for each newer snapshot, tombstone or parent link set.');
  end loop;
end
$$;

-- A many-to-many link (an invoice's discounts) waits for several parents in the same link column:
-- the parent's id joins the key.
alter table pending_links drop constraint pending_links_pkey;
alter table pending_links add primary key (child_table, child_id, link_column, parent_id);
comment on column pending_links.link_column is
  'The link column that stays NULL until the parent exists (e.g. customer_id), or, for a many-to-many link, the link table that will hold the pair (e.g. invoice_discounts).';

-- The Stripe object graph: one table per Stripe object, each row the newest snapshot the fold
-- workers have seen. Parent links are real foreign keys, set only once the parent row exists;
-- until then the link column is NULL and the wanted link waits in pending_links.
--
-- Every object table has the same bookkeeping columns (commented once per table at the end):
--   data, status, amount, currency, created, livemode, account, deleted, api_version,
--   last_event_id, last_event_created, last_event_rank, updated_at.
-- The newest snapshot wins by (last_event_created, last_event_rank, last_event_id): see README
-- "How events are folded". Object rows are never deleted: *.deleted events leave a tombstone.
--
-- Back-references that point down the graph (products.default_price_id,
-- subscriptions.latest_invoice_id, payment_intents.latest_charge_id, ...) are plain columns with
-- no foreign key: they form cycles with the parent links, and a cycle of waits cannot converge.

create table customers (
  id text primary key,
  email text,
  name text
);

create table products (
  id text primary key,
  default_price_id text
);

create table prices (
  id text primary key,
  product_id text references products (id)
);

create table payment_methods (
  id text primary key,
  customer_id text references customers (id)
);

create table subscriptions (
  id text primary key,
  customer_id text references customers (id),
  latest_invoice_id text,
  default_payment_method_id text
);

create table subscription_items (
  id text primary key,
  subscription_id text references subscriptions (id),
  price_id text references prices (id),
  current_period_start timestamptz,
  current_period_end timestamptz
);

create table invoices (
  id text primary key,
  customer_id text references customers (id),
  subscription_id text references subscriptions (id),
  number text
);

create table payment_intents (
  id text primary key,
  customer_id text references customers (id),
  invoice_id text references invoices (id),
  latest_charge_id text,
  payment_method_id text
);

create table invoice_payments (
  id text primary key,
  invoice_id text references invoices (id),
  payment_intent_id text references payment_intents (id)
);

create table charges (
  id text primary key,
  customer_id text references customers (id),
  payment_intent_id text references payment_intents (id),
  invoice_id text references invoices (id)
);

create table refunds (
  id text primary key,
  charge_id text references charges (id),
  payment_intent_id text references payment_intents (id)
);

create table disputes (
  id text primary key,
  charge_id text references charges (id),
  payment_intent_id text references payment_intents (id)
);

create table checkout_sessions (
  id text primary key,
  customer_id text references customers (id),
  subscription_id text references subscriptions (id),
  payment_intent_id text references payment_intents (id),
  invoice_id text references invoices (id)
);

create table credit_notes (
  id text primary key,
  invoice_id text references invoices (id),
  customer_id text references customers (id)
);

-- The same bookkeeping columns on every object table, and an index on every link column (the
-- joins support staff write, and the ON DELETE checks Postgres would otherwise scan for).
do $$
declare
  t text;
  c record;
begin
  foreach t in array array[
    'customers', 'products', 'prices', 'payment_methods', 'subscriptions', 'subscription_items',
    'invoices', 'payment_intents', 'invoice_payments', 'charges', 'refunds', 'disputes',
    'checkout_sessions', 'credit_notes'
  ] loop
    execute format($f$
      alter table %I
        add column status text,
        add column amount bigint,
        add column currency text,
        add column created timestamptz,
        add column livemode boolean,
        add column account text,
        add column deleted boolean not null default false,
        add column data jsonb not null,
        add column api_version text,
        add column last_event_id text not null,
        add column last_event_created timestamptz not null,
        add column last_event_rank integer not null,
        add column updated_at timestamptz not null default now()
    $f$, t);
    execute format('comment on column %I.id is %L', t, 'Stripe''s id of the object.');
    execute format('comment on column %I.status is %L', t, 'The object''s status as Stripe reports it in the newest snapshot (NULL for objects without one).');
    execute format('comment on column %I.amount is %L', t, 'The main amount in the smallest currency unit (amount, amount_due, total or amount_paid, whichever the object has).');
    execute format('comment on column %I.currency is %L', t, 'Three-letter ISO currency code, lower case.');
    execute format('comment on column %I.created is %L', t, 'When Stripe created the object.');
    execute format('comment on column %I.livemode is %L', t, 'true for live mode, false for test mode.');
    execute format('comment on column %I.account is %L', t, 'Stripe Connect account (acct_...) the object belongs to; NULL for the platform.');
    execute format('comment on column %I.deleted is %L', t, 'Tombstone: a *.deleted event arrived. The row and its data stay; an older update never clears this.');
    execute format('comment on column %I.data is %L', t, 'The newest full snapshot of the object, as Stripe sent it.');
    execute format('comment on column %I.api_version is %L', t, 'Stripe API version the snapshot in data was rendered in (shapes differ between versions).');
    execute format('comment on column %I.last_event_id is %L', t, 'The Stripe event (evt_...) whose snapshot is in data. Join events on event_id to see it.');
    execute format('comment on column %I.last_event_created is %L', t, 'created of that event: the first part of the order key that decides which snapshot is newest.');
    execute format('comment on column %I.last_event_rank is %L', t, 'Lifecycle rank of the snapshot''s status: breaks ties between events of the same second (later state wins).');
    execute format('comment on column %I.updated_at is %L', t, 'When webhook-inbox last wrote this row.');
    for c in
      select a.attname
      from pg_attribute a
      join pg_constraint k on k.conrelid = a.attrelid and a.attnum = any (k.conkey) and k.contype = 'f'
      where a.attrelid = t::regclass
    loop
      execute format('create index %I on %I (%I)', t || '_' || c.attname || '_idx', t, c.attname);
    end loop;
  end loop;
end
$$;

-- A child whose parent has not arrived yet: the link column stays NULL and the wanted link waits
-- here. The transaction that writes the parent resolves every row waiting for it and deletes it;
-- a pg-boss sweeper resolves anything a race left behind. Empty once everything has arrived.
create table pending_links (
  child_table text not null,
  child_id text not null,
  link_column text not null,
  parent_table text not null,
  parent_id text not null,
  since timestamptz not null default now(),
  event_id text not null,
  primary key (child_table, child_id, link_column)
);
create index pending_links_parent_idx on pending_links (parent_table, parent_id);

comment on table pending_links is
  'Parent links waiting for their parent: the child row exists with the link column NULL. Rows disappear when the parent arrives. Old rows here mean a parent never arrived (see the orphans view).';
comment on column pending_links.child_table is 'Table of the child row, e.g. invoices.';
comment on column pending_links.child_id is 'Stripe id of the child row.';
comment on column pending_links.link_column is 'The link column that stays NULL until the parent exists, e.g. customer_id.';
comment on column pending_links.parent_table is 'Table the parent will be written to, e.g. customers.';
comment on column pending_links.parent_id is 'Stripe id of the missing parent.';
comment on column pending_links.since is 'When the link was parked.';
comment on column pending_links.event_id is 'The Stripe event (evt_...) whose snapshot asked for this link.';

comment on table customers is 'Stripe customers (cus_...), newest snapshot each.';
comment on column customers.email is 'The customer''s email.';
comment on column customers.name is 'The customer''s name.';
comment on table products is 'Stripe products (prod_...).';
comment on column products.default_price_id is 'The product''s default price (price_...). Plain column, no foreign key: it points back down the graph.';
comment on table prices is 'Stripe prices (price_...).';
comment on column prices.product_id is 'Parent product; NULL while the product has not arrived (see pending_links).';
comment on table payment_methods is 'Stripe payment methods (pm_...).';
comment on column payment_methods.customer_id is 'Customer the payment method is attached to; NULL when detached or while the customer has not arrived.';
comment on table subscriptions is 'Stripe subscriptions (sub_...). Their items are in subscription_items.';
comment on column subscriptions.customer_id is 'Parent customer; NULL while it has not arrived.';
comment on column subscriptions.latest_invoice_id is 'The subscription''s latest invoice (in_...). Plain column, no foreign key: it points back down the graph.';
comment on column subscriptions.default_payment_method_id is 'Default payment method (pm_...). Plain column.';
comment on table subscription_items is 'Items of a subscription, folded from the items list embedded in each subscription snapshot.';
comment on column subscription_items.subscription_id is 'Parent subscription.';
comment on column subscription_items.price_id is 'The price billed by this item.';
comment on column subscription_items.current_period_start is 'Start of the item''s current billing period (since API 2025-03-31 periods live on items).';
comment on column subscription_items.current_period_end is 'End of the item''s current billing period.';
comment on table invoices is 'Stripe invoices (in_...).';
comment on column invoices.customer_id is 'Parent customer.';
comment on column invoices.subscription_id is 'Parent subscription: invoice.parent.subscription_details.subscription since API 2025-03-31, invoice.subscription before.';
comment on column invoices.number is 'Invoice number as printed on the invoice (NULL while draft).';
comment on table payment_intents is 'Stripe payment intents (pi_...).';
comment on column payment_intents.customer_id is 'Parent customer.';
comment on column payment_intents.invoice_id is 'Invoice this payment intent pays, from payment_intent.invoice (API versions before 2025-03-31; later versions link through invoice_payments).';
comment on column payment_intents.latest_charge_id is 'Latest charge (ch_...). Plain column, no foreign key: it points back down the graph.';
comment on column payment_intents.payment_method_id is 'Payment method used (pm_...). Plain column.';
comment on table invoice_payments is 'Stripe invoice payments (inpay_...): which payment intent paid which invoice (API 2025-03-31 and later).';
comment on column invoice_payments.invoice_id is 'The invoice paid.';
comment on column invoice_payments.payment_intent_id is 'The payment intent that paid it (payment.payment_intent).';
comment on table charges is 'Stripe charges (ch_...).';
comment on column charges.customer_id is 'Parent customer.';
comment on column charges.payment_intent_id is 'Parent payment intent.';
comment on column charges.invoice_id is 'Invoice, from charge.invoice (API versions before 2025-03-31).';
comment on table refunds is 'Stripe refunds (re_...).';
comment on column refunds.charge_id is 'Refunded charge.';
comment on column refunds.payment_intent_id is 'Payment intent of the refunded charge.';
comment on table disputes is 'Stripe disputes (dp_/du_...).';
comment on column disputes.charge_id is 'Disputed charge.';
comment on column disputes.payment_intent_id is 'Payment intent of the disputed charge.';
comment on table checkout_sessions is 'Stripe Checkout sessions (cs_...).';
comment on column checkout_sessions.customer_id is 'Customer of the session, once known.';
comment on column checkout_sessions.subscription_id is 'Subscription the session created, if any.';
comment on column checkout_sessions.payment_intent_id is 'Payment intent of the session, if any.';
comment on column checkout_sessions.invoice_id is 'Invoice the session created, if any.';
comment on table credit_notes is 'Stripe credit notes (cn_...).';
comment on column credit_notes.invoice_id is 'Invoice the credit note adjusts.';
comment on column credit_notes.customer_id is 'Customer of that invoice.';

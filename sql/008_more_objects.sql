-- The rest of what a Stripe Billing and Payments integration receives events for, folded like the
-- first fourteen objects (sql/002): one table per object, written by the fold_write_<table>
-- function rendered from src/stripe/catalog.ts, parents linked by real foreign keys once they
-- exist (until then NULL, with the wanted link in pending_links).
--
-- Two many-to-many links get link tables, holding exactly the set the newest snapshot names (a
-- parent that has not arrived waits in pending_links with the link table's name as its
-- link_column): invoice_discounts and subscription_item_tax_rates.
--
-- Every object table also has the bookkeeping columns of sql/002 and 007 (status, amount,
-- currency, created, livemode, account, deleted, data, api_version, last_event_id,
-- last_event_created, last_event_rank, updated_at, version), added by the loop below.

create table tax_rates (
  id text primary key,
  percentage numeric
);

create table coupons (
  id text primary key,
  name text,
  percent_off numeric
);

create table promotion_codes (
  id text primary key,
  coupon_id text references coupons (id),
  customer_id text references customers (id),
  code text
);

create table discounts (
  id text primary key,
  customer_id text references customers (id),
  subscription_id text references subscriptions (id),
  coupon_id text references coupons (id),
  promotion_code_id text references promotion_codes (id)
);

create table invoice_line_items (
  id text primary key,
  invoice_id text references invoices (id),
  subscription_id text references subscriptions (id),
  price_id text references prices (id)
);

create table invoiceitems (
  id text primary key,
  customer_id text references customers (id),
  invoice_id text references invoices (id),
  subscription_id text references subscriptions (id),
  price_id text references prices (id)
);

create table setup_intents (
  id text primary key,
  customer_id text references customers (id),
  payment_method_id text references payment_methods (id)
);

create table subscription_schedules (
  id text primary key,
  customer_id text references customers (id),
  subscription_id text references subscriptions (id)
);

create table plans (
  id text primary key,
  product_id text references products (id)
);

create table tax_ids (
  id text primary key,
  customer_id text references customers (id)
);

create table quotes (
  id text primary key,
  customer_id text references customers (id),
  subscription_id text references subscriptions (id),
  invoice_id text references invoices (id)
);

create table payouts (
  id text primary key,
  arrival_date timestamptz
);

create table early_fraud_warnings (
  id text primary key,
  charge_id text references charges (id),
  payment_intent_id text references payment_intents (id),
  fraud_type text
);

create table accounts (
  id text primary key,
  charges_enabled boolean,
  payouts_enabled boolean
);

create table transfers (
  id text primary key,
  destination_account_id text references accounts (id)
);

-- The bookkeeping columns, their comments, and an index on every link column, as in sql/002.
do $$
declare
  t text;
  c record;
begin
  foreach t in array array[
    'tax_rates', 'coupons', 'promotion_codes', 'discounts', 'invoice_line_items', 'invoiceitems',
    'setup_intents', 'subscription_schedules', 'plans', 'tax_ids', 'quotes', 'payouts',
    'early_fraud_warnings', 'accounts', 'transfers'
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
        add column updated_at timestamptz not null default now(),
        add column version bigint not null default 1
    $f$, t);
    execute format('comment on column %I.id is %L', t, 'Stripe''s id of the object.');
    execute format('comment on column %I.status is %L', t, 'The object''s status as Stripe reports it in the newest snapshot (NULL for objects without one).');
    execute format('comment on column %I.amount is %L', t, 'The main amount in the smallest currency unit (amount, amount_off or amount_total, whichever the object has).');
    execute format('comment on column %I.currency is %L', t, 'Three-letter ISO currency code, lower case.');
    execute format('comment on column %I.created is %L', t, 'When Stripe created the object (NULL for invoice lines, which carry no created).');
    execute format('comment on column %I.livemode is %L', t, 'true for live mode, false for test mode.');
    execute format('comment on column %I.account is %L', t, 'Stripe Connect account (acct_...) the object belongs to; NULL for the platform.');
    execute format('comment on column %I.deleted is %L', t, 'Tombstone: a *.deleted event arrived. The row and its data stay; an older update never clears this.');
    execute format('comment on column %I.data is %L', t, 'The newest full snapshot of the object, as Stripe sent it.');
    execute format('comment on column %I.api_version is %L', t, 'Stripe API version the snapshot in data was rendered in (shapes differ between versions).');
    execute format('comment on column %I.last_event_id is %L', t, 'The Stripe event (evt_...) whose snapshot is in data. Join events on event_id to see it.');
    execute format('comment on column %I.last_event_created is %L', t, 'created of that event: the first part of the order key that decides which snapshot is newest.');
    execute format('comment on column %I.last_event_rank is %L', t, 'Lifecycle rank of the snapshot''s status: breaks ties between events of the same second (later state wins).');
    execute format('comment on column %I.updated_at is %L', t, 'When webhook-inbox last wrote this row.');
    execute format('comment on column %I.version is %L', t,
      'How many times the row changed: 1 when created, one more for each newer snapshot, tombstone or parent link set.');
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

-- The link tables: one row per (child, parent) pair the child's newest snapshot names and whose
-- parent row exists. The primary key leads with the child; the second index finds the children of
-- a parent.
create table invoice_discounts (
  invoice_id text not null references invoices (id),
  discount_id text not null references discounts (id),
  primary key (invoice_id, discount_id)
);
create index invoice_discounts_discount_id_idx on invoice_discounts (discount_id);

create table subscription_item_tax_rates (
  subscription_item_id text not null references subscription_items (id),
  tax_rate_id text not null references tax_rates (id),
  primary key (subscription_item_id, tax_rate_id)
);
create index subscription_item_tax_rates_tax_rate_id_idx on subscription_item_tax_rates (tax_rate_id);

comment on table invoice_discounts is 'The discounts an invoice''s newest snapshot names (invoice.discounts), one row each; a discount that has not arrived waits in pending_links (link_column invoice_discounts).';
comment on column invoice_discounts.invoice_id is 'The invoice.';
comment on column invoice_discounts.discount_id is 'A discount (di_...) applied to it.';
comment on table subscription_item_tax_rates is 'The tax rates a subscription item''s newest snapshot names (item.tax_rates), one row each; they are tax_rates rows too.';
comment on column subscription_item_tax_rates.subscription_item_id is 'The subscription item.';
comment on column subscription_item_tax_rates.tax_rate_id is 'A tax rate (txr_...) applied to it.';

comment on table tax_rates is 'Stripe tax rates (txr_...), from tax_rate.* events and from the whole tax rates embedded in subscription items.';
comment on column tax_rates.percentage is 'The rate in percent, e.g. 19.';
comment on table coupons is 'Stripe coupons (ids chosen by their creator), from coupon.* events and from the whole coupons embedded in promotion codes and discounts before API 2025-09-30.';
comment on column coupons.name is 'The coupon''s name as customers see it.';
comment on column coupons.percent_off is 'Percent taken off, e.g. 25.5; NULL for an amount-off coupon (its amount is in amount).';
comment on table promotion_codes is 'Stripe promotion codes (promo_...): customer-facing codes for a coupon.';
comment on column promotion_codes.coupon_id is 'The coupon redeemed: promotion.coupon since API 2025-09-30, coupon before.';
comment on column promotion_codes.customer_id is 'The only customer who may redeem it; NULL for anyone.';
comment on column promotion_codes.code is 'The code customers type, e.g. WELCOME.';
comment on table discounts is 'Stripe discounts (di_...): a coupon applied to a customer or subscription, from customer.discount.* events. Discounts without an id (old API versions) are not folded.';
comment on column discounts.customer_id is 'The customer the discount belongs to.';
comment on column discounts.subscription_id is 'The subscription it applies to; NULL for a discount on the customer.';
comment on column discounts.coupon_id is 'The coupon applied: source.coupon since API 2025-09-30, coupon before.';
comment on column discounts.promotion_code_id is 'The promotion code redeemed for it, if any.';
comment on table invoice_line_items is 'Invoice lines (il_...), folded from the lines embedded in each invoice snapshot (the first page of them). Lines of API versions before 2019-12-03, whose ids were not their own, are not folded.';
comment on column invoice_line_items.invoice_id is 'The invoice the line is on.';
comment on column invoice_line_items.subscription_id is 'The subscription billed: parent.subscription_item_details.subscription or parent.invoice_item_details.subscription since API 2025-03-31, subscription before.';
comment on column invoice_line_items.price_id is 'The price billed: pricing.price_details.price since API 2025-03-31, price before.';
comment on table invoiceitems is 'Stripe invoice items (ii_...): one-off amounts added to a customer''s next invoice, or to a given one.';
comment on column invoiceitems.customer_id is 'The customer billed.';
comment on column invoiceitems.invoice_id is 'The invoice it is on; NULL while pending (not yet invoiced).';
comment on column invoiceitems.subscription_id is 'The subscription it belongs to: parent.subscription_details.subscription since API 2025-03-31, subscription before.';
comment on column invoiceitems.price_id is 'The price billed: pricing.price_details.price since API 2025-03-31, price before.';
comment on table setup_intents is 'Stripe setup intents (seti_...): saving a payment method for later payments.';
comment on column setup_intents.customer_id is 'The customer the payment method is saved for.';
comment on column setup_intents.payment_method_id is 'The payment method being set up.';
comment on table subscription_schedules is 'Stripe subscription schedules (sub_sched_...).';
comment on column subscription_schedules.customer_id is 'The customer.';
comment on column subscription_schedules.subscription_id is 'The subscription it manages; NULL before it starts and once released (data.released_subscription keeps the id).';
comment on table plans is 'Stripe plans, the pre-2018 form of recurring prices: integrations that use the Plans API still receive plan.* events. A plan shares its id with its price (both tables hold it).';
comment on column plans.product_id is 'The product the plan bills.';
comment on table tax_ids is 'Stripe tax ids (txi_...) of customers, from customer.tax_id.* events.';
comment on column tax_ids.customer_id is 'The customer: owner.customer, or customer in older snapshots.';
comment on table quotes is 'Stripe quotes (qt_...).';
comment on column quotes.customer_id is 'The customer the quote is for.';
comment on column quotes.subscription_id is 'The subscription accepting the quote created, if any.';
comment on column quotes.invoice_id is 'The invoice accepting the quote created, if any.';
comment on table payouts is 'Stripe payouts (po_...) to the account''s bank account or card.';
comment on column payouts.arrival_date is 'When the payout is expected to arrive (or arrived).';
comment on table early_fraud_warnings is 'Stripe Radar early fraud warnings (issfr_...): a card issuer reported a charge as likely fraud.';
comment on column early_fraud_warnings.charge_id is 'The charge reported.';
comment on column early_fraud_warnings.payment_intent_id is 'The payment intent of that charge.';
comment on column early_fraud_warnings.fraud_type is 'The kind of fraud reported (card_never_received, fraudulent_card_application, misc, ...).';
comment on table accounts is 'Stripe Connect accounts (acct_...) of a platform, from account.* events.';
comment on column accounts.charges_enabled is 'Whether the account can create charges.';
comment on column accounts.payouts_enabled is 'Whether Stripe can send payouts to the account.';
comment on table transfers is 'Stripe Connect transfers (tr_...) from the platform to a connected account.';
comment on column transfers.destination_account_id is 'The connected account receiving the transfer (transfer.destination).';

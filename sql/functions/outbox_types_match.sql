-- Whether a subscription's `types` wants a message type: NULL wants everything; otherwise an exact
-- type (invoice.updated), `*`, or a prefix pattern ending in `.*` (invoice.*, checkout.session.*).
create or replace function outbox_types_match(p_types text[], p_type text) returns boolean
language sql immutable as $$
  select p_types is null
      or exists (select 1 from unnest(p_types) p
                  where p = p_type or p = '*' or (p like '%.*' and starts_with(p_type, left(p, -1))))
$$;

comment on function outbox_types_match(text[], text) is
  'Whether a subscription''s types (NULL: all; exact, *, or prefix.*) want the message type p_type.';

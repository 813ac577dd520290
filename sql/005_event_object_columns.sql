-- The object an event is about, as columns. 003 indexed expressions over the payload instead, and
-- every non-HOT update of an event row (the claim, then PROCESSED) had to decompress the payload
-- and walk it twice to maintain those two indexes: the drain folded 1,620-1,750 events/s with
-- them and 1,810-1,990 without (npm run bench -- --phases drain, two runs each). A stored
-- generated column is computed when the row is inserted; updates that leave the payload alone
-- do not compute it again, and the index reads it from the row.
--
-- Adding a stored generated column rewrites the table under an exclusive lock: on a large events
-- table, run this migration in a quiet hour.

drop index if exists events_object_id_idx;
drop index if exists events_object_customer_idx;

alter table events
  add column object_id text generated always as (payload #>> '{data,object,id}') stored,
  add column object_customer text generated always as (payload #>> '{data,object,customer}') stored;

create index events_object_id_idx on events (object_id);
create index events_object_customer_idx on events (object_customer) where object_customer is not null;

comment on column events.object_id is
  'data.object.id of the payload (in_1Abc, cus_9Xyz, ...): which object the event is about. Indexed; the object_events view reads it.';
comment on column events.object_customer is
  'data.object.customer of the payload: the customer the object belongs to, when it names one. Indexed; the customer_timeline view reads it.';

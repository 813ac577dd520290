-- Indexes for the per-object timelines support staff read. The views over them (event_backlog,
-- failed_events, orphans, object_events, customer_timeline) live in sql/functions/, one file each.

-- Per-object timelines look events up by the object in the payload. "if not exists": on a large
-- events table an operator can build these first with CREATE INDEX CONCURRENTLY under the same
-- names, and this migration then takes no long lock. (005 replaced both with indexes on stored columns.)
create index if not exists events_object_id_idx on events ((payload #>> '{data,object,id}'));
create index if not exists events_object_customer_idx on events ((payload #>> '{data,object,customer}'))
  where payload #>> '{data,object,customer}' is not null;

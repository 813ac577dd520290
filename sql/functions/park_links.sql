-- The pending_links half of a fold: parks the links of one child row whose parents have not
-- arrived, and forgets those the child no longer waits for (its newest snapshot names another
-- parent, or none, or the parent exists now). Called by every fold_write_<table> writer.
create or replace function park_links(p_child_table text, p_child_id text, p_existing boolean, p_parked jsonb, p_event_id text)
returns void
language plpgsql as $$
begin
  if p_existing then
    delete from pending_links l
     where l.child_table = p_child_table and l.child_id = p_child_id
       and not exists (select 1 from jsonb_array_elements(p_parked) p
                        where p ->> 'link_column' = l.link_column and p ->> 'parent_id' = l.parent_id);
  end if;
  if jsonb_array_length(p_parked) > 0 then
    -- A link still waiting for the same parent keeps its `since`: the orphans view ages it.
    insert into pending_links (child_table, child_id, link_column, parent_table, parent_id, event_id)
    select p_child_table, p_child_id, p ->> 'link_column', p ->> 'parent_table', p ->> 'parent_id', p_event_id
      from jsonb_array_elements(p_parked) p
    on conflict (child_table, child_id, link_column, parent_id) do update set event_id = excluded.event_id;
  end if;
end
$$;

comment on function park_links(text, text, boolean, jsonb, text) is
  'Parks the links of one child row that wait for a parent, and drops the ones it no longer waits for. Called by the fold writers.';

// The fold's per-table functions, rendered from the Stripe catalogue (stripe/catalog.ts) and
// applied by the migration runner on every migrate, beside the hand-written ones in
// sql/functions/. One writer per object table, so every statement in it is static and planned
// once per connection (a generic writer with dynamic SQL is planned on every call: too slow for
// the fold), and each names its columns: a column the catalogue promotes but the table lacks
// fails the writer, never vanishes (test/catalog.test.ts names it before that).
//
//   fold_write_<table>(w, data)    writes one planned row if its snapshot is the newest; sets or
//                                  parks its links; for a new row, resolves the links waiting for it
//   resolve_links_to_<table>(id, event)  sets every parked link that waited for that (new) parent row
//   fold_write(w, data), resolve_links(table, id)   dispatch on the table name
// Every change of a row (and only a change: never a stale or repeated snapshot) is handed, with the
// row's version, data and links, to outbox_enqueue() (sql/functions/), in the same transaction.
//
// w, as db/fold.ts sends it: {"table", "id", "row": {column: value, ..., last_event_created,
// last_event_rank, last_event_id}, "links": {column: parent id | null}, "many": {link table:
// [parent id, ...]}, "data_path"}; data, the snapshot, read by fold_item_locked() at data_path.
import { BY_TABLE, COMMON_COLUMNS, TABLES, tableOf, type ObjectSpec } from '../stripe/catalog.ts';

export type RenderedFunction = { name: string; sql: string };

const COMMON_WRITTEN = ['status', 'amount', 'currency', 'created', 'livemode', 'account', 'api_version'] as const;

const literal = (s: string) => `'${s.replaceAll("'", "''")}'`;
const ident = (s: string) => {
  if (!/^[a-z_][a-z0-9_]*$/.test(s)) throw new Error(`not a plain identifier: ${s}`);
  return s;
};
/** The planned value of a promoted or common column, cast to its type. */
const rowValue = (column: string, type: string) =>
  type === 'text' ? `v_row ->> ${literal(column)}` : `(v_row ->> ${literal(column)})::${type}`;

function objectResult(table: string, action: string, version: string, parked: string, resolved: string): string {
  return `jsonb_build_object('object', jsonb_build_object('table', ${literal(table)}, 'id', v_id, 'action', ${action}, 'version', ${version}),
                            'parked', ${parked}, 'resolved', ${resolved})`;
}

/** The row's link columns as one jsonb object, for the outbox message (`{}` when it has none). */
function linksJson(spec: ObjectSpec): string {
  if (spec.links.length === 0) return `'{}'::jsonb`;
  return `jsonb_build_object(${spec.links.map((l) => `${literal(l.column)}, ${ident(l.column)}`).join(', ')})`;
}

/** Hands one row change to the outbox (sql/functions/outbox_enqueue.sql). */
const enqueue = (spec: ObjectSpec, id: string, action: string, event: string) =>
  `perform outbox_enqueue(${literal(spec.object)}, ${literal(spec.table)}, ${id}, ${action}, v_version, ${event}, v_data, v_links);`;

function renderWriter(spec: ObjectSpec): RenderedFunction {
  const t = ident(spec.table);
  const changed = `returning version, data, ${linksJson(spec)} into v_version, v_data, v_links`;
  const name = `fold_write_${t}`;
  const links = spec.links.map((l) => ({ column: ident(l.column), parent: ident(tableOf(l.parent)), v: `l_${ident(l.column)}` }));
  const many = spec.many.map((m) => ({
    table: ident(m.table),
    child: ident(m.childColumn),
    parentColumn: ident(m.parentColumn),
    parent: ident(tableOf(m.parent)),
    v: `m_${ident(m.table)}`,
  }));
  const promoted = Object.entries(spec.columns).map(([c, s]) => ({ column: ident(c), type: s.type }));
  const written = [
    ...links.map((l) => ({ column: l.column, value: l.v })),
    ...promoted.map((p) => ({ column: p.column, value: rowValue(p.column, p.type) })),
    ...COMMON_WRITTEN.map((c) => ({ column: c, value: rowValue(c, COMMON_COLUMNS[c]) })),
    { column: 'data', value: 'p_data' },
    { column: 'last_event_id', value: 'v_event' },
    { column: 'last_event_created', value: 'v_created' },
    { column: 'last_event_rank', value: 'v_rank' },
  ];
  const park = (column: string, parent: string, id: string) =>
    `v_parked := v_parked || jsonb_build_object('child_table', ${literal(t)}, 'child_id', v_id, 'link_column', ${literal(column)}, 'parent_table', ${literal(parent)}, 'parent_id', ${id});`;

  const sql = `create or replace function ${name}(w jsonb, p_data jsonb) returns jsonb
language plpgsql as $body$
declare
  v_id text := w ->> 'id';
  v_row jsonb := w -> 'row';
  v_created timestamptz := (v_row ->> 'last_event_created')::timestamptz;
  v_rank integer := (v_row ->> 'last_event_rank')::integer;
  v_event text := v_row ->> 'last_event_id';
  v_deleted boolean := coalesce((v_row ->> 'deleted')::boolean, false);
  v_prev record;
  v_found boolean;
  v_version bigint;
  v_data jsonb;
  v_links jsonb;
  v_action text;
  v_parked jsonb := '[]';
  v_resolved jsonb := '[]';
  v_pending boolean;${links.map((l) => `\n  ${l.v} text := w -> 'links' ->> ${literal(l.column)};\n  ${l.v}_ok boolean;`).join('')}${many
    .map((m) => `\n  ${m.v}_linked text[] := '{}';\n  ${m.v}_missing text[] := '{}';`)
    .join('')}${many.length ? '\n  p text;' : ''}
begin
  select last_event_created, last_event_rank, last_event_id, deleted into v_prev from ${t} where id = v_id;
  v_found := found;
  -- Newest wins: (event.created, lifecycle rank, event id), ids compared bytewise.
  if v_found and not ((v_created, v_rank, v_event collate "C")
                      > (v_prev.last_event_created, v_prev.last_event_rank, v_prev.last_event_id collate "C")) then
    -- An older snapshot never overwrites; but a deletion, however late, marks the tombstone.
    if v_deleted and not v_prev.deleted then
      update ${t} set deleted = true, version = version + 1, updated_at = now() where id = v_id ${changed};
      v_action := 'deleted';
      ${enqueue(spec, 'v_id', 'v_action', 'v_event')}
    elsif v_prev.last_event_id = v_event then
      v_action := 'unchanged';
    else
      v_action := 'stale';
    end if;
    return ${objectResult(t, 'v_action', 'v_version', `'[]'::jsonb`, `'[]'::jsonb`)};
  end if;

  -- This snapshot wins: set each link whose parent exists, park the others. One statement asks
  -- which parents exist and whether this row has parked links to forget (only this row's writer
  -- parks them, under the row's lock held here): a statement costs more than its index probes.
  select ${[...links.map((l) => `${l.v} is null or exists (select 1 from ${l.parent} where id = ${l.v})`), `v_found and exists (select 1 from pending_links where child_table = ${literal(t)} and child_id = v_id)`].join(',\n         ')}
    into ${[...links.map((l) => `${l.v}_ok`), 'v_pending'].join(', ')};${links
    .map(
      (l) => `
  if not ${l.v}_ok then
    ${park(l.column, l.parent, l.v)}
    ${l.v} := null;
  end if;`,
    )
    .join('')}${many
    .map(
      (m) => `
  -- A set is read only when there is one (most writes have none), with its parents' existence.
  if jsonb_array_length(coalesce(w -> 'many' -> ${literal(m.table)}, '[]')) > 0 then
    select coalesce(array_agg(x order by x) filter (where e), '{}'), coalesce(array_agg(x order by x) filter (where not e), '{}')
      into ${m.v}_linked, ${m.v}_missing
      from (select x, exists (select 1 from ${m.parent} where id = x) as e
              from jsonb_array_elements_text(w -> 'many' -> ${literal(m.table)}) x) s;
    foreach p in array ${m.v}_missing loop
      ${park(m.table, m.parent, 'p')}
    end loop;
  end if;`,
    )
    .join('')}

  -- Park before writing the row: a parent resolving this child in parallel then waits on the
  -- pending_links row, never on a row lock held here, so the two cannot deadlock. Most writes
  -- have nothing to park and nothing to forget.
  if v_parked <> '[]' or v_pending then
    perform park_links(${literal(t)}, v_id, v_found, v_parked, v_event);
  end if;

  if v_found then
    update ${t} set
      ${written.map((c) => `${c.column} = ${c.value}`).join(',\n      ')},
      deleted = deleted or v_deleted,
      version = version + 1,
      updated_at = now()
    where id = v_id
    ${changed};
    v_action := case when v_deleted and not v_prev.deleted then 'deleted' else 'updated' end;
  else
    insert into ${t} (id, ${written.map((c) => c.column).join(', ')}, deleted, version)
    values (v_id, ${written.map((c) => c.value).join(', ')}, v_deleted, 1)
    ${changed};
    v_action := 'created';
  end if;${many
    .map(
      (m) => `
  if v_found then
    delete from ${m.table} where ${m.child} = v_id and ${m.parentColumn} <> all (${m.v}_linked);
  end if;
  if cardinality(${m.v}_linked) > 0 then
    insert into ${m.table} (${m.child}, ${m.parentColumn}) select v_id, unnest(${m.v}_linked) on conflict do nothing;
  end if;`,
    )
    .join('')}
  ${enqueue(spec, 'v_id', 'v_action', 'v_event')}${
    isParent(t)
      ? `

  if not v_found then
    v_resolved := resolve_links_to_${t}(v_id, v_event);
  end if;`
      : ''
  }
  return ${objectResult(t, 'v_action', 'v_version', 'v_parked', 'v_resolved')};
end
$body$;
comment on function ${name}(jsonb, jsonb) is ${literal(`Writes one planned ${t} row if its snapshot is the newest; sets or parks its links. Rendered from the Stripe catalogue by src/db/fold-sql.ts.`)};`;
  return { name, sql };
}

/** Every link (column or link table) that points at `table`, with the child table it sits in. */
function linksTo(table: string): { child: ObjectSpec; column?: string; many?: ObjectSpec['many'][number] }[] {
  const found: { child: ObjectSpec; column?: string; many?: ObjectSpec['many'][number] }[] = [];
  for (const child of BY_TABLE.values()) {
    for (const l of child.links) if (tableOf(l.parent) === table) found.push({ child, column: l.column });
    for (const m of child.many) if (tableOf(m.parent) === table) found.push({ child, many: m });
  }
  return found;
}

const isParent = (table: string) => linksTo(table).length > 0;

function renderResolver(table: string): RenderedFunction {
  const t = ident(table);
  const name = `resolve_links_to_${t}`;
  const arms = linksTo(t).map(({ child, column, many }) => {
    const c = ident(child.table);
    const changed = `returning version, data, ${linksJson(child)} into v_version, v_data, v_links;
        ${enqueue(child, 'r.child_id', `'updated'`, 'p_event')}`;
    if (column) {
      return `      when ${literal(`${c}.${column}`)} then
        update ${c} set ${ident(column)} = p_id, version = version + 1, updated_at = now() where id = r.child_id ${changed}`;
    }
    const m = many!;
    return `      when ${literal(`${c}.${m.table}`)} then
        insert into ${ident(m.table)} (${ident(m.childColumn)}, ${ident(m.parentColumn)}) values (r.child_id, p_id) on conflict do nothing;
        update ${c} set version = version + 1, updated_at = now() where id = r.child_id ${changed}`;
  });
  const sql = `create or replace function ${name}(p_id text, p_event text default null) returns jsonb
language plpgsql as $body$
declare
  r record;
  v_version bigint;
  v_data jsonb;
  v_links jsonb;
  v_resolved jsonb := '[]';
begin
  for r in
    delete from pending_links where parent_table = ${literal(t)} and parent_id = p_id
    returning child_table, child_id, link_column
  loop
    v_version := null;
    case r.child_table || '.' || r.link_column
${arms.join('\n')}
      else
        raise exception '${name}: no link %.% in the catalogue', r.child_table, r.link_column;
    end case;
    v_resolved := v_resolved || jsonb_build_object('child_table', r.child_table, 'child_id', r.child_id,
      'link_column', r.link_column, 'parent_table', ${literal(t)}, 'parent_id', p_id, 'child_version', v_version);
  end loop;
  return v_resolved;
end
$body$;
comment on function ${name}(text, text) is ${literal(`Sets every parked link that waited for the ${t} row p_id (which must exist), and returns them; p_event is the event that brought the parent, for the outbox. Rendered from the Stripe catalogue by src/db/fold-sql.ts.`)};`;
  return { name, sql };
}

function renderDispatch(): RenderedFunction[] {
  const parents = TABLES.filter(isParent);
  const write = `create or replace function fold_write(w jsonb, p_data jsonb) returns jsonb
language plpgsql as $body$
begin
  case w ->> 'table'
${TABLES.map((t) => `    when ${literal(t)} then return fold_write_${t}(w, p_data);`).join('\n')}
    else raise exception 'fold_write: % is not a table of the catalogue', w ->> 'table';
  end case;
end
$body$;
comment on function fold_write(jsonb, jsonb) is 'Writes one planned row and its snapshot with the writer of its table (fold_write_<table>). Rendered from the Stripe catalogue by src/db/fold-sql.ts.';`;
  const resolve = `create or replace function resolve_links(p_table text, p_id text) returns jsonb
language plpgsql as $body$
begin
  case p_table
${parents.map((t) => `    when ${literal(t)} then return resolve_links_to_${t}(p_id);`).join('\n')}
    else return '[]'::jsonb;
  end case;
end
$body$;
comment on function resolve_links(text, text) is 'Sets every parked link waiting for the row p_table.p_id; the link sweeper''s entry. Rendered from the Stripe catalogue by src/db/fold-sql.ts.';`;
  return [
    { name: 'fold_write', sql: write },
    { name: 'resolve_links', sql: resolve },
  ];
}

/** Every function the catalogue implies, in a stable order. */
export function renderFoldFunctions(): RenderedFunction[] {
  return [
    ...TABLES.map((t) => renderWriter(BY_TABLE.get(t)!)),
    ...TABLES.filter(isParent).map(renderResolver),
    ...renderDispatch(),
  ];
}

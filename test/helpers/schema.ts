// What a database's schema is, read from Postgres's catalogue, in a form two databases (or a
// database and the files in sql/) can be compared with.
import type postgres from 'postgres';

export type FunctionDef = { name: string; args: string; body: string };
export type Schema = {
  functions: FunctionDef[];
  views: { name: string; definition: string }[];
  columns: { table: string; column: string; type: string; nullable: boolean; default: string | null }[];
  constraints: { table: string; name: string; definition: string }[];
  indexes: { table: string; name: string; definition: string }[];
};

/** The functions, views, columns, constraints and indexes of `schema` (extensions' own left out). */
export async function readSchema(sql: postgres.Sql, schema = 'public'): Promise<Schema> {
  const functions = await sql<FunctionDef[]>`
    select p.proname as name, pg_get_function_identity_arguments(p.oid) as args, p.prosrc as body
      from pg_proc p join pg_namespace n on n.oid = p.pronamespace
     where n.nspname = ${schema}
       and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')
     order by 1, 2`;
  const views = await sql<{ name: string; definition: string }[]>`
    select viewname as name, definition from pg_views where schemaname = ${schema} order by 1`;
  const columns = await sql<Schema['columns']>`
    select c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as type,
           not a.attnotnull as nullable, pg_get_expr(d.adbin, d.adrelid) as default
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid and c.relkind in ('r', 'p', 'v')
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = ${schema}
      left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
     where a.attnum > 0 and not a.attisdropped
     order by 1, 2`;
  const constraints = await sql<Schema['constraints']>`
    select c.relname as table, k.conname as name, pg_get_constraintdef(k.oid) as definition
      from pg_constraint k join pg_class c on c.oid = k.conrelid
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = ${schema}
     order by 1, 2`;
  const indexes = await sql<Schema['indexes']>`
    select tablename as table, indexname as name, indexdef as definition
      from pg_indexes where schemaname = ${schema} order by 1, 2`;
  return {
    functions: [...functions],
    views: [...views],
    columns: [...columns],
    constraints: [...constraints],
    indexes: [...indexes],
  };
}

/** One line per difference between two lists keyed by `key`: what only one side has, and what differs. */
export function differences<T>(what: string, key: (x: T) => string, left: T[], right: T[], leftName: string, rightName: string): string[] {
  const a = new Map(left.map((x) => [key(x), x]));
  const b = new Map(right.map((x) => [key(x), x]));
  const out: string[] = [];
  for (const [k, x] of a) {
    if (!b.has(k)) out.push(`${what} ${k}: only in ${leftName}`);
    else if (JSON.stringify(x) !== JSON.stringify(b.get(k))) out.push(`${what} ${k}: differs between ${leftName} and ${rightName}`);
  }
  for (const k of b.keys()) if (!a.has(k)) out.push(`${what} ${k}: only in ${rightName}`);
  return out;
}

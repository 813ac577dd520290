// The Stripe catalogue (src/stripe/catalog.ts) and the schema (sql/) agree: every table, column,
// foreign key and index the catalogue implies exists, with the type the writer casts to; and
// every value the fold plans for a realistic snapshot of each object is stored, none dropped.
import { isDeepStrictEqual } from 'node:util';
import t from 'tap';
import fixtures from '../scripts/lib/fixtures/stripe-objects.json' with { type: 'json' };
import { BY_TABLE, COMMON_COLUMNS, TABLES, tableOf, type ColumnType } from '../src/stripe/catalog.ts';
import { planEvent, type PlannedWrite } from '../src/stripe/graph.ts';
import { createTestDatabase } from './helpers/db.ts';
import { drain, resetGraph, storeEvents, stripeEv, type Ev } from './helpers/fold.ts';
import { readSchema } from './helpers/schema.ts';
import { buildStream } from '../scripts/lib/stream.ts';

const db = await createTestDatabase(t);
const sql = db.sql;

/** format_type() of each catalogue type. */
const PG_TYPE: Record<ColumnType | 'jsonb', string> = {
  text: 'text',
  bigint: 'bigint',
  integer: 'integer',
  boolean: 'boolean',
  timestamptz: 'timestamp with time zone',
  numeric: 'numeric',
  jsonb: 'jsonb',
};

/** Everything the catalogue implies that the schema lacks or has otherwise, one line each. */
async function disagreements(): Promise<string[]> {
  const schema = await readSchema(sql);
  const out: string[] = [];
  const column = (table: string, name: string) => schema.columns.find((c) => c.table === table && c.column === name);
  const expectColumn = (table: string, name: string, type: string) => {
    const c = column(table, name);
    if (!c) out.push(`${table}.${name}: missing from the schema`);
    else if (c.type !== type) out.push(`${table}.${name}: is ${c.type} in the schema, ${type} in the catalogue`);
  };
  const expectForeignKey = (table: string, name: string, parent: string) => {
    const fk = schema.constraints.find((k) => k.table === table && k.definition === `FOREIGN KEY (${name}) REFERENCES ${parent}(id)`);
    if (!fk) out.push(`${table}.${name}: no foreign key to ${parent}(id)`);
  };
  const expectIndex = (table: string, name: string) => {
    const ix = schema.indexes.find((i) => i.table === table && new RegExp(`\\(${name}[,)]`).test(i.definition));
    if (!ix) out.push(`${table}.${name}: no index leads with it`);
  };

  for (const table of TABLES) {
    const spec = BY_TABLE.get(table)!;
    if (!schema.columns.some((c) => c.table === table)) {
      out.push(`${table}: no such table`);
      continue;
    }
    expectColumn(table, 'id', 'text');
    for (const [name, type] of Object.entries(COMMON_COLUMNS)) expectColumn(table, name, PG_TYPE[type]);
    for (const [name, c] of Object.entries(spec.columns)) expectColumn(table, name, PG_TYPE[c.type]);
    for (const l of spec.links) {
      expectColumn(table, l.column, 'text');
      expectForeignKey(table, l.column, tableOf(l.parent));
      expectIndex(table, l.column);
    }
    for (const m of spec.many) {
      expectColumn(m.table, m.childColumn, 'text');
      expectColumn(m.table, m.parentColumn, 'text');
      expectForeignKey(m.table, m.childColumn, table);
      expectForeignKey(m.table, m.parentColumn, tableOf(m.parent));
      expectIndex(m.table, m.childColumn);
      expectIndex(m.table, m.parentColumn);
    }
    // Nothing in the table that the writer does not set either.
    const known = new Set(['id', ...Object.keys(COMMON_COLUMNS), ...Object.keys(spec.columns), ...spec.links.map((l) => l.column)]);
    for (const c of schema.columns.filter((c) => c.table === table && !known.has(c.column))) {
      out.push(`${table}.${c.column}: in the schema, not in the catalogue (the fold never writes it)`);
    }
  }
  const objectTables = new Set(schema.columns.filter((c) => c.column === 'last_event_id').map((c) => c.table));
  for (const table of objectTables) if (!BY_TABLE.has(table)) out.push(`${table}: an object table the catalogue does not know`);
  return out;
}

t.test('every table, column, foreign key and index the catalogue implies exists', async (t) => {
  t.same(await disagreements(), []);
});

t.test('a misspelt or missing column, a missing foreign key and a stray column are each named', async (t) => {
  await sql`alter table invoices rename column number to numbr`;
  await sql`alter table charges drop constraint charges_invoice_id_fkey`;
  await sql`alter table refunds add column note text`;
  t.teardown(async () => {
    await sql`alter table invoices rename column numbr to number`;
    await sql`alter table charges add foreign key (invoice_id) references invoices (id)`;
    await sql`alter table refunds drop column note`;
  });
  t.same((await disagreements()).sort(), [
    'charges.invoice_id: no foreign key to invoices(id)',
    'invoices.number: missing from the schema',
    'invoices.numbr: in the schema, not in the catalogue (the fold never writes it)',
    'refunds.note: in the schema, not in the catalogue (the fold never writes it)',
  ]);
});

/** A stored value in the form the plan has it (postgres.js returns bigint as text, timestamptz as Date). */
function asPlanned(v: unknown): unknown {
  if (v instanceof Date) return v.toISOString();
  return v;
}

t.test('every value the fold plans is stored, none dropped', async (t) => {
  // A realistic stream, plus one fixture event per object the stream lacks.
  const all = fixtures as Record<string, Record<string, unknown>>;
  const missing = [...BY_TABLE.values()].filter((s) => !all[s.object]).map((s) => s.object);
  t.same(missing, [], 'a fixture for every object of the catalogue (scripts/lib/fixtures/stripe-objects.json)');
  const stream: Ev[] = buildStream({ seed: 11, customers: 4 });
  const inStream = new Set(stream.map((e) => e.data.object.object));
  let n = 0;
  for (const spec of BY_TABLE.values()) {
    if (!inStream.has(spec.object) && all[spec.object]) {
      stream.push(stripeEv(`evt_zcat_${++n}`, `${spec.object}.updated`, 1_900_000_000, all[spec.object]!));
    }
  }
  await resetGraph(sql);
  await storeEvents(sql, stream);
  await drain(sql, { concurrency: 1, batchSize: 1 });

  // Each row holds the write planned by the event it names as its last.
  const planned = new Map<string, PlannedWrite>();
  for (const e of stream) {
    const plan = planEvent(e);
    if (plan.kind === 'fold') for (const w of plan.writes) planned.set(`${w.table}:${w.id}:${w.key.eventId}`, w);
  }
  const dropped: string[] = [];
  const valued = new Set<string>();
  for (const table of TABLES) {
    for (const row of await sql.unsafe(`select * from ${table}`)) {
      const w = planned.get(`${table}:${row.id}:${row.last_event_id}`);
      if (!w) {
        dropped.push(`${table}/${row.id}: no planned write for ${row.last_event_id}`);
        continue;
      }
      for (const [k, v] of Object.entries(w.columns)) {
        if (v !== null) valued.add(`${table}.${k}`);
        const stored = asPlanned(row[k]);
        if (typeof v === 'number' ? Number(stored) !== v : JSON.stringify(stored) !== JSON.stringify(v)) {
          dropped.push(`${table}/${row.id}.${k}: planned ${JSON.stringify(v)}, stored ${JSON.stringify(stored)}`);
        }
      }
      for (const l of w.links) {
        if (row[l.column] === l.parentId) continue;
        // A parent outside the stream (a fixture's) never arrives: its link must be parked.
        const [waiting] = await sql`select 1 from pending_links where child_table = ${table} and child_id = ${row.id}
                                      and link_column = ${l.column} and parent_id = ${l.parentId}`;
        if (row[l.column] !== null || !waiting) dropped.push(`${table}/${row.id}.${l.column}: planned ${l.parentId}, stored ${row[l.column]}, not parked`);
      }
      // A link table holds the planned parents that exist; the others are parked under its name.
      for (const m of w.many) {
        const link = BY_TABLE.get(table)!.many.find((x) => x.table === m.table)!;
        const linked = await sql.unsafe(`select ${link.parentColumn} as id from ${m.table} where ${link.childColumn} = $1`, [row.id]);
        const parked = await sql`select parent_id as id from pending_links where child_table = ${table} and child_id = ${row.id} and link_column = ${m.table}`;
        const stored = [...linked, ...parked].map((r) => r.id as string).sort();
        if (linked.length > 0) valued.add(m.table);
        if (JSON.stringify(stored) !== JSON.stringify(m.parentIds)) dropped.push(`${table}/${row.id}.${m.table}: planned ${m.parentIds}, linked or parked ${stored}`);
      }
      if (!isDeepStrictEqual(row.data, w.data)) dropped.push(`${table}/${row.id}.data differs from the snapshot`);
    }
  }
  t.same(dropped, [], 'every planned column, link and snapshot stored as planned');
  const never = [...BY_TABLE.values()]
    .flatMap((s) => [...Object.keys(s.columns).map((c) => `${s.table}.${c}`), ...s.many.map((m) => m.table)])
    .filter((c) => !valued.has(c));
  t.same(never, [], 'every promoted column and link table had a value somewhere, so the check above means something');
});

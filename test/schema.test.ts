// The database's live functions and views are exactly those in sql/functions/ and the fold
// writers rendered from the Stripe catalogue: nothing more, nothing less, no other body. And a
// database migrated with the old migrations, then with these, ends with the same schema as a fresh one.
import { mkdtemp, readdir, readFile, cp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type postgres from 'postgres';
import t from 'tap';
import { migrate, MigrationError, readRepeatables, SQL_DIR } from '../src/db/migrate.ts';
import { createHash } from 'node:crypto';
import legacy from './fixtures/legacy-migrations.json' with { type: 'json' };
import { createTestDatabase } from './helpers/db.ts';
import { differences, readSchema } from './helpers/schema.ts';

/** The body Postgres keeps of a function (prosrc): the text between its dollar quotes. */
function bodyOf(text: string): string {
  const m = /\$([a-z_]*)\$([\s\S]*?)\$\1\$/i.exec(text);
  if (!m) throw new Error(`no dollar-quoted body in:\n${text.slice(0, 200)}`);
  return m[2]!;
}

/** Each way the database's functions and views differ from the definitions the runner applies. */
async function catalogueDifferences(sql: postgres.Sql): Promise<string[]> {
  const defined = await readRepeatables();
  const live = await readSchema(sql);
  const out = differences(
    'function',
    (f) => f.name,
    defined.filter((r) => r.kind === 'function').map((r) => ({ name: r.name, body: bodyOf(r.text) })),
    live.functions.map((f) => ({ name: f.name, body: f.body })),
    'the files',
    'the database',
  ).map((d) => d.replace('differs between the files and the database', 'has another body in the database'));
  const overloaded = live.functions.filter((f, i, all) => all.findIndex((g) => g.name === f.name) !== i);
  for (const f of overloaded) out.push(`function ${f.name}: more than one in the database (${f.args})`);

  // A view's text is normalised by Postgres: create each file's view in a scratch schema and compare
  // what Postgres made of both.
  const views = defined.filter((r) => r.kind === 'view');
  const scratch = await sql.reserve();
  try {
    await scratch`begin`;
    await scratch`create schema wi_expected`;
    await scratch`set local search_path = wi_expected, public`;
    for (const v of views) await scratch.unsafe(v.text).simple();
    const expected = await scratch<{ name: string; definition: string }[]>`
      select viewname as name, definition from pg_views where schemaname = 'wi_expected'`;
    const actual = await scratch<{ name: string; definition: string }[]>`
      select viewname as name, definition from pg_views where schemaname = 'public'`;
    out.push(...differences('view', (v) => v.name, [...expected], [...actual], 'the files', 'the database'));
  } finally {
    await scratch`rollback`.catch(() => {});
    scratch.release();
  }
  return out;
}

t.test('the live functions and views are exactly the files and the catalogue writers', async (t) => {
  const db = await createTestDatabase(t);
  t.same(await catalogueDifferences(db.sql), [], 'no difference');
  const names = (await readRepeatables()).map((r) => r.name);
  t.ok(names.includes('fold_items') && names.includes('fold_write_invoices') && names.includes('orphans'), 'hand-written, rendered and views all counted');
});

t.test('the comparison names a stray function, a changed body and a changed view', async (t) => {
  const db = await createTestDatabase(t);
  await db.sql`create function stray_helper() returns int language sql as $$ select 1 $$`;
  await db.sql.unsafe(`create or replace function park_links(p_child_table text, p_child_id text, p_existing boolean, p_parked jsonb, p_event_id text)
    returns void language plpgsql as $$ begin end $$`);
  await db.sql`create or replace view event_backlog as select status, source, type, 0::bigint as events, 0::bigint as retrying, 0 as max_attempts,
    null::timestamptz as oldest_received_at, null::timestamptz as newest_received_at, null::interval as oldest_unprocessed_age from events`;
  t.same((await catalogueDifferences(db.sql)).sort(), [
    'function park_links: has another body in the database',
    'function stray_helper: only in the database',
    'view event_backlog: differs between the files and the database',
  ]);
});

t.test('each file in sql/functions creates exactly the function or view it is named after', async (t) => {
  const dir = (await mkdtemp(path.join(tmpdir(), 'wi-sql-'))) + '/';
  await cp(SQL_DIR, dir, { recursive: true });
  await writeFile(path.join(dir, 'functions', 'misnamed.sql'), 'create or replace function other_name() returns int language sql as $$ select 1 $$;\n');
  const err = await readRepeatables(dir).catch((e: unknown) => e);
  t.type(err, MigrationError);
  t.match((err as Error).message, /sql\/functions\/misnamed\.sql must create exactly one function or view, named misnamed; it creates other_name/);
});

t.test('no numbered migration defines a function or a view', async (t) => {
  const files = (await readdir(SQL_DIR)).filter((f) => /^\d{3}_.*\.sql$/.test(f));
  const offenders: string[] = [];
  for (const f of files) {
    const text = await readFile(path.join(SQL_DIR, f), 'utf8');
    if (/^\s*create\s+(or\s+replace\s+)?(function|view|procedure)\b/im.test(text)) offenders.push(f);
  }
  t.same(offenders, [], 'functions and views live in sql/functions/');
});

t.test('a database migrated by the old migrations, then by these, equals a fresh one', async (t) => {
  const fresh = await createTestDatabase(t);
  const old = await createTestDatabase(t);
  await old.sql`drop schema public cascade`;
  await old.sql`create schema public`;
  // What the runner of that time did: each landed file in a transaction, recorded with its checksum.
  await old.sql`create table schema_migrations (name text primary key, checksum text not null, applied_at timestamptz not null default now())`;
  for (const [name, text] of Object.entries(legacy.files)) {
    await old.sql.begin(async (tx) => {
      await tx.unsafe(text).simple();
      await tx`insert into schema_migrations (name, checksum) values (${name}, ${createHash('sha256').update(text).digest('hex')})`;
    });
  }
  // A row folded by the old functions, to see it survive with a version.
  const [{ result }] = (await old.sql`
    with e as (insert into events (source, event_id, type, created, payload)
               values ('stripe', 'evt_old', 'customer.created', now(), '{"id":"evt_old","data":{"object":{"id":"cus_old","object":"customer"}}}')
               returning id)
    select fold_event((select id from e), ${old.sql.json({
      lock_keys: ['customers:cus_old'],
      writes: [{ table: 'customers', id: 'cus_old', data_path: ['data', 'object'], links: [],
                 row: { email: 'old@example.com', deleted: false, last_event_created: '2025-01-01T00:00:00Z', last_event_rank: 0, last_event_id: 'evt_old' } }],
    })}) as result`) as any;
  t.match(result, { objects: [{ table: 'customers', id: 'cus_old', action: 'created' }] }, 'the old fold ran');

  const applied = await migrate(old.sql);
  t.ok(applied.includes('sql/functions') && applied.includes('007_fold_catalogue.sql'), 'the new migrations and the functions were applied');
  t.same(await migrate(old.sql), [], 'and a second run finds nothing to do');

  const [a, b] = [await readSchema(fresh.sql), await readSchema(old.sql)];
  t.same(differences('function', (f) => `${f.name}(${f.args})`, a.functions, b.functions, 'fresh', 'upgraded'), [], 'same functions');
  t.same(differences('view', (v) => v.name, a.views, b.views, 'fresh', 'upgraded'), [], 'same views');
  t.same(differences('column', (c) => `${c.table}.${c.column}`, a.columns, b.columns, 'fresh', 'upgraded'), [], 'same columns');
  t.same(differences('constraint', (c) => `${c.table}.${c.name}`, a.constraints, b.constraints, 'fresh', 'upgraded'), [], 'same constraints');
  t.same(differences('index', (i) => i.name, a.indexes, b.indexes, 'fresh', 'upgraded'), [], 'same indexes');
  t.same(await old.sql`select id, email, version from customers`, [{ id: 'cus_old', email: 'old@example.com', version: 1 }], 'the old row kept, at version 1');
});

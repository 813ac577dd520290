// Migrations: in order, once, under a lock, recorded; a failing one stops; every table and column
// is commented for the support staff who read the schema in psql.
import { mkdtemp, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { migrate, MigrationError, readMigrations, SQL_DIR } from '../src/db/migrate.ts';
import { createTestDatabase } from './helpers/db.ts';
import { runScript } from './helpers/spawn.ts';
import { root } from '../scripts/lib/service.ts';

t.test('running the migrations again is a no-op', async (t) => {
  const db = await createTestDatabase(t);
  const before = await db.sql`select name, applied_at from schema_migrations order by name`;
  t.ok(before.length >= 1, 'the template was migrated');
  t.same(await migrate(db.sql), []);
  t.same(await migrate(db.sql), []);
  t.same(await db.sql`select name, applied_at from schema_migrations order by name`, before);
});

t.test('instances starting together take turns and apply each file once', async (t) => {
  const db = await createTestDatabase(t);
  // An empty database: every file must be applied, each by exactly one of the three runners.
  await db.sql`drop schema public cascade`;
  await db.sql`create schema public`;
  const results = await Promise.all([migrate(db.sql), migrate(db.sql), migrate(db.sql)]);
  const all = (await readMigrations()).map((m) => m.name);
  t.same(results.flat().sort(), [...all, 'sql/functions'].sort(), 'applied exactly once across three runners');
  const [row] = await db.sql`select count(*)::int as n from information_schema.tables where table_name = 'events'`;
  t.equal(row!.n, 1);
});

t.test('a failing migration throws, rolls back, and is not recorded', async (t) => {
  const db = await createTestDatabase(t);
  const dir = (await mkdtemp(path.join(tmpdir(), 'wi-sql-'))) + '/';
  await cp(SQL_DIR, dir, { recursive: true });
  await writeFile(path.join(dir, '999_broken.sql'), 'create table half_done (x int);\nselect * from no_such_table;\n');
  const err = await migrate(db.sql, undefined, dir).catch((e: unknown) => e);
  t.type(err, MigrationError);
  t.match((err as Error).message, /999_broken\.sql/);
  const [rec] = await db.sql`select count(*)::int as n from schema_migrations where name = '999_broken.sql'`;
  t.equal(rec!.n, 0, 'not recorded');
  const [tbl] = await db.sql`select count(*)::int as n from information_schema.tables where table_name = 'half_done'`;
  t.equal(tbl!.n, 0, 'its first statement was rolled back');
});

t.test('an applied file that was edited stops the process', async (t) => {
  const db = await createTestDatabase(t);
  await db.sql`update schema_migrations set checksum = 'edited' where name = '001_events.sql'`;
  const err = await migrate(db.sql).catch((e: unknown) => e);
  t.type(err, MigrationError);
  t.match((err as Error).message, /forward-only/);
});

t.test('every table, view and column has a comment', async (t) => {
  const db = await createTestDatabase(t);
  const missing = await db.sql`
    select c.relname as "table", a.attname as "column"
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
    left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    where c.relkind in ('r', 'v', 'p')
      and (obj_description(c.oid, 'pg_class') is null
           or (a.attnum is not null and col_description(c.oid, a.attnum) is null))`;
  t.same(missing, [], 'nothing uncommented');
});

t.test('npm run migrate: says what it did, or why it could not, and exits accordingly', async (t) => {
  const db = await createTestDatabase(t);
  const cli = (url: string) =>
    runScript(process.execPath, [path.join(root, 'src/db/migrate-cli.ts')], { env: { DATABASE_URL: url, LOG_LEVEL: 'info' }, timeoutMs: 20_000 });
  const ok = await cli(db.url);
  t.equal(ok.code, 0);
  t.match(ok.stdout, /"msg":"database already up to date"/);
  // A malformed URL used to escape as an uncaught stack trace.
  const bad = await cli('postgres://user:secret@/db');
  t.equal(bad.code, 1);
  t.match(bad.stdout, /"level":60.*DATABASE_URL cannot be read.*"msg":"migration failed"/);
  t.equal(bad.stderr, '', 'no uncaught exception');
  t.notMatch(bad.stdout, /secret@/, 'without the password');
});

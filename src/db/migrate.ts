// Applies the schema, under an advisory lock so that instances starting together take turns:
//   1. sql/NNN_name.sql in order, each file once, in its own transaction. Forward-only: a landed
//      file must never change, and a failed migration throws (the caller stops the process).
//   2. Then the functions and views: sql/functions/<name>.sql, one each, plus the fold writers
//      rendered from the Stripe catalogue (db/fold-sql.ts). These are re-applied whenever any of
//      them changed (Flyway's "repeatable migrations"), so each has exactly one live body, the one
//      in its file, and a later migration never redefines it.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type postgres from 'postgres';
import type { Logger } from '../log.ts';
import { renderFoldFunctions } from './fold-sql.ts';

export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

// Any constant shared by every instance; "wimigr" in ASCII.
const MIGRATION_LOCK = 0x77696d69677200n;

export type Migration = { name: string; text: string; checksum: string };

/** A function or view applied at every migrate where it changed. */
export type Repeatable = { name: string; kind: 'function' | 'view'; text: string; checksum: string; source: string };

/**
 * Landed migrations rewritten once, when their functions and views moved to sql/functions/: only
 * those bodies were removed, the tables they create are the same. A database that applied the
 * earlier text (this checksum) is up to date with them; its ledger is updated to the new text.
 */
const REWRITTEN: Record<string, string> = {
  '002_stripe_graph.sql': '3456609c553f23c28aed92d9fda593d0d6e64c2dc74a9e6479a6882adba29bff',
  '003_operations.sql': 'e676f181da4616f74f051c7428b14c9f552ab1fe34760984c95a3d1309325cb5',
  '004_fold_batches.sql': '7a1ffb1ed7badc09e3dda22082a1fd477ef02143a2ec49f73284e129fb48bb96',
  '005_event_object_columns.sql': '57be59ee0f75589e1cebb4a2bdcfb4d10efc2df415e5dff6e0cba77840033a6d',
  '006_shared_parent_locks.sql': 'd8309b397be9a56f2e3fb5609b968ad77ab26518765ff5c462d594940911353c',
};

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

export async function readMigrations(dir = SQL_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    names.map(async (name) => {
      const text = await readFile(dir + name, 'utf8');
      return { name, text, checksum: sha256(text) };
    }),
  );
}

/**
 * The functions and views: each sql/functions/<name>.sql must create exactly the function or view
 * named after it, and the catalogue's rendered writers come after them.
 */
export async function readRepeatables(dir = SQL_DIR): Promise<Repeatable[]> {
  const folder = `${dir}functions/`;
  const files = (await readdir(folder)).filter((f) => f.endsWith('.sql')).sort();
  const fromFiles = await Promise.all(
    files.map(async (file) => {
      const text = await readFile(folder + file, 'utf8');
      const name = file.slice(0, -'.sql'.length);
      const created = [...text.matchAll(/^create (?:or replace )?(function|view) ([a-z_][a-z0-9_]*)\b/gim)];
      if (created.length !== 1 || created[0]![2] !== name) {
        throw new MigrationError(
          `sql/functions/${file} must create exactly one function or view, named ${name}; it creates ${created.map((c) => c[2]).join(', ') || 'none'}`,
        );
      }
      return { name, kind: created[0]![1]!.toLowerCase() as Repeatable['kind'], text, checksum: sha256(text), source: `sql/functions/${file}` };
    }),
  );
  const rendered = renderFoldFunctions().map((f) => ({
    name: f.name,
    kind: 'function' as const,
    text: f.sql,
    checksum: sha256(f.sql),
    source: 'src/db/fold-sql.ts',
  }));
  const all = [...fromFiles, ...rendered];
  const seen = new Set<string>();
  for (const r of all) {
    if (seen.has(r.name)) throw new MigrationError(`${r.name} is defined twice (${r.source} and another place)`);
    seen.add(r.name);
  }
  return all;
}

export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

/** Returns the names of the migrations it applied (empty when the database was up to date). */
export async function migrate(sql: postgres.Sql, log?: Logger, dir = SQL_DIR): Promise<string[]> {
  const migrations = await readMigrations(dir);
  const repeatables = await readRepeatables(dir);
  // The advisory lock is held by a session, so everything below runs on one reserved connection.
  const conn = await sql.reserve();
  const applied: string[] = [];
  try {
    // Lock and migrate without a statement timeout: another instance may hold the lock a while.
    await conn`set statement_timeout = 0`;
    await conn`select pg_advisory_lock(${MIGRATION_LOCK.toString()}::bigint)`;
    await createLedgers(conn);
    const done = new Map(
      (await conn<{ name: string; checksum: string }[]>`select name, checksum from schema_migrations`).map(
        (r) => [r.name, r.checksum],
      ),
    );
    for (const m of migrations) {
      const seen = done.get(m.name);
      if (seen !== undefined) {
        if (seen === m.checksum) continue;
        if (REWRITTEN[m.name] === seen) {
          await conn`update schema_migrations set checksum = ${m.checksum} where name = ${m.name}`;
          log?.info({ migration: m.name }, 'migration ledger updated: this file lost its functions and views to sql/functions');
          continue;
        }
        throw new MigrationError(
          `sql/${m.name} changed after it was applied; migrations are forward-only: undo the edit and add a new file instead`,
        );
      }
      await inTransaction(conn, `migration sql/${m.name}`, async () => {
        await conn.unsafe(m.text).simple();
        await conn`insert into schema_migrations (name, checksum) values (${m.name}, ${m.checksum})`;
      });
      applied.push(m.name);
      log?.info({ migration: m.name }, 'migration applied');
    }
    if (await applyRepeatables(conn, repeatables)) {
      applied.push('sql/functions');
      log?.info({ functions: repeatables.length }, 'functions and views applied');
    }
  } finally {
    await conn`select pg_advisory_unlock(${MIGRATION_LOCK.toString()}::bigint)`.catch(() => {});
    await conn`reset statement_timeout`.catch(() => {});
    conn.release();
  }
  return applied;
}

// The runner's own ledgers, created here because they must exist before any file runs.
async function createLedgers(conn: postgres.ReservedSql): Promise<void> {
  await conn.unsafe(`
    create table if not exists schema_migrations (
      name       text primary key,
      checksum   text not null,
      applied_at timestamptz not null default now()
    );
    comment on table schema_migrations is 'Which sql/*.sql files have been applied, by the migration runner. Never edit.';
    comment on column schema_migrations.name is 'File name in sql/.';
    comment on column schema_migrations.checksum is 'sha256 of the file when it was applied; a landed file must never change.';
    comment on column schema_migrations.applied_at is 'When it was applied.';
    create table if not exists schema_functions (
      name       text primary key,
      kind       text not null,
      checksum   text not null,
      applied_at timestamptz not null default now()
    );
    comment on table schema_functions is 'The functions and views the migration runner applied last (sql/functions/ and the fold writers rendered from the Stripe catalogue). Never edit.';
    comment on column schema_functions.name is 'Function or view name.';
    comment on column schema_functions.kind is 'function or view.';
    comment on column schema_functions.checksum is 'sha256 of its definition when it was applied; a different one makes the next migrate re-apply them all.';
    comment on column schema_functions.applied_at is 'When it was applied.';
  `).simple();
}

async function inTransaction(conn: postgres.ReservedSql, what: string, work: () => Promise<void>): Promise<void> {
  try {
    await conn`begin`;
    await work();
    await conn`commit`;
  } catch (err) {
    await conn`rollback`.catch(() => {});
    throw new MigrationError(`${what} failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Re-applies every function and view when any of them differs from what the ledger says was
 * applied: drops the views and functions of both the old and the new set (so a renamed or removed
 * one does not linger, and a changed signature or view column list is no obstacle), then creates
 * the new set, in one transaction. Never CASCADE: a view of your own on one of ours stops the
 * migration with Postgres's message rather than vanishing. Returns whether it applied anything.
 */
async function applyRepeatables(conn: postgres.ReservedSql, repeatables: Repeatable[]): Promise<boolean> {
  const ledger = await conn<{ name: string; kind: string; checksum: string }[]>`select name, kind, checksum from schema_functions`;
  const before = new Map(ledger.map((r) => [r.name, r]));
  const same = ledger.length === repeatables.length && repeatables.every((r) => before.get(r.name)?.checksum === r.checksum);
  if (same) return false;

  const names = (kind: string) => [...new Set([...ledger.filter((r) => r.kind === kind).map((r) => r.name), ...repeatables.filter((r) => r.kind === kind).map((r) => r.name)])];
  await inTransaction(conn, 'applying sql/functions', async () => {
    for (const view of names('view')) await conn.unsafe(`drop view if exists ${quoteIdent(view)}`);
    const fns = names('function');
    const overloads = await conn<{ signature: string }[]>`
      select p.oid::regprocedure::text as signature from pg_proc p
       where p.pronamespace = current_schema()::regnamespace and p.proname = any(${fns})`;
    for (const o of overloads) await conn.unsafe(`drop function ${o.signature}`);
    for (const r of [...repeatables.filter((r) => r.kind === 'function'), ...repeatables.filter((r) => r.kind === 'view')]) {
      try {
        await conn.unsafe(r.text).simple();
      } catch (err) {
        throw new Error(`${r.name} (${r.source}): ${(err as Error).message}`, { cause: err });
      }
    }
    await conn`delete from schema_functions`;
    for (const r of repeatables) {
      await conn`insert into schema_functions (name, kind, checksum) values (${r.name}, ${r.kind}, ${r.checksum})`;
    }
  });
  return true;
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** The migrations not yet applied (for /readyz). */
export async function pendingMigrations(sql: postgres.Sql, dir = SQL_DIR): Promise<string[]> {
  const migrations = await readMigrations(dir);
  const rows = await sql<{ name: string }[]>`
    select name from schema_migrations`.catch(() => [] as { name: string }[]);
  const done = new Set(rows.map((r) => r.name));
  return migrations.map((m) => m.name).filter((n) => !done.has(n));
}

// Applies sql/NNN_name.sql in order, each file in its own transaction, under an advisory lock so
// that instances starting together take turns. Forward-only: a landed file must never change, and
// a failed migration throws (the caller stops the process) rather than logging and carrying on.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type postgres from 'postgres';
import type { Logger } from '../log.ts';

export const SQL_DIR = fileURLToPath(new URL('../../sql/', import.meta.url));

// Any constant shared by every instance; "wimigr" in ASCII.
const MIGRATION_LOCK = 0x77696d69677200n;

export type Migration = { name: string; text: string; checksum: string };

export async function readMigrations(dir = SQL_DIR): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    names.map(async (name) => {
      const text = await readFile(dir + name, 'utf8');
      return { name, text, checksum: createHash('sha256').update(text).digest('hex') };
    }),
  );
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
  // The advisory lock is held by a session, so everything below runs on one reserved connection.
  const conn = await sql.reserve();
  const applied: string[] = [];
  try {
    // Lock and migrate without a statement timeout: another instance may hold the lock a while.
    await conn`set statement_timeout = 0`;
    await conn`select pg_advisory_lock(${MIGRATION_LOCK.toString()}::bigint)`;
    // The runner's own ledger, created here because it must exist before any file runs.
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
    `).simple();
    const done = new Map(
      (await conn<{ name: string; checksum: string }[]>`select name, checksum from schema_migrations`).map(
        (r) => [r.name, r.checksum],
      ),
    );
    for (const m of migrations) {
      const seen = done.get(m.name);
      if (seen !== undefined) {
        if (seen !== m.checksum) {
          throw new MigrationError(
            `sql/${m.name} changed after it was applied; migrations are forward-only: undo the edit and add a new file instead`,
          );
        }
        continue;
      }
      try {
        await conn`begin`;
        await conn.unsafe(m.text).simple();
        await conn`insert into schema_migrations (name, checksum) values (${m.name}, ${m.checksum})`;
        await conn`commit`;
      } catch (err) {
        await conn`rollback`.catch(() => {});
        throw new MigrationError(`migration sql/${m.name} failed: ${(err as Error).message}`, { cause: err });
      }
      applied.push(m.name);
      log?.info({ migration: m.name }, 'migration applied');
    }
  } finally {
    await conn`select pg_advisory_unlock(${MIGRATION_LOCK.toString()}::bigint)`.catch(() => {});
    await conn`reset statement_timeout`.catch(() => {});
    conn.release();
  }
  return applied;
}

/** The migrations not yet applied (for /readyz). */
export async function pendingMigrations(sql: postgres.Sql, dir = SQL_DIR): Promise<string[]> {
  const migrations = await readMigrations(dir);
  const rows = await sql<{ name: string }[]>`
    select name from schema_migrations`.catch(() => [] as { name: string }[]);
  const done = new Set(rows.map((r) => r.name));
  return migrations.map((m) => m.name).filter((n) => !done.has(n));
}

// A database per test file, cloned from the template that test/run.ts migrated. Dropped when the
// file ends, unless a test failed: then it is kept and its name printed for a look in psql.
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { connect } from '../../src/db/client.ts';

type TapTest = {
  teardown(fn: () => unknown): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
};

export type TestDatabase = { name: string; url: string; sql: postgres.Sql };

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is unset: run the tests with \`npm test\`, which starts a Postgres`);
  return value;
}

export function databaseUrl(name: string): string {
  const url = new URL(env('TEST_DATABASE_URL'));
  url.pathname = `/${name}`;
  return url.toString();
}

export async function createTestDatabase(t: TapTest): Promise<TestDatabase> {
  const name = `wi_test_${process.pid}_${randomBytes(3).toString('hex')}`;
  const admin = postgres(env('TEST_DATABASE_URL'), { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database ${name} template ${env('TEST_TEMPLATE_DB')}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(name);
  const sql = connect(url, { max: 10, statementTimeoutMs: 30_000, connectTimeoutMs: 5000 });
  t.teardown(async () => {
    await sql.end({ timeout: 1 });
    if (!t.passing()) {
      t.comment(`kept database ${name} of a failed test: psql ${url}`);
      return;
    }
    const drop = postgres(env('TEST_DATABASE_URL'), { max: 1, onnotice: () => {} });
    await drop.unsafe(`drop database if exists ${name} with (force)`);
    await drop.end();
  });
  return { name, url, sql };
}

// The database handles: one postgres.js pool for everything, and Kysely used as a typed query
// *builder* whose compiled SQL runs on that same pool or on an open postgres.js transaction.
// (Kysely's own postgres.js driver reserves a connection per query; compiling and handing the SQL
// to postgres.js keeps one pool, one transaction API, and the cheap hot path.)
import postgres from 'postgres';
import {
  DummyDriver,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type Compilable,
} from 'kysely';
import type { Database } from './schema.ts';

/** A pool or an open transaction: anything that runs a query. */
export type Sql = postgres.Sql | postgres.TransactionSql;

export type DbOptions = {
  max?: number;
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
  applicationName?: string;
};

export function connect(url: string, options: DbOptions = {}): postgres.Sql {
  try {
    return pool(url, options);
  } catch (err) {
    // postgres.js reads the URL here and throws a bare "Invalid URL" (e.g. for an empty host).
    throw new Error(
      "DATABASE_URL cannot be read as postgres://user:password@host:port/database; check it, and percent-encode special characters in the password",
      { cause: err },
    );
  }
}

function pool(url: string, options: DbOptions): postgres.Sql {
  return postgres(url, {
    max: options.max ?? 10,
    // postgres.js takes seconds here; a dead database must fail fast so ingest can answer 503.
    connect_timeout: (options.connectTimeoutMs ?? 1000) / 1000,
    idle_timeout: 60,
    onnotice: () => {},
    connection: {
      application_name: options.applicationName ?? 'webhook-inbox',
      statement_timeout: options.statementTimeoutMs ?? 1000,
    },
  });
}

/** Kysely that only compiles: run its queries with `run()`. */
export const qb = new Kysely<Database>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (db) => new PostgresIntrospector(db),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

type Output<Q> = Q extends Compilable<infer O> ? O : never;

/** Runs a Kysely-built query on a pool or transaction and returns its typed rows. */
export async function run<Q extends Compilable<any>>(db: Sql, query: Q): Promise<Output<Q>[]> {
  const compiled = query.compile();
  const rows = await db.unsafe(compiled.sql, compiled.parameters as postgres.ParameterOrJSON<never>[]);
  return rows as unknown as Output<Q>[];
}

// The service's database connections: the ingest and API pool, the admin API's own small pool
// with a longer timeout, and the fold workers' own connections. All on one database.
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import { connect } from './client.ts';
import type { OpenedDatabase } from './open.ts';

export type Pools = { databaseUrl: string; embedded?: OpenedDatabase['embedded']; sql: postgres.Sql; adminSql?: postgres.Sql; workerSql?: postgres.Sql };

export function openPools(db: OpenedDatabase, config: Config, serveHttp: boolean, foldsHere: boolean): Pools {
  const sql = connect(db.url, { max: config.DB_POOL_MAX, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS });
  return {
    databaseUrl: db.url,
    embedded: db.embedded,
    sql,
    // Operators' queries get their own small pool and a longer timeout: a slow listing can neither
    // starve ingest of connections nor be cut at ingest's 1 s.
    adminSql: serveHttp
      ? connect(db.url, { max: 2, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.ADMIN_STATEMENT_TIMEOUT_MS, applicationName: 'webhook-inbox-admin' })
      : undefined,
    // The fold workers get their own connections, one per claim loop: a fold never waits for a
    // connection behind ingest, nor an ack behind a fold, and only these few backends compile the
    // fold functions (a cold backend's first folds cost tens of ms of CPU each).
    workerSql: foldsHere
      ? connect(db.url, { max: config.WORKER_CONCURRENCY, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS, applicationName: 'webhook-inbox-worker' })
      : undefined,
  };
}

// `npm run migrate`: apply sql/*.sql to DATABASE_URL (or the embedded Postgres) and exit.
// The service does the same at startup; this is for deploy pipelines that migrate first.
import type postgres from 'postgres';
import { ConfigError, loadConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { connect } from './client.ts';
import type { Embedded } from './embedded.ts';
import { migrate } from './migrate.ts';
import { openDatabase } from './open.ts';

let config;
try {
  config = loadConfig();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  process.stderr.write(`webhook-inbox: ${err.message}\n`);
  process.exit(2);
}
const log = createLogger(config.LOG_LEVEL);
let embedded: Embedded | undefined;
let sql: postgres.Sql | undefined;
let code = 0;
// Starting the embedded Postgres and reading DATABASE_URL fail too (a taken port, a malformed
// URL): logged like a failed migration, not thrown as a stack trace.
try {
  const db = await openDatabase(config, { log, reuseRunning: true });
  embedded = db.embedded;
  sql = connect(db.url, { max: 1, connectTimeoutMs: 10_000 });
  const applied = await migrate(sql, log);
  log.info({ applied }, applied.length ? 'migrations applied' : 'database already up to date');
} catch (err) {
  log.fatal({ err }, 'migration failed');
  code = 1;
} finally {
  await sql?.end();
  await embedded?.stop();
}
process.exit(code);

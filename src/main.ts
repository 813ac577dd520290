// Entry point: parse config, open the database (embedded when DATABASE_URL is unset), migrate,
// start HTTP and/or workers by ROLE, and shut down in order on SIGTERM/SIGINT.
import { serve } from '@hono/node-server';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { connect } from './db/client.ts';
import { startEmbeddedPostgres, type Embedded } from './db/embedded.ts';
import { migrate } from './db/migrate.ts';
import { createApp } from './http/app.ts';
import { createLogger, type Logger } from './log.ts';
import { startWorkers, type Workers } from './worker/index.ts';

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`webhook-inbox: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

async function openDatabase(config: Config, log: Logger): Promise<{ url: string; embedded?: Embedded }> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL };
  const embedded = await startEmbeddedPostgres({
    dir: config.EMBEDDED_PG_DIR,
    port: config.EMBEDDED_PG_PORT,
    database: 'webhook_inbox',
    onLog: (line) => log.debug({ postgres: line.trim() }, 'embedded postgres'),
  });
  log.info(
    { dir: config.EMBEDDED_PG_DIR, port: config.EMBEDDED_PG_PORT },
    'DATABASE_URL is unset: started the embedded Postgres with data under EMBEDDED_PG_DIR (set DATABASE_URL to use your own)',
  );
  return { url: embedded.url, embedded };
}

async function main(): Promise<void> {
  const config = readConfig();
  const log = createLogger(config.LOG_LEVEL);
  const { url, embedded } = await openDatabase(config, log);
  const sql = connect(url, {
    max: config.DB_POOL_MAX,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
  });

  try {
    await migrate(sql, log);
  } catch (err) {
    log.fatal({ err }, 'migrations failed; not starting');
    await sql.end({ timeout: 1 });
    await embedded?.stop();
    process.exit(1);
  }

  if (!config.STRIPE_WEBHOOK_SECRET) {
    log.warn(
      'STRIPE_WEBHOOK_SECRET is not set: Stripe deliveries answer 503 (Stripe retries them) until you set it to your endpoint secret, or to the whsec_... that `stripe listen --forward-to localhost:3000/webhooks/stripe` prints',
    );
  }

  const app = createApp({ sql, config, log });
  const server =
    config.ROLE === 'worker'
      ? undefined
      : serve({ fetch: app.fetch, port: config.PORT, hostname: config.HOST }, (info) =>
          log.info({ port: info.port, role: config.ROLE }, 'listening'),
        );

  const workers: Workers | undefined =
    config.ROLE === 'api' || config.WORKER_CONCURRENCY === 0
      ? undefined
      : await startWorkers({ sql, databaseUrl: url, config, log });

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      log.error('shutdown took longer than SHUTDOWN_TIMEOUT_MS; exiting anyway');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    force.unref();
    // Stop accepting, let requests in flight finish, then close the pool and the embedded server.
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    await workers?.stop();
    await sql.end({ timeout: 5 });
    await embedded?.stop();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

await main();

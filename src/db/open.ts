// Where the database is, for the service, `npm run migrate` and the command-line tools alike:
// DATABASE_URL, or else the embedded Postgres with its data under EMBEDDED_PG_DIR, started here
// (or, for a tool, the one a running `npm start` already serves).
import postgres from 'postgres';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { embeddedUrl, startEmbeddedPostgres, type Embedded } from './embedded.ts';

export type OpenedDatabase = {
  url: string;
  /** Set when this process started the embedded Postgres: stop it last. */
  embedded?: Embedded;
};

export async function openDatabase(
  config: Config,
  options: {
    log?: Logger;
    /** A command-line tool first tries the embedded Postgres a running service already serves. */
    reuseRunning?: boolean;
  } = {},
): Promise<OpenedDatabase> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL };
  const url = embeddedUrl(config.EMBEDDED_PG_PORT, 'webhook_inbox');
  if (options.reuseRunning && (await answers(url))) return { url };
  const { log } = options;
  const embedded = await startEmbeddedPostgres({
    dir: config.EMBEDDED_PG_DIR,
    port: config.EMBEDDED_PG_PORT,
    database: 'webhook_inbox',
    onLog: (line) => log?.debug({ postgres: line.trim() }, 'embedded postgres'),
    onWarn: (fields, message) => log?.warn(fields, message),
  });
  log?.info(
    { dir: embedded.dir, port: config.EMBEDDED_PG_PORT },
    'DATABASE_URL is unset: started the embedded Postgres with its data in dir (set DATABASE_URL to use your own)',
  );
  return { url: embedded.url, embedded };
}

async function answers(url: string): Promise<boolean> {
  const probe = postgres(url, { max: 1, connect_timeout: 1, onnotice: () => {} });
  try {
    await probe`select 1`;
    return true;
  } catch {
    return false;
  } finally {
    await probe.end({ timeout: 1 });
  }
}

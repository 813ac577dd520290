// A first run's way into the console: on the embedded default (DATABASE_URL unset) without
// ADMIN_TOKEN, `npm start` generates a token and keeps it beside the embedded Postgres's data
// (.data/admin-token, readable by its owner only), so the console opens at once and across
// restarts. With DATABASE_URL set nothing is generated: the console stays off, as the admin API.
// Never logs the token, only where it is.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';

/** Where the generated token is kept: beside EMBEDDED_PG_DIR (.data/admin-token by default). */
export function adminTokenFile(config: Config): string {
  return path.join(path.dirname(path.resolve(config.EMBEDDED_PG_DIR)), 'admin-token');
}

async function readToken(file: string): Promise<string | undefined> {
  try {
    const token = (await readFile(file, 'utf8')).trim();
    return token.length >= 16 ? token : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The config with ADMIN_TOKEN set from (or to a new) .data/admin-token when the embedded default runs without one. */
export async function withGeneratedAdminToken(config: Config, log: Logger): Promise<Config> {
  if (config.ADMIN_TOKEN || config.DATABASE_URL || config.ROLE === 'worker') return config;
  const file = adminTokenFile(config);
  try {
    return { ...config, ADMIN_TOKEN: await keptToken(file, log) };
  } catch (err) {
    log.warn({ file, err: (err as Error).message }, 'ADMIN_TOKEN is not set and no token could be kept in file: the console and the admin API stay off; set ADMIN_TOKEN');
    return config;
  }
}

async function keptToken(file: string, log: Logger): Promise<string> {
  let token = await readToken(file);
  if (token) {
    log.info({ file }, 'ADMIN_TOKEN is not set: using the token generated at the first start, kept in file');
  } else {
    token = randomBytes(24).toString('hex');
    await mkdir(path.dirname(file), { recursive: true });
    try {
      // 'wx': two first starts at once must not each write their own.
      await writeFile(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
      log.info({ file }, 'ADMIN_TOKEN is not set: generated one for the console and the admin API, kept in file (set ADMIN_TOKEN to choose your own)');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      token = (await readToken(file)) ?? token;
    }
  }
  return token;
}

/** The console's address for the startup log: localhost when listening on every interface. */
export function consoleUrl(config: Config, port: number): string {
  const host = ['0.0.0.0', '::', ''].includes(config.HOST) ? 'localhost' : config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST;
  return `http://${host}:${port}/console`;
}

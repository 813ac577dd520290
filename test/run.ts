// `npm test`: starts a throwaway Postgres (or uses TEST_DATABASE_URL), migrates one template
// database, then runs tap; each test file clones the template into a database of its own.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import postgres from 'postgres';
import { EmbeddedPostgresError, freePort, startEmbeddedPostgres, type Embedded } from '../src/db/embedded.ts';
import { migrate } from '../src/db/migrate.ts';

const root = fileURLToPath(new URL('..', import.meta.url));


// tap builds its plugin set at install time with its TypeScript plugin (a ts-node fork that
// crashes under TypeScript 7). package.json drops that plugin and Node 24 strips the types; tap
// notices the change only after it has launched the first run's files the old way. So rebuild
// once per install (the stamp lives in node_modules, which a fresh `npm ci` replaces).
const tapBin = path.join(root, 'node_modules/.bin/tap');
const plugins = JSON.stringify(JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).tap?.plugin ?? []);
const stamp = path.join(root, 'node_modules/.cache/webhook-inbox-tap-plugins.json');
if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== plugins) {
  execFileSync(tapBin, ['build'], { cwd: root, stdio: 'ignore' });
  mkdirSync(path.dirname(stamp), { recursive: true });
  writeFileSync(stamp, plugins);
}

let embedded: Embedded | undefined;
let adminUrl = process.env.TEST_DATABASE_URL;
if (!adminUrl) {
  const started = Date.now();
  try {
    embedded = await startEmbeddedPostgres({
      // As root the server runs as the `postgres` user; if it cannot enter the temp dir, the
      // cluster goes to one it can (and says so).
      dir: path.join(tmpdir(), `webhook-inbox-test-${randomBytes(4).toString('hex')}`),
      port: await freePort(),
      database: 'postgres',
      throwaway: true,
      onWarn: (fields, message) => process.stdout.write(`# ${message} ${JSON.stringify(fields)}\n`),
    });
  } catch (err) {
    if (!(err instanceof EmbeddedPostgresError)) throw err;
    // It says what to do; a stack trace would bury that.
    process.stderr.write(`npm test: ${err.message.replaceAll(' DATABASE_URL', ' TEST_DATABASE_URL')}\n`);
    process.exit(1);
  }
  adminUrl = embedded.adminUrl;
  process.stdout.write(`# throwaway Postgres started in ${Date.now() - started} ms\n`);
}

const template = `wi_template_${process.pid}`;
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
await admin.unsafe(`drop database if exists ${template}`);
await admin.unsafe(`create database ${template}`);
const templateUrl = new URL(adminUrl);
templateUrl.pathname = `/${template}`;
const migrator = postgres(templateUrl.toString(), { max: 1, onnotice: () => {} });
await migrate(migrator);
await migrator.end();

const stop = async () => {
  await admin.unsafe(`drop database if exists ${template} with (force)`).catch(() => {});
  await admin.end({ timeout: 1 });
  await embedded?.stop();
};

const tap = spawn(tapBin, process.argv.slice(2), {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, TEST_DATABASE_URL: adminUrl, TEST_TEMPLATE_DB: template },
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => tap.kill(signal));
}
const code: number = await new Promise((resolve) => tap.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
await stop();
process.exit(code);

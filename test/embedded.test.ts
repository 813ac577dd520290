// The newcomer's path: no DATABASE_URL, an empty data folder, `npm start`.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { freePort } from '../src/db/embedded.ts';

t.test('the service starts its own Postgres from an empty data dir, serves, and stops cleanly', async (t) => {
  const dir = path.join(tmpdir(), `wi-embedded-${randomBytes(4).toString('hex')}`);
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  t.notOk(existsSync(dir), 'starts from nothing');
  const [httpPort, pgPort] = [await freePort(), await freePort()];
  const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const child = spawn(process.execPath, [main], {
    env: {
      PATH: process.env.PATH,
      PORT: String(httpPort),
      HOST: '127.0.0.1',
      EMBEDDED_PG_DIR: dir,
      EMBEDDED_PG_PORT: String(pgPort),
      LOG_LEVEL: 'info',
      WORKER_CONCURRENCY: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => child.kill('SIGKILL'));

  const deadline = Date.now() + 60_000;
  while (!out.includes('"listening"') && Date.now() < deadline) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.match(out, /DATABASE_URL is unset: started the embedded Postgres/, 'says so in one line');
  t.ok(existsSync(path.join(dir, 'PG_VERSION')), 'data kept under EMBEDDED_PG_DIR');
  const ready = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
  t.equal(ready.status, 200, 'database reachable and migrated');
  const stripe = await fetch(`http://127.0.0.1:${httpPort}/webhooks/stripe`, { method: 'POST', body: '{}' });
  t.equal(stripe.status, 503, 'Stripe without a secret: 503 so Stripe retries');
  t.match(out, /STRIPE_WEBHOOK_SECRET is not set/);

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'SIGTERM exits 0');
  t.notOk(existsSync(path.join(dir, 'postmaster.pid')), 'Postgres stopped with it');
});

// compose.yaml and the Dockerfile cannot be run here (no Docker engine), so check what can be
// checked: they parse, agree with the config, the image gets everything the code imports, and its
// command stops cleanly on SIGTERM.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../src/config.ts';
import { freePort } from '../src/db/embedded.ts';
import { createTestDatabase } from './helpers/db.ts';
import { spawnScript } from './helpers/spawn.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { isReady } from '../scripts/lib/service.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'));

t.test('compose.yaml runs Postgres and the service with variables the config knows', async (t) => {
  const compose = parse(await readFile(path.join(root, 'compose.yaml'), 'utf8'));
  t.ok(compose.services.postgres, 'a postgres service');
  const svc = compose.services['webhook-inbox'];
  t.equal(svc.build, '.', 'built from the Dockerfile');
  const env: Record<string, string> = svc.environment;
  for (const key of Object.keys(env)) {
    t.ok(CONFIG_VARIABLES.includes(key) || /^WEBHOOK_SECRET_[A-Z0-9_]+$/.test(key), `${key} is a config variable`);
  }
  const dbUrl = new URL(env.DATABASE_URL!);
  t.equal(dbUrl.hostname, 'postgres', 'DATABASE_URL points at the compose postgres');
  t.equal(dbUrl.username, compose.services.postgres.environment.POSTGRES_USER);
  t.equal(dbUrl.pathname, `/${compose.services.postgres.environment.POSTGRES_DB}`);
  // Interpolations like ${X:-} are empty when unset; the config must accept the file as written.
  const asStarted = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace(/\$\{[^}]+\}/g, '')]));
  const config = loadConfig(asStarted);
  t.same(svc.ports, [`${config.PORT}:${config.PORT}`], 'publishes the configured PORT');
  const grace = /^(\d+)s$/.exec(svc.stop_grace_period ?? '10s');
  t.ok(grace && Number(grace[1]) * 1000 > config.SHUTDOWN_TIMEOUT_MS, 'docker stop waits longer than the service takes to shut down');
});

t.test('the Dockerfile builds a Node 24, production-only, non-root image that runs the service', async (t) => {
  const text = await readFile(path.join(root, 'Dockerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  t.match(lines[0], /^FROM node:24[-.\w]*$/);
  t.ok(lines.some((l) => /RUN npm ci --omit=dev/.test(l)));
  const user = lines.filter((l) => l.startsWith('USER ')).at(-1);
  t.ok(user && !/root/.test(user), 'runs as a non-root user');
  t.ok(lines.some((l) => l === 'EXPOSE 3000'), 'exposes the default PORT');
  t.same(dockerCmd(text), ['node', 'src/main.ts'], 'runs node directly (see the next test)');
  for (const l of lines.filter((l) => l.startsWith('COPY '))) {
    for (const src of l.split(/\s+/).slice(1, -1)) t.ok(existsSync(path.join(root, src)), `${src} exists`);
  }
});

// What `docker stop` does, without an engine: SIGTERM to the image's command, and nothing else.
// With CMD ["npm", "start"], npm exited at once and node kept running, orphaned: in a container
// it would then be killed with the container, mid-request, without the ordered shutdown.
t.test("SIGTERM to the image's command runs the service's ordered shutdown", async (t) => {
  const db = await createTestDatabase(t);
  const [command, ...args] = dockerCmd(await readFile(path.join(root, 'Dockerfile'), 'utf8'));
  const port = await freePort();
  const service = spawnScript(command!, args, {
    cwd: root,
    env: { DATABASE_URL: db.url, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', WORKER_CONCURRENCY: '1' },
  });
  await waitFor(isReady(`http://127.0.0.1:${port}`), {
    what: "the image's command to start the service",
    proc: service,
    intervalMs: 100,
    explain: service.output,
  });
  service.child.kill('SIGTERM');
  t.equal((await service.exited).code, 0, 'exits 0');
  // The service itself is gone too, not only the process we signalled.
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(await fetch(`http://127.0.0.1:${port}/readyz`).then(() => true, () => false), 'nothing answers on the port');
  t.match(service.output(), /"reason":"SIGTERM"/, 'the service got the signal');
  t.match(service.output(), /"msg":"stopped"/, 'and finished its shutdown');
});

/** The exec-form CMD of a Dockerfile, as the argv docker runs. */
function dockerCmd(dockerfile: string): string[] {
  const line = dockerfile.split('\n').filter((l) => l.startsWith('CMD ')).at(-1);
  if (!line) throw new Error('the Dockerfile has no CMD');
  return JSON.parse(line.slice(4));
}

t.test('everything the service imports at run time is a production dependency', async (t) => {
  const files: string[] = [];
  const walk = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (p.endsWith('.ts')) files.push(p);
    }
  };
  await walk(path.join(root, 'src'));
  await walk(path.join(root, 'scripts'));
  const deps = new Set(Object.keys(pkg.dependencies));
  const used = new Set<string>();
  for (const f of files) {
    const text = await readFile(f, 'utf8');
    for (const m of text.matchAll(/^\s*(?:import|export)[^'"]*from\s+'([^'.][^']*)'/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('node:')) continue;
      used.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  t.ok(used.size > 5, `found the imports (${[...used].join(', ')})`);
  for (const name of used) t.ok(deps.has(name), `${name} is in dependencies, so npm ci --omit=dev installs it`);
});

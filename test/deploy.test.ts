// compose.yaml and the Dockerfile cannot be run here (no Docker engine), so check what can be
// checked: they parse, agree with the config, and the image gets everything the code imports.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../src/config.ts';

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
});

t.test('the Dockerfile builds a Node 24, production-only, non-root image that runs npm start', async (t) => {
  const text = await readFile(path.join(root, 'Dockerfile'), 'utf8');
  const lines = text.split('\n').filter((l) => l.trim() && !l.startsWith('#'));
  t.match(lines[0], /^FROM node:24[-.\w]*$/);
  t.ok(lines.some((l) => /RUN npm ci --omit=dev/.test(l)));
  const user = lines.filter((l) => l.startsWith('USER ')).at(-1);
  t.ok(user && !/root/.test(user), 'runs as a non-root user');
  t.ok(lines.some((l) => l === 'EXPOSE 3000'), 'exposes the default PORT');
  t.ok(lines.some((l) => /^CMD \["npm", "start"\]$/.test(l)));
  for (const l of lines.filter((l) => l.startsWith('COPY '))) {
    for (const src of l.split(/\s+/).slice(1, -1)) t.ok(existsSync(path.join(root, src)), `${src} exists`);
  }
});

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

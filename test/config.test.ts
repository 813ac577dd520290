// The environment is parsed once; every problem is reported with its variable name.
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.ts';
import { runScript } from './helpers/spawn.ts';

t.test('defaults', async (t) => {
  const config = loadConfig({});
  t.match(config, {
    DATABASE_URL: undefined,
    PORT: 3000,
    HTTP_KEEP_ALIVE_TIMEOUT_MS: 5000,
    STRIPE_WEBHOOK_SECRET: undefined,
    STRIPE_SIGNATURE_TOLERANCE_S: 300,
    WEBHOOK_MAX_BODY_BYTES: 1024 * 1024,
    LOG_LEVEL: 'info',
    ROLE: 'all',
    RETENTION_DAYS: 30,
    RETENTION_BATCH_SIZE: 1000,
    ADMIN_STATEMENT_TIMEOUT_MS: 30_000,
  });
  t.same(config.sources, {});
});

t.test('secrets are comma-separated for rotation; other sources are named by variable', async (t) => {
  const config = loadConfig({
    STRIPE_WEBHOOK_SECRET: 'whsec_new, whsec_old',
    WEBHOOK_SECRET_ACME: 'whsec_YWNtZQ==',
    WEBHOOK_SECRET_BILLING_SYSTEM: 'whsec_Yg==',
    PORT: '8080',
  });
  t.same(config.STRIPE_WEBHOOK_SECRET, ['whsec_new', 'whsec_old']);
  t.same(config.sources, { acme: ['whsec_YWNtZQ=='], 'billing-system': ['whsec_Yg=='] });
  t.equal(config.PORT, 8080);
});

t.test('empty values count as unset', async (t) => {
  const config = loadConfig({ DATABASE_URL: '', STRIPE_WEBHOOK_SECRET: '', PORT: '' });
  t.equal(config.DATABASE_URL, undefined);
  t.equal(config.STRIPE_WEBHOOK_SECRET, undefined);
  t.equal(config.PORT, 3000);
});

t.test('every bad variable is listed by name', async (t) => {
  const err = t.throws(() =>
    loadConfig({
      DATABASE_URL: 'mysql://nope',
      PORT: 'eighty',
      HTTP_KEEP_ALIVE_TIMEOUT_MS: '600000',
      STRIPE_WEBHOOK_SECRET: 'sk_live_oops',
      STRIPE_SIGNATURE_TOLERANCE_S: '-5',
      WEBHOOK_MAX_BODY_BYTES: '1.5',
      LOG_LEVEL: 'loud',
      ROLE: 'everything',
      WEBHOOK_SECRET_ACME: 'plain',
      WEBHOOK_SECRET_STRIPE: 'whsec_x',
    }),
  ) as ConfigError;
  t.type(err, ConfigError);
  const named = err.problems.map((p) => p.split(':')[0]);
  t.same(named.sort(), [
    'DATABASE_URL',
    'HTTP_KEEP_ALIVE_TIMEOUT_MS',
    'LOG_LEVEL',
    'PORT',
    'ROLE',
    'STRIPE_SIGNATURE_TOLERANCE_S',
    'STRIPE_WEBHOOK_SECRET',
    'WEBHOOK_MAX_BODY_BYTES',
    'WEBHOOK_SECRET_ACME',
    'WEBHOOK_SECRET_STRIPE',
  ]);
});

t.test('the service exits non-zero listing the problems, before touching any database', async (t) => {
  const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const run = await runScript(process.execPath, [main], {
    env: { PORT: 'x', LOG_LEVEL: 'nope', STRIPE_WEBHOOK_SECRET: 'bad' },
    timeoutMs: 20_000,
  });
  t.equal(run.code, 1);
  t.match(run.stderr, /invalid configuration/);
  t.match(run.stderr, /PORT/);
  t.match(run.stderr, /LOG_LEVEL/);
  t.match(run.stderr, /STRIPE_WEBHOOK_SECRET/);
  t.notMatch(run.stderr, /bad/, 'never echoes a secret value');
});

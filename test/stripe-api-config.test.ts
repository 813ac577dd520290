// The variables of Stripe's API as the source of truth: off without a key, defaults under test
// mode's rate limit, spans and schedules as people write them, and every bad value named.
import t from 'tap';
import { ConfigError, loadConfig } from '../src/config.ts';

t.test('defaults: no key, everything off; the rest ready for when one is set', async (t) => {
  const config = loadConfig({});
  t.match(config, {
    STRIPE_API_KEY: undefined,
    STRIPE_API_BASE: 'https://api.stripe.com',
    STRIPE_API_RPS: 20,
    STRIPE_API_VERSION: undefined,
    STRIPE_CONNECT_ACCOUNTS: [],
    STRIPE_THIN_WEBHOOK_SECRET: undefined,
    PARENT_FETCH_AFTER_S: 60,
    RECONCILE_EVERY: '*/10 * * * *',
    RECONCILE_LOOKBACK: 3 * 86_400,
  });
  t.ok(config.STRIPE_API_RPS < 25, "under test mode's 25 reads a second");
});

t.test('schedules, spans, accounts and keys as people write them', async (t) => {
  const config = loadConfig({
    STRIPE_API_KEY: 'rk_live_abc123',
    STRIPE_API_BASE: 'http://127.0.0.1:12111',
    STRIPE_CONNECT_ACCOUNTS: 'acct_1, acct_2',
    STRIPE_THIN_WEBHOOK_SECRET: 'whsec_a,whsec_b',
    RECONCILE_EVERY: '2h',
    RECONCILE_LOOKBACK: '90m',
    STRIPE_API_VERSION: '2025-03-31.basil',
  });
  t.match(config, { STRIPE_CONNECT_ACCOUNTS: ['acct_1', 'acct_2'], STRIPE_THIN_WEBHOOK_SECRET: ['whsec_a', 'whsec_b'], RECONCILE_EVERY: '0 */2 * * *', RECONCILE_LOOKBACK: 5400 });
  t.equal(loadConfig({ RECONCILE_EVERY: 'off' }).RECONCILE_EVERY, null);
  t.equal(loadConfig({ RECONCILE_EVERY: '60m' }).RECONCILE_EVERY, '0 * * * *');
  t.equal(loadConfig({ RECONCILE_EVERY: '1m' }).RECONCILE_EVERY, '*/1 * * * *');
});

t.test('every bad value is named, and no key is echoed', async (t) => {
  const err = t.throws(() =>
    loadConfig({
      STRIPE_API_KEY: 'pk_live_publishable_oops',
      STRIPE_API_BASE: 'https://api.stripe.com/v1',
      STRIPE_API_RPS: '0',
      STRIPE_API_VERSION: 'latest',
      STRIPE_CONNECT_ACCOUNTS: 'cus_1',
      STRIPE_THIN_WEBHOOK_SECRET: 'secret',
      PARENT_FETCH_AFTER_S: '-1',
      RECONCILE_EVERY: '7m',
      RECONCILE_LOOKBACK: '31d',
      WEBHOOK_SECRET_STRIPE_THIN: 'whsec_x',
    }),
  ) as ConfigError;
  t.type(err, ConfigError);
  t.same(err.problems.map((p) => p.split(':')[0]).sort(), [
    'PARENT_FETCH_AFTER_S',
    'RECONCILE_EVERY',
    'RECONCILE_LOOKBACK',
    'STRIPE_API_BASE',
    'STRIPE_API_KEY',
    'STRIPE_API_RPS',
    'STRIPE_API_VERSION',
    'STRIPE_CONNECT_ACCOUNTS',
    'STRIPE_THIN_WEBHOOK_SECRET',
    'WEBHOOK_SECRET_STRIPE_THIN',
  ]);
  t.notMatch(err.message, /pk_live_publishable_oops/);
  t.match(err.message, /WEBHOOK_SECRET_STRIPE_THIN: the secret of Stripe's thin-event destination goes in STRIPE_THIN_WEBHOOK_SECRET/);
  t.match(err.message, /RECONCILE_LOOKBACK: at most 30 days/);
});

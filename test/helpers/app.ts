// Builds the real app against a test database, and signs requests the way senders do: Stripe's
// with the stripe package's own test helper, Standard Webhooks' with the standardwebhooks package.
import { randomBytes } from 'node:crypto';
import Stripe from 'stripe';
import { Webhook } from 'standardwebhooks';
import type postgres from 'postgres';
import { loadConfig, type Config } from '../../src/config.ts';
import { createApp } from '../../src/http/app.ts';
import { silentLogger } from '../../src/log.ts';
import { eventId, stripeEvent } from '../../scripts/lib/deliver.ts';

export { eventId, stripeEvent };

export const STRIPE_SECRET = 'whsec_test_current_0123456789abcdef';
export const STRIPE_OLD_SECRET = 'whsec_test_previous_0123456789abcdef';
export const ACME_SECRET = `whsec_${Buffer.from('acme-secret-key-0123456789').toString('base64')}`;

export function testConfig(overrides: Record<string, string | undefined> = {}): Config {
  return loadConfig({
    DATABASE_URL: 'postgres://unused/unused',
    STRIPE_WEBHOOK_SECRET: `${STRIPE_SECRET},${STRIPE_OLD_SECRET}`,
    WEBHOOK_SECRET_ACME: ACME_SECRET,
    LOG_LEVEL: 'silent',
    ...overrides,
  });
}

export function testApp(sql: postgres.Sql, overrides: Record<string, string | undefined> = {}) {
  return createApp({ sql, config: testConfig(overrides), log: silentLogger() });
}

export function signStripe(
  body: string,
  options: { secret?: string; timestamp?: number } = {},
): Record<string, string> {
  const header = Stripe.webhooks.generateTestHeaderString({
    payload: body,
    secret: options.secret ?? STRIPE_SECRET,
    timestamp: options.timestamp,
  });
  return { 'content-type': 'application/json', 'stripe-signature': header };
}

export function signStandard(
  body: string,
  options: { id?: string; secret?: string; timestamp?: Date } = {},
): Record<string, string> {
  const id = options.id ?? `msg_${randomBytes(8).toString('hex')}`;
  const timestamp = options.timestamp ?? new Date();
  const signature = new Webhook(options.secret ?? ACME_SECRET).sign(id, timestamp, body);
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
    'webhook-signature': signature,
  };
}

export function post(body: string | Uint8Array, headers: Record<string, string>) {
  return { method: 'POST', body, headers };
}

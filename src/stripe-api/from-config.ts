// The Stripe API client as the configuration asks for it: one per process, so every reader in it
// (parent fetch, thin events, reconciliation) shares one rate limit. None without STRIPE_API_KEY.
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import { createStripeApi, type StripeApi } from './client.ts';

export function stripeApiOf(config: Config, log: Logger): StripeApi | undefined {
  if (!config.STRIPE_API_KEY) return undefined;
  return createStripeApi({
    apiKey: config.STRIPE_API_KEY,
    apiBase: config.STRIPE_API_BASE,
    rps: config.STRIPE_API_RPS,
    apiVersion: config.STRIPE_API_VERSION,
    log: log.child({ component: 'stripe-api' }),
  });
}

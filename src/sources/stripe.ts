// Stripe: the stripe package's own signature check over the raw bytes, with a timestamp tolerance
// against replays, trying each configured secret (two during a rotation). Then the envelope.
import Stripe from 'stripe';
import { z } from 'zod';
import { NotConfiguredError, SignatureError } from '../errors.ts';
import { decodeBody } from './body.ts';
import type { HeaderReader, Source, VerifiedEvent } from './types.ts';

const id = z.string().min(1).max(255);

/** The fields of a Stripe event webhook-inbox reads; the rest of the body is stored as is. */
export const stripeEnvelope = z.object({
  id,
  type: id,
  object: z.literal('event').optional(),
  api_version: z.string().max(64).nullish(),
  account: z.string().max(255).nullish(),
  livemode: z.boolean().nullish(),
  created: z.number().int().nonnegative().nullish(),
});

export function stripeSource(secrets: string[] | undefined, toleranceS: number): Source {
  const signature = Stripe.webhooks.signature!;
  return {
    name: 'stripe',
    verify(raw: Uint8Array, headers: HeaderReader, nowMs: number): VerifiedEvent {
      if (!secrets || secrets.length === 0) {
        throw new NotConfiguredError(
          'STRIPE_WEBHOOK_SECRET is not set: set it to the whsec_... of your endpoint (or the one `stripe listen` prints); Stripe will retry this delivery',
        );
      }
      const header = headers.get('stripe-signature');
      if (!header) throw new SignatureError('missing Stripe-Signature header');
      let stale = false;
      const verified = secrets.some((secret) => {
        try {
          return signature.verifyHeader(raw, header, secret, toleranceS, undefined, nowMs);
        } catch (err) {
          if (/tolerance/i.test((err as Error).message)) stale = true;
          return false;
        }
      });
      if (!verified) {
        throw new SignatureError(
          stale ? 'timestamp outside the tolerance (replayed or clock skew)' : 'signature does not match',
        );
      }
      const { text, value } = decodeBody(raw, stripeEnvelope);
      return {
        eventId: value.id,
        type: value.type,
        apiVersion: value.api_version ?? null,
        account: value.account ?? null,
        livemode: value.livemode ?? null,
        created: value.created ?? null,
        body: text,
      };
    },
  };
}

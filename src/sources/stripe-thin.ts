// Stripe's thin events (object "v2.core.event"): signed like other Stripe webhooks, with a secret of
// their own, checked by the stripe package's parseEventNotification. They carry related_object and
// no snapshot (worker/thin-events.ts reads it); no I/O here.
import Stripe from 'stripe';
import { z } from 'zod';
import { NotConfiguredError, PayloadError, SignatureError } from '../errors.ts';
import { decodeBody } from './body.ts';
import type { HeaderReader, Source, VerifiedEvent } from './types.ts';

const id = z.string().min(1).max(255);

/** The fields of a thin event webhook-inbox reads; the rest of the body is stored as is. */
export const thinEnvelope = z.object({
  id,
  object: z.literal('v2.core.event'),
  type: id,
  created: z.iso.datetime({ offset: true }),
  livemode: z.boolean().nullish(),
  context: z.string().max(255).nullish(),
  related_object: z.object({ id, type: id, url: z.string().max(2048).nullish() }).nullish(),
});

export type ThinEvent = z.infer<typeof thinEnvelope>;

/** The connected account a thin event's context names (its last `acct_` segment), if any. */
export function accountOfContext(context: string | null | undefined): string | null {
  const last = context?.split('/').at(-1);
  return last && last.startsWith('acct_') ? last : null;
}

export function stripeThinSource(secrets: string[] | undefined, toleranceS: number): Source {
  // parseEventNotification is a method of a client; this one only verifies and never sends a request.
  const parser = new Stripe('sk_unused_for_signature_checks_only', { telemetry: false });
  return {
    name: 'stripe-thin',
    verify(raw: Uint8Array, headers: HeaderReader, nowMs: number): VerifiedEvent {
      if (!secrets || secrets.length === 0) {
        throw new NotConfiguredError(
          'STRIPE_THIN_WEBHOOK_SECRET is not set: set it to the whsec_... of your thin-event destination; Stripe will retry this delivery',
        );
      }
      const header = headers.get('stripe-signature');
      if (!header) throw new SignatureError('missing Stripe-Signature header');
      let stale = false;
      let notThin: string | undefined;
      const verified = secrets.some((secret) => {
        try {
          parser.parseEventNotification(raw as unknown as string, header, secret, toleranceS, undefined, nowMs);
          return true;
        } catch (err) {
          if (err instanceof Stripe.errors.StripeSignatureVerificationError) {
            if (/tolerance/i.test(err.message)) stale = true;
          } else {
            // The signature held and the body is no thin event (a v1 event, not JSON, another object).
            notThin = (err as Error).message;
            return true;
          }
          return false;
        }
      });
      if (!verified) throw new SignatureError(stale ? 'timestamp outside the tolerance (replayed or clock skew)' : 'signature does not match');
      if (notThin !== undefined) {
        throw new PayloadError(
          /webhook payload|'event'/.test(notThin)
            ? 'body is a snapshot event (object "event"): send it to /webhooks/stripe, this route takes thin events (object "v2.core.event")'
            : 'body is not a thin event (object "v2.core.event")',
        );
      }
      const { text, value } = decodeBody(raw, thinEnvelope);
      return {
        eventId: value.id,
        type: value.type,
        apiVersion: null,
        account: accountOfContext(value.context),
        livemode: value.livemode ?? null,
        created: Math.floor(Date.parse(value.created) / 1000),
        body: text,
      };
    },
  };
}

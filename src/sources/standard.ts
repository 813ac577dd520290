// Standard Webhooks (https://www.standardwebhooks.com): HMAC-SHA256 over "id.timestamp.body" with a
// base64 secret after "whsec_". The webhook-id header is the source's event id.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { SignatureError } from '../errors.ts';
import { decodeBody } from './body.ts';
import type { HeaderReader, Source, VerifiedEvent } from './types.ts';

const envelope = z.object({ type: z.string().min(1).max(255) });

export function standardSource(name: string, secrets: string[], toleranceS: number): Source {
  const keys = secrets.map((s) => Buffer.from(s.slice('whsec_'.length), 'base64'));
  return {
    name,
    verify(raw: Uint8Array, headers: HeaderReader, nowMs: number): VerifiedEvent {
      const id = headers.get('webhook-id');
      const timestamp = headers.get('webhook-timestamp');
      const signatures = headers.get('webhook-signature');
      if (!id || !timestamp || !signatures) {
        throw new SignatureError('missing webhook-id, webhook-timestamp or webhook-signature header');
      }
      if (id.length > 255) throw new SignatureError('webhook-id is longer than 255 characters');
      if (!/^\d{1,12}$/.test(timestamp)) throw new SignatureError('webhook-timestamp is not a Unix time in seconds');
      const ts = Number(timestamp);
      if (Math.abs(nowMs / 1000 - ts) > toleranceS) {
        throw new SignatureError('timestamp outside the tolerance (replayed or clock skew)');
      }
      const offered = signatures
        .split(' ')
        .filter((s) => s.startsWith('v1,'))
        .map((s) => Buffer.from(s.slice(3), 'base64'));
      const prefix = Buffer.from(`${id}.${timestamp}.`);
      const matches = keys.some((key) => {
        const expected = createHmac('sha256', key).update(prefix).update(raw).digest();
        return offered.some((sig) => sig.length === expected.length && timingSafeEqual(sig, expected));
      });
      if (!matches) throw new SignatureError('signature does not match');
      const { text, value } = decodeBody(raw, envelope);
      return { eventId: id, type: value.type, apiVersion: null, account: null, livemode: null, created: ts, body: text };
    },
  };
}

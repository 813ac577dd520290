// The request one delivery attempt sends: the JSON body (docs/outbox.md documents
// its fields) and its headers, the subscriber's own plus the Standard Webhooks signature. Pure.
import type { ClaimedDelivery } from '../db/outbox.ts';
import { signMessage } from './sign.ts';

/** The body: the same on every attempt of a delivery (only the signature's timestamp changes). */
export function messageBody(d: ClaimedDelivery): string {
  return JSON.stringify({
    id: d.message_id,
    type: d.type,
    created: d.created,
    object: d.object,
    object_id: d.object_id,
    version: d.version,
    previous_version: d.previous_version,
    data: d.data,
    links: d.links,
    source_event: d.source_event,
  });
}

/** The subscriber's headers, then webhook-id, webhook-timestamp and webhook-signature (both secrets during a rotation). */
export function messageHeaders(d: ClaimedDelivery, body: string, now: Date): Record<string, string> {
  const secrets = d.previous_secret ? [d.secret, d.previous_secret] : [d.secret];
  return { ...d.headers, ...signMessage({ id: d.message_id, timestamp: now, body, secrets }) };
}

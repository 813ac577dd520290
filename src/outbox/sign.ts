// Standard Webhooks signing of outgoing deliveries: the three webhook-* headers of one attempt, and
// subscription secrets. Pure (no I/O besides random bytes); it never logs, and no error it throws
// contains a secret.
import { randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';

export type SignatureHeaders = {
  /** The message id: the same on every attempt, so receivers can use it as an idempotency key. */
  'webhook-id': string;
  /** Unix seconds of this attempt (not of the change): receivers refuse stale ones as replays. */
  'webhook-timestamp': string;
  /** `v1,<base64>`, or two of them space-separated while a secret is being rotated. */
  'webhook-signature': string;
};

const PREFIX = 'whsec_';
// The spec asks for at least 24 random bytes and allows up to 512 bits.
const MIN_SECRET_BYTES = 24;
const MAX_SECRET_BYTES = 64;
// Printable ASCII without space and '.': the signed text is `id.timestamp.body`, so a '.' in the
// id would make two different (id, timestamp) pairs sign the same bytes.
const MESSAGE_ID = /^[\x21-\x2d\x2f-\x7e]{1,255}$/;

/** A new `whsec_` secret: base64 of `bytes` random bytes (24 to 64; 32 unless told). */
export function generateSecret(bytes = 32): string {
  if (!Number.isInteger(bytes) || bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    throw new RangeError(`a secret has ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} random bytes, not ${bytes}`);
  }
  return PREFIX + randomBytes(bytes).toString('base64');
}

/** What is wrong with a subscription secret, or null when it is usable. Never echoes the secret. */
export function secretProblem(secret: string): string | null {
  if (!secret.startsWith(PREFIX)) return `a secret starts with '${PREFIX}'`;
  const encoded = secret.slice(PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) {
    return `a secret is '${PREFIX}' followed by standard base64 (A-Z a-z 0-9 + /, padded with =)`;
  }
  const bytes = Buffer.from(encoded, 'base64').length;
  if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    return `a secret holds ${MIN_SECRET_BYTES} to ${MAX_SECRET_BYTES} bytes once decoded, this one ${bytes}`;
  }
  return null;
}

/**
 * The webhook-* headers of one attempt. `secrets` is the current secret, then, during a rotation,
 * the previous one: both signatures are sent, so receivers holding either verify. `body` is the
 * exact text sent (UTF-8); sign and send the same string.
 */
export function signMessage(message: {
  id: string;
  timestamp: Date;
  body: string;
  secrets: readonly string[];
}): SignatureHeaders {
  const { id, timestamp, body, secrets } = message;
  if (!MESSAGE_ID.test(id)) {
    throw new TypeError('a message id is 1 to 255 printable ASCII characters without spaces or dots');
  }
  const ms = timestamp.getTime();
  if (!Number.isFinite(ms)) throw new TypeError('the timestamp is not a valid date');
  if (secrets.length < 1 || secrets.length > 2) {
    throw new TypeError(`sign with the current secret, plus the previous one during a rotation: got ${secrets.length} secrets`);
  }
  const signatures = secrets.map((secret, i) => {
    const problem = secretProblem(secret);
    if (problem) throw new TypeError(`secret ${i + 1} of ${secrets.length}: ${problem}`);
    return new Webhook(secret).sign(id, timestamp, body);
  });
  return {
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(ms / 1000)),
    'webhook-signature': signatures.join(' '),
  };
}

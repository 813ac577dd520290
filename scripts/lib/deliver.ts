// Signed Stripe deliveries as a sender makes them: ~5 KB events signed with the stripe package's
// own test helper, sent over a keep-alive HTTP agent, one at a time or as a stream retried like
// Stripe retries. For the bench, the fault tests and the HTTP tests.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import Stripe from 'stripe';

/** The Stripe endpoint secret the spawned service is started with (scripts/lib/service.ts). */
export const SECRET = 'whsec_bench_0123456789abcdef0123456789';

export function eventId(): string {
  return `evt_${randomBytes(12).toString('hex')}`;
}

/** A Stripe event envelope around `object`; pads to roughly `bytes` with metadata if asked. */
export function stripeEvent(fields: Partial<Record<string, unknown>> = {}, bytes = 0): Record<string, unknown> {
  const event: Record<string, unknown> = {
    id: eventId(),
    object: 'event',
    api_version: '2025-03-31.basil',
    created: Math.floor(Date.now() / 1000),
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type: 'customer.created',
    data: { object: { id: `cus_${randomBytes(7).toString('hex')}`, object: 'customer', metadata: {} } },
    ...fields,
  };
  if (bytes > 0) {
    const size = JSON.stringify(event).length;
    const object = (event.data as { object: Record<string, unknown> }).object;
    object.description = 'x'.repeat(Math.max(0, bytes - size - 20));
  }
  return event;
}

/** A unique Stripe event of about `bytes` bytes, with a valid signature made now. */
export function signedDelivery(bytes = 5000, type = 'customer.updated'): { id: string; body: string; signature: string } {
  const event = stripeEvent({ type }, bytes);
  const body = JSON.stringify(event);
  return { id: event.id as string, body, signature: Stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET }) };
}

// The service answers `Keep-Alive: timeout=5` (Node's default). Node's agent does not act on that
// hint: a socket left idle 5 s could be reused at the moment the server closes it, and the
// delivery fails with ECONNRESET (seen now and then in bench runs). Closing idle sockets after 4 s
// is what a client that honors the hint does.
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 4000 });

/**
 * POSTs one delivery; resolves with the status and the milliseconds to the full response. A
 * network error resolves with status 0 and its code (ECONNRESET, ...).
 */
export function deliver(
  base: string,
  d: { body: string; signature: string },
  webhookPath = '/webhooks/stripe',
): Promise<{ status: number; ms: number; error?: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      `${base}${webhookPath}`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(d.body),
          'stripe-signature': d.signature,
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - started }));
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ status: 0, ms: performance.now() - started, error: err.code ?? err.message }));
    req.end(d.body);
  });
}

export type Delivery = { id: string; attempts: number; statuses: number[]; ackedAt?: number };

/**
 * Delivers `events` open-loop at `perSecond` to `url()` (read on every attempt), like Stripe: each
 * event is sent once on schedule whatever happened to the others; an attempt that is not answered
 * 200 (refused, reset, 5xx) is signed afresh and retried with exponential backoff until it is.
 * `done` resolves when every event has had its 200.
 */
export function deliverStream(
  events: { id: string }[],
  options: { url: () => string; perSecond: number; retryBaseMs?: number; retryMaxMs?: number },
): { deliveries: Delivery[]; done: Promise<void>; acked(): number; failedAttempts(): number; stop(): void } {
  const deliveries: Delivery[] = events.map((e) => ({ id: e.id, attempts: 0, statuses: [] }));
  const base = options.retryBaseMs ?? 100;
  const max = options.retryMaxMs ?? 1000;
  let acked = 0;
  let failed = 0;
  let stopped = false;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };

  const attempt = (n: number) => {
    if (stopped) return;
    const d = deliveries[n]!;
    const body = JSON.stringify(events[n]);
    const signature = Stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET });
    d.attempts++;
    void deliver(options.url(), { body, signature }).then(({ status }) => {
      d.statuses.push(status);
      if (status === 200) {
        d.ackedAt = Date.now();
        if (++acked === deliveries.length) finish();
        return;
      }
      failed++;
      const ceiling = Math.min(max, base * 2 ** (d.attempts - 1));
      later(ceiling / 2 + (Math.random() * ceiling) / 2, () => attempt(n));
    });
  };

  // Open loop: on each tick, send every event whose time has come (setTimeout is coarse when the
  // machine is busy, so the schedule is by the clock, not by the number of ticks).
  const started = performance.now();
  let next = 0;
  const tick = () => {
    if (stopped) return;
    const due = Math.min(events.length, Math.floor(((performance.now() - started) / 1000) * options.perSecond) + 1);
    while (next < due) attempt(next++);
    if (next < events.length) later(5, tick);
  };
  tick();
  if (events.length === 0) finish();

  return {
    deliveries,
    done,
    acked: () => acked,
    failedAttempts: () => failed,
    stop() {
      stopped = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
    },
  };
}

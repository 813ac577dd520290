// The service as a real child process (node src/main.ts), and signed ~5 KB Stripe deliveries
// sent over a keep-alive HTTP agent: for fault tests and the benchmark scripts.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Stripe from 'stripe';
import { freePort } from '../../src/db/embedded.ts';
import { stripeEvent } from './app.ts';

export const root = fileURLToPath(new URL('../..', import.meta.url));
export const SECRET = 'whsec_bench_0123456789abcdef0123456789';

export type Service = { url: string; child: ChildProcess; stop: () => Promise<void> };

export async function startService(databaseUrl: string, env: Record<string, string> = {}): Promise<Service> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(root, 'src/main.ts')], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      PORT: String(port),
      HOST: '127.0.0.1',
      STRIPE_WEBHOOK_SECRET: SECRET,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the service exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false);
    if (ok) break;
    if (Date.now() > deadline) throw new Error('the service did not become ready in 60 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
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
export function deliver(base: string, d: { body: string; signature: string }): Promise<{ status: number; ms: number; error?: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = http.request(
      `${base}/webhooks/stripe`,
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


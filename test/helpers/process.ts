// Service processes that fault tests kill: `node src/main.ts` with any ROLE on a port the test
// chooses (so a restart answers at the same address, as Stripe's endpoint does), and Stripe-like
// delivery of a stream: signed afresh on every attempt, retried until it gets a 200.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import Stripe from 'stripe';
import { deliver, root, SECRET } from './service.ts';

export type ServiceProcess = {
  child: ChildProcess;
  pid: number;
  /** Resolves when the process has exited, whatever the reason. */
  exited: Promise<void>;
  /** SIGKILL: no shutdown code runs, sockets are reset by the kernel. Resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM and wait (SIGKILL after 15 s): for teardown. */
  stop(): Promise<void>;
};

/** Starts src/main.ts against `databaseUrl`; returns at once (wait for readiness with waitUntil). */
export function spawnService(databaseUrl: string, env: Record<string, string> = {}): ServiceProcess {
  const child = spawn(process.execPath, [path.join(root, 'src/main.ts')], {
    env: {
      PATH: process.env.PATH,
      DATABASE_URL: databaseUrl,
      HOST: '127.0.0.1',
      STRIPE_WEBHOOK_SECRET: SECRET,
      LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    pid: child.pid!,
    exited,
    async kill() {
      if (!gone()) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (gone()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits until `check` holds, polling every 20 ms; fails early if `proc` exits meanwhile. */
export async function waitUntil(
  check: () => Promise<boolean> | boolean,
  options: { what: string; timeoutMs?: number; proc?: ServiceProcess },
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (!(await check())) {
    const child = options.proc?.child;
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`the service exited (${child.exitCode ?? child.signalCode}) while waiting for ${options.what}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${options.timeoutMs ?? 30_000} ms waiting for ${options.what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const isReady = (url: string) => (): Promise<boolean> => fetch(`${url}/readyz`).then((r) => r.ok, () => false);

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

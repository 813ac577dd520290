// A token bucket that every request of one Stripe API client waits on, so the process stays under
// Stripe's rate limit (25 reads/s in test mode, 100 live); a 429 pauses it for every caller at once.
// Timing only: it sends nothing and knows nothing of Stripe's answers beyond the pause it is given.

export type RateLimiter = {
  /** Resolves when the caller may send one request; callers are served in the order they asked. */
  take: () => Promise<void>;
  /** Grant nothing for `ms` from now (a 429's Retry-After); a pause already set that ends later wins. */
  pause: (ms: number) => void;
  /** Callers waiting for a token right now. */
  readonly waiting: number;
  readonly rps: number;
  readonly burst: number;
};

/**
 * `rps` tokens a second, at most `burst` saved up. With a burst of 1 no one-second window holds
 * more than rps + 1 requests, which keeps the default 20/s clear of test mode's 25.
 */
export function createRateLimiter(options: { rps: number; burst?: number }): RateLimiter {
  const { rps, burst = 1 } = options;
  if (!(rps > 0) || !Number.isFinite(rps)) throw new RangeError(`rps must be a positive number, got ${rps}`);
  if (!Number.isInteger(burst) || burst < 1) throw new RangeError(`burst must be a positive integer, got ${burst}`);
  const interval = 1000 / rps;
  const queue: (() => void)[] = [];
  let tokens = burst;
  // performance.now() is monotonic: a wall-clock step must not hand out a burst or stall the bucket.
  let refilledAt = performance.now();
  let pausedUntil = 0;
  let timer: NodeJS.Timeout | undefined;

  const drain = () => {
    timer = undefined;
    const now = performance.now();
    if (now >= pausedUntil) {
      tokens = Math.min(burst, tokens + (now - refilledAt) / interval);
      refilledAt = now;
      while (queue.length > 0 && tokens >= 1) {
        tokens -= 1;
        queue.shift()!();
      }
    }
    if (queue.length === 0) return;
    const wait = now < pausedUntil ? pausedUntil - now : (1 - tokens) * interval;
    timer = setTimeout(drain, Math.max(1, Math.ceil(wait)));
  };

  return {
    take: () =>
      new Promise<void>((resolve) => {
        queue.push(resolve);
        if (!timer) drain();
      }),
    pause: (ms) => {
      const until = performance.now() + ms;
      if (until <= pausedUntil) return;
      pausedUntil = until;
      // One token when the pause ends, not a burst: the first request after it tests the water.
      tokens = 0;
      refilledAt = until - interval;
      if (timer) clearTimeout(timer);
      drain();
    },
    get waiting() {
      return queue.length;
    },
    rps,
    burst,
  };
}

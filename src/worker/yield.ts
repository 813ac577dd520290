// The worker yield rule: in a process that both serves webhooks and folds (ROLE=all), acks come
// first. Fold loops ask busy(loop) before each claim; it says so while ingest needs the CPU. Pure
// timing and counting, no I/O: the service feeds it the requests it sees.

/** Whether this process's event loop is saturated while it answers requests. */
export type Saturation = { saturated(): boolean; stop(): void };

// How the fold workers notice that ingest needs the CPU although few requests are in flight.
// Node accepts one new connection per event-loop iteration (libuv stopped accepting in a loop in
// 2022, libuv pull request 3696; strace of the service shows one accept4 per epoll_pwait). Under a
// burst of new connections, with folding making each iteration long, the connections waited in
// the kernel's accept queue (ss showed 100-200 there for seconds), not counted as in flight, and
// senders waited 1-2.5 s for an ack. The event loop's utilization counts that: past 90% over the
// last 50 ms while requests were arriving, all fold loops but one yield. Requests must be
// arriving, so folding alone (a backlog drained at night) never pauses itself.
const SATURATION_WINDOW_MS = 50;
const SATURATION_LIMIT = 0.9;

export function watchSaturation(requestCount: () => number): Saturation {
  let last = performance.eventLoopUtilization();
  let lastRequests = requestCount();
  let saturated = false;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const requests = requestCount();
    saturated = performance.eventLoopUtilization(now, last).utilization > SATURATION_LIMIT && requests > lastRequests;
    last = now;
    lastRequests = requests;
  }, SATURATION_WINDOW_MS);
  timer.unref();
  return { saturated: () => saturated, stop: () => clearInterval(timer) };
}

/** The largest value seen over the last one to two windows of `windowMs` (of `clock`'s milliseconds). */
export function peakOver(windowMs: number, clock: () => number = () => performance.now()): { see(n: number): void; peak(): number } {
  let start = clock();
  let current = 0;
  let previous = 0;
  const rotate = () => {
    const now = clock();
    if (now - start < windowMs) return;
    previous = now - start < 2 * windowMs ? current : 0;
    current = 0;
    start = now;
  };
  return {
    see(n) {
      rotate();
      if (n > current) current = n;
    },
    peak() {
      rotate();
      return Math.max(current, previous);
    },
  };
}

export type YieldRule = {
  /** Each request as it arrives, with how many are in flight then. */
  seeRequest(inFlight: number): void;
  /** True while fold loop number `loop` should leave the CPU to this process's requests. */
  busy(loop: number, inFlight: number): boolean;
  stop(): void;
};

/**
 * With HTTP in the same process, acks come first: past `yieldAt` requests in flight every fold loop
 * pauses, and while requests come to a saturated event loop all but the first do, until ingest
 * catches up (events wait, stored; acks do not). The first loop keeps folding through short
 * saturations: at 500 req/s, pausing all of them put the end-to-end p99 at 132-315 ms, one folding
 * at 59-82 ms (four runs each), while the first 3 s after a start peaked at 0.2-0.3 s and 0.3-1.2 s.
 * Group commit answers a whole batch at once, so the count of requests in flight dips for an
 * instant between batches: a fold loop that looked then claimed and folded 50 events in the middle
 * of a burst. So the rule looks at the most in flight over the last 50-100 ms.
 */
export function createYieldRule(yieldAt: number): YieldRule {
  let requests = 0;
  const recent = peakOver(SATURATION_WINDOW_MS);
  const eventLoop = watchSaturation(() => requests);
  return {
    seeRequest(inFlight) {
      requests++;
      recent.see(inFlight);
    },
    busy: (loop, inFlight) => Math.max(inFlight, recent.peak()) > yieldAt || (loop > 0 && eventLoop.saturated()),
    stop: () => eventLoop.stop(),
  };
}

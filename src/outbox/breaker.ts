// The circuit breaker of one subscription, as pure functions over a plain state object: given the
// state, what happened and the time, they return the next state and the transition (if any). No
// I/O, no clock, no timers: the state will live in a database row shared by every relay process,
// and the caller applies the result in the same transaction that read it (SELECT ... FOR UPDATE).
//
//   closed --N failures in a row, or failure rate over the window--> open
//   open --cool-down elapsed, one delivery admitted as the probe--> half_open
//   half_open --probe succeeds--> closed      half_open --probe fails--> open (longer cool-down)
//   any --no success for disableAfterMs, or 410 Gone--> disabled (until reset by a person)

export type CircuitState = 'closed' | 'open' | 'half_open' | 'disabled';

export type TransitionReason =
  | 'consecutive_failures'
  | 'failure_rate'
  | 'cool_down_elapsed'
  | 'probe_succeeded'
  | 'probe_failed'
  | 'late_success'
  | 'failing_too_long'
  | 'gone'
  | 'reset';

export type Transition = { from: CircuitState; to: CircuitState; reason: TransitionReason; at: number };

/** All times are epoch milliseconds. Plain data: store it, compare it, send it to the API. */
export type BreakerState = {
  state: CircuitState;
  /** Failures since the last success. */
  consecutiveFailures: number;
  /** First failure since the last success (null after a success): how long it has been failing. */
  failingSince: number | null;
  /**
   * Failure-rate window: counts of the current window (from windowStart, windowMs long) and of
   * the one before. The rate weighs the previous window by how much of it still overlaps the
   * last windowMs, a sliding window in four numbers instead of a list of recent outcomes.
   */
  windowStart: number;
  windowRequests: number;
  windowFailures: number;
  previousRequests: number;
  previousFailures: number;
  /** Times the circuit opened since the last success: each reopening doubles the cool-down. */
  opens: number;
  /** open: when the cool-down ends and a probe may go. */
  retryAt: number | null;
  /** half_open: when the probe was sent; another may go once probeTimeoutMs has passed. */
  probeSentAt: number | null;
  /** disabled: why. */
  disabledReason: 'failing_too_long' | 'gone' | null;
};

export type BreakerOptions = {
  /** Failures in a row that open the circuit. */
  consecutiveFailures: number;
  /** Failure share (0 to 1] over the window that opens it, once the window holds minRequests. */
  failureRate: number;
  minRequests: number;
  windowMs: number;
  /** First cool-down; doubled at each reopening without a success, up to maxCoolDownMs. */
  coolDownMs: number;
  maxCoolDownMs: number;
  /** A probe without an outcome after this long (its relay died) is replaced by another. */
  probeTimeoutMs: number;
  /** No success for this long (while failing) disables the subscription. */
  disableAfterMs: number;
};

export const DEFAULT_BREAKER_OPTIONS: BreakerOptions = {
  consecutiveFailures: 10,
  failureRate: 0.5,
  minRequests: 20,
  windowMs: 5 * 60_000,
  coolDownMs: 60_000,
  maxCoolDownMs: 60 * 60_000,
  probeTimeoutMs: 60_000,
  disableAfterMs: 5 * 86_400_000,
};

/** Defaults merged with `overrides`, checked; throws naming the bad option. */
export function breakerOptions(overrides: Partial<BreakerOptions> = {}): BreakerOptions {
  const options = { ...DEFAULT_BREAKER_OPTIONS, ...overrides };
  for (const [name, value] of Object.entries(options)) {
    if (!Number.isFinite(value) || value <= 0) throw new RangeError(`breaker option ${name} must be a positive number, not ${value}`);
  }
  if (options.failureRate > 1) throw new RangeError(`breaker option failureRate is a share from 0 to 1, not ${options.failureRate}`);
  if (!Number.isInteger(options.consecutiveFailures) || !Number.isInteger(options.minRequests)) {
    throw new RangeError('breaker options consecutiveFailures and minRequests are whole numbers');
  }
  if (options.maxCoolDownMs < options.coolDownMs) throw new RangeError('breaker option maxCoolDownMs is below coolDownMs');
  return options;
}

/** A new subscription's breaker: closed, nothing counted. */
export function initialBreaker(now: number): BreakerState {
  return {
    state: 'closed',
    consecutiveFailures: 0,
    failingSince: null,
    windowStart: now,
    windowRequests: 0,
    windowFailures: 0,
    previousRequests: 0,
    previousFailures: 0,
    opens: 0,
    retryAt: null,
    probeSentAt: null,
    disabledReason: null,
  };
}

export type Admission = {
  /** Send now. False: the delivery waits (it does not use up an attempt). */
  allowed: boolean;
  /** Whether this delivery is the half-open probe. */
  probe: boolean;
  /** When asking again makes sense (null: disabled, wait for a person). */
  waitUntil: number | null;
  state: BreakerState;
  transition: Transition | null;
};

/** May a delivery go to this subscription now? Call it before each send; it may admit the probe. */
export function admit(state: BreakerState, now: number, options: BreakerOptions): Admission {
  const no = (waitUntil: number | null): Admission => ({ allowed: false, probe: false, waitUntil, state, transition: null });
  switch (state.state) {
    case 'closed':
      return { allowed: true, probe: false, waitUntil: null, state, transition: null };
    case 'disabled':
      return no(null);
    case 'open': {
      if (now < state.retryAt!) return no(state.retryAt);
      const next: BreakerState = { ...state, state: 'half_open', retryAt: null, probeSentAt: now };
      return { allowed: true, probe: true, waitUntil: null, state: next, transition: transition(state, next, 'cool_down_elapsed', now) };
    }
    case 'half_open': {
      const lostAt = state.probeSentAt! + options.probeTimeoutMs;
      if (now < lostAt) return no(lostAt);
      return { allowed: true, probe: true, waitUntil: null, state: { ...state, probeSentAt: now }, transition: null };
    }
  }
}

export type Outcome = 'success' | 'failure' | 'gone';

/** Feeds one delivery's outcome (2xx, any failure, or 410 Gone) into the breaker. */
export function recordOutcome(
  state: BreakerState,
  outcome: Outcome,
  now: number,
  options: BreakerOptions,
): { state: BreakerState; transition: Transition | null } {
  if (state.state === 'disabled') return { state, transition: null };
  const counted = slideWindow(state, now, options.windowMs);
  counted.windowRequests++;

  if (outcome === 'gone') {
    counted.windowFailures++;
    return disable(state, counted, 'gone', now);
  }

  if (outcome === 'success') {
    const next: BreakerState = {
      ...counted,
      consecutiveFailures: 0,
      failingSince: null,
      opens: 0,
    };
    if (state.state === 'closed') return { state: next, transition: null };
    // Closing starts a fresh window: the failures that opened the circuit must not reopen it at
    // the next failure.
    const closed: BreakerState = {
      ...next,
      ...freshWindow(now),
      state: 'closed',
      retryAt: null,
      probeSentAt: null,
    };
    const reason = state.state === 'half_open' ? 'probe_succeeded' : 'late_success';
    return { state: closed, transition: transition(state, closed, reason, now) };
  }

  counted.windowFailures++;
  counted.consecutiveFailures++;
  counted.failingSince ??= now;
  if (now - counted.failingSince >= options.disableAfterMs) return disable(state, counted, 'failing_too_long', now);

  if (state.state === 'half_open') return open(state, counted, 'probe_failed', now, options);
  if (state.state === 'open') return { state: counted, transition: null }; // sent before it opened
  if (counted.consecutiveFailures >= options.consecutiveFailures) {
    return open(state, counted, 'consecutive_failures', now, options);
  }
  const { requests, failures } = windowCounts(counted, now, options.windowMs);
  if (requests >= options.minRequests && failures / requests >= options.failureRate) {
    return open(state, counted, 'failure_rate', now, options);
  }
  return { state: counted, transition: null };
}

/** A person re-enabled the subscription (or closed its circuit by hand): start afresh. */
export function resetBreaker(state: BreakerState, now: number): { state: BreakerState; transition: Transition | null } {
  const next = initialBreaker(now);
  return { state: next, transition: state.state === 'closed' ? null : transition(state, next, 'reset', now) };
}

/** The failure rate the breaker sees now, for the API and /metrics. */
export function windowCounts(state: BreakerState, now: number, windowMs: number): { requests: number; failures: number } {
  const slid = slideWindow(state, now, windowMs);
  const overlap = Math.max(0, 1 - (now - slid.windowStart) / windowMs);
  return {
    requests: slid.windowRequests + slid.previousRequests * overlap,
    failures: slid.windowFailures + slid.previousFailures * overlap,
  };
}

function freshWindow(now: number) {
  return { windowStart: now, windowRequests: 0, windowFailures: 0, previousRequests: 0, previousFailures: 0 };
}

/** A copy whose current window contains `now`, the older counts moved or dropped. */
function slideWindow(state: BreakerState, now: number, windowMs: number): BreakerState {
  const elapsed = now - state.windowStart;
  if (elapsed < windowMs) return { ...state };
  if (elapsed >= 2 * windowMs) return { ...state, ...freshWindow(now) };
  return {
    ...state,
    windowStart: state.windowStart + windowMs,
    windowRequests: 0,
    windowFailures: 0,
    previousRequests: state.windowRequests,
    previousFailures: state.windowFailures,
  };
}

function open(before: BreakerState, counted: BreakerState, reason: TransitionReason, now: number, options: BreakerOptions) {
  const coolDown = Math.min(options.coolDownMs * 2 ** counted.opens, options.maxCoolDownMs);
  const next: BreakerState = { ...counted, state: 'open', opens: counted.opens + 1, retryAt: now + coolDown, probeSentAt: null };
  return { state: next, transition: transition(before, next, reason, now) };
}

function disable(before: BreakerState, counted: BreakerState, reason: 'failing_too_long' | 'gone', now: number) {
  const next: BreakerState = { ...counted, state: 'disabled', disabledReason: reason, retryAt: null, probeSentAt: null };
  return { state: next, transition: transition(before, next, reason, now) };
}

function transition(before: BreakerState, after: BreakerState, reason: TransitionReason, at: number): Transition {
  return { from: before.state, to: after.state, reason, at };
}

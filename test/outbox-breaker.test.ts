// Circuit breaker (src/outbox/breaker.ts): every transition from a table of (state, input, time)
// rows, then a subscription failing for days under the defaults. Inputs are frozen, so a function
// that mutated the state it was given would throw here.
import t from 'tap';
import {
  admit,
  breakerOptions,
  DEFAULT_BREAKER_OPTIONS,
  initialBreaker,
  recordOutcome,
  resetBreaker,
  windowCounts,
  type BreakerState,
  type Outcome,
} from '../src/outbox/breaker.ts';

const opts = breakerOptions({
  consecutiveFailures: 3,
  failureRate: 0.5,
  minRequests: 4,
  windowMs: 1000,
  coolDownMs: 100,
  maxCoolDownMs: 400,
  probeTimeoutMs: 50,
  disableAfterMs: 10_000,
});

const T = 1_000_000; // an arbitrary "now"
const make = (fields: Partial<BreakerState> = {}): BreakerState => Object.freeze({ ...initialBreaker(T), ...fields });

/** Feeds outcomes one per millisecond from `start`; returns the final state and every transition. */
function feed(start: BreakerState, outcomes: Outcome[], at = T) {
  let state = start;
  const transitions = [];
  for (const [i, outcome] of outcomes.entries()) {
    const result = recordOutcome(Object.freeze(state), outcome, at + i, opts);
    state = result.state;
    if (result.transition) transitions.push(result.transition);
  }
  return { state, transitions };
}

t.test('outcomes: each row is a state, what happened, and the transition expected', async (t) => {
  type Row = [name: string, start: BreakerState, outcome: Outcome, now: number, expect: Partial<BreakerState>, reason: string | null];
  const rows: Row[] = [
    ['closed: a failure below the threshold is counted', make({ consecutiveFailures: 1 }), 'failure', T,
      { state: 'closed', consecutiveFailures: 2, failingSince: T }, null],
    ['closed: the Nth failure in a row opens, with the first cool-down', make({ consecutiveFailures: 2, failingSince: T - 5 }), 'failure', T,
      { state: 'open', consecutiveFailures: 3, opens: 1, retryAt: T + 100, failingSince: T - 5 }, 'consecutive_failures'],
    ['closed: a success clears the run of failures', make({ consecutiveFailures: 2, failingSince: T - 5 }), 'success', T,
      { state: 'closed', consecutiveFailures: 0, failingSince: null }, null],
    ['closed: 410 Gone disables at once', make(), 'gone', T,
      { state: 'disabled', disabledReason: 'gone' }, 'gone'],
    ['closed: failing for disableAfterMs disables', make({ consecutiveFailures: 1, failingSince: T - 10_000 }), 'failure', T,
      { state: 'disabled', disabledReason: 'failing_too_long' }, 'failing_too_long'],
    ['closed: just under disableAfterMs does not', make({ consecutiveFailures: 1, failingSince: T - 9_999 }), 'failure', T,
      { state: 'closed' }, null],
    ['open: a late failure (sent before it opened) changes no state', make({ state: 'open', opens: 1, retryAt: T + 50, consecutiveFailures: 3, failingSince: T - 10 }), 'failure', T,
      { state: 'open', retryAt: T + 50, consecutiveFailures: 4 }, null],
    ['open: a late success closes (the receiver works)', make({ state: 'open', opens: 1, retryAt: T + 50, consecutiveFailures: 3, failingSince: T - 10 }), 'success', T,
      { state: 'closed', retryAt: null, opens: 0, consecutiveFailures: 0, failingSince: null }, 'late_success'],
    ['open: failing for disableAfterMs disables', make({ state: 'open', opens: 4, retryAt: T + 50, failingSince: T - 20_000 }), 'failure', T,
      { state: 'disabled', disabledReason: 'failing_too_long', retryAt: null }, 'failing_too_long'],
    ['half_open: the probe succeeds and closes, with a fresh window', make({ state: 'half_open', opens: 2, probeSentAt: T - 10, windowRequests: 9, windowFailures: 9, previousRequests: 5, previousFailures: 5, windowStart: T - 100 }), 'success', T,
      { state: 'closed', opens: 0, probeSentAt: null, windowStart: T, windowRequests: 0, windowFailures: 0, previousRequests: 0, previousFailures: 0 }, 'probe_succeeded'],
    ['half_open: the probe fails and reopens with a doubled cool-down', make({ state: 'half_open', opens: 1, probeSentAt: T - 10, failingSince: T - 500 }), 'failure', T,
      { state: 'open', opens: 2, retryAt: T + 200, probeSentAt: null }, 'probe_failed'],
    ['half_open: the cool-down stops growing at maxCoolDownMs', make({ state: 'half_open', opens: 5, probeSentAt: T - 10, failingSince: T - 500 }), 'failure', T,
      { state: 'open', opens: 6, retryAt: T + 400 }, 'probe_failed'],
    ['half_open: 410 Gone disables', make({ state: 'half_open', opens: 1, probeSentAt: T - 10 }), 'gone', T,
      { state: 'disabled', disabledReason: 'gone', probeSentAt: null }, 'gone'],
    ['disabled: a success changes nothing (only a person re-enables)', make({ state: 'disabled', disabledReason: 'gone' }), 'success', T,
      { state: 'disabled', disabledReason: 'gone' }, null],
  ];
  for (const [name, start, outcome, now, expect, reason] of rows) {
    const { state, transition } = recordOutcome(start, outcome, now, opts);
    t.match(state, expect, name);
    if (reason === null) t.equal(transition, null, `${name}: no transition`);
    else t.same(transition, { from: start.state, to: state.state, reason, at: now }, `${name}: ${reason}`);
  }
});

t.test('admission: who may send, the probe, and how long to wait', async (t) => {
  type Row = [name: string, start: BreakerState, now: number, allowed: boolean, probe: boolean, waitUntil: number | null, expect: Partial<BreakerState>, reason: string | null];
  const rows: Row[] = [
    ['closed: everything goes', make(), T, true, false, null, { state: 'closed' }, null],
    ['open: during the cool-down deliveries wait', make({ state: 'open', opens: 1, retryAt: T + 100 }), T, false, false, T + 100, { state: 'open' }, null],
    ['open: once it ends, one delivery is the probe', make({ state: 'open', opens: 1, retryAt: T + 100 }), T + 100, true, true, null,
      { state: 'half_open', probeSentAt: T + 100, retryAt: null }, 'cool_down_elapsed'],
    ['half_open: while the probe is out, the rest wait', make({ state: 'half_open', opens: 1, probeSentAt: T }), T + 49, false, false, T + 50, { state: 'half_open', probeSentAt: T }, null],
    ['half_open: a probe lost for probeTimeoutMs is replaced', make({ state: 'half_open', opens: 1, probeSentAt: T }), T + 50, true, true, null, { state: 'half_open', probeSentAt: T + 50 }, null],
    ['disabled: nothing goes, and no time helps', make({ state: 'disabled', disabledReason: 'failing_too_long' }), T + 1e9, false, false, null, { state: 'disabled' }, null],
  ];
  for (const [name, start, now, allowed, probe, waitUntil, expect, reason] of rows) {
    const result = admit(start, now, opts);
    t.match(result, { allowed, probe, waitUntil }, name);
    t.match(result.state, expect, name);
    if (reason === null) t.equal(result.transition, null, `${name}: no transition`);
    else t.same(result.transition, { from: start.state, to: result.state.state, reason, at: now }, `${name}: ${reason}`);
  }
});

t.test('failure rate: opens over the window once minRequests are in it, not before', async (t) => {
  // S S F S F F: never 3 in a row, 3 of 6 failed = 50%.
  const rate = feed(make(), ['success', 'success', 'failure', 'success', 'failure', 'failure']);
  t.equal(rate.state.state, 'open');
  t.same(rate.transitions.map((x) => x.reason), ['failure_rate']);
  t.equal(rate.state.consecutiveFailures, 2);
  // F S F: 67% failed, but only 3 requests.
  t.equal(feed(make(), ['failure', 'success', 'failure']).state.state, 'closed', 'below minRequests');
  // S S S F S F: 33%.
  t.equal(feed(make(), ['success', 'success', 'success', 'failure', 'success', 'failure']).state.state, 'closed', 'below the rate');
});

t.test('failure rate: old windows fade out (previous window weighted by its overlap, then dropped)', async (t) => {
  const full = make({ windowStart: T, windowRequests: 10, windowFailures: 8 });
  t.same(windowCounts(full, T + 999, 1000), { requests: 10, failures: 8 }, 'inside the window');
  t.same(windowCounts(full, T + 1500, 1000), { requests: 5, failures: 4 }, 'half of the previous window still overlaps');
  t.same(windowCounts(full, T + 2000, 1000), { requests: 0, failures: 0 }, 'gone after two windows');
  // S S F S F, then F: 3 of 6 opens within one window; after a quiet time, the same F does not.
  const early = feed(make(), ['success', 'success', 'failure', 'success', 'failure']);
  t.equal(early.state.state, 'closed');
  t.equal(feed(early.state, ['failure'], T + 5).state.state, 'open', 'all in one window: opens');
  const late = feed(early.state, ['failure', 'success', 'failure'], T + 5000);
  t.equal(late.state.state, 'closed', 'after a quiet time: stays closed');
  t.same(windowCounts(late.state, T + 5002, 1000), { requests: 3, failures: 2 });
});

t.test('reset: a person re-enables a disabled subscription; resetting a closed one is no transition', async (t) => {
  const disabled = make({ state: 'disabled', disabledReason: 'failing_too_long', consecutiveFailures: 99, failingSince: T - 1e6 });
  const { state, transition } = resetBreaker(disabled, T);
  t.same(state, initialBreaker(T));
  t.same(transition, { from: 'disabled', to: 'closed', reason: 'reset', at: T });
  t.equal(resetBreaker(make(), T).transition, null);
});

t.test('options: defaults as documented, bad values named', async (t) => {
  t.same(breakerOptions(), DEFAULT_BREAKER_OPTIONS);
  t.match(DEFAULT_BREAKER_OPTIONS, { consecutiveFailures: 10, disableAfterMs: 5 * 86_400_000 });
  t.throws(() => breakerOptions({ failureRate: 1.5 }), /failureRate is a share from 0 to 1/);
  t.throws(() => breakerOptions({ windowMs: 0 }), /windowMs must be a positive number/);
  t.throws(() => breakerOptions({ consecutiveFailures: 2.5 }), /whole numbers/);
  t.throws(() => breakerOptions({ coolDownMs: 10, maxCoolDownMs: 5 }), /maxCoolDownMs is below coolDownMs/);
});

t.test('defaults: a receiver down for days is probed with growing cool-downs, then disabled after 5 days', async (t) => {
  const options = DEFAULT_BREAKER_OPTIONS;
  let state = initialBreaker(0);
  let now = 0;
  const reasons: string[] = [];
  let sent = 0;
  let waits = 0;
  const coolDowns: number[] = [];
  // A relay with one delivery always due: ask, send if admitted (it fails), else wait as told.
  while (state.state !== 'disabled' && now < 10 * 86_400_000) {
    const a = admit(state, now, options);
    state = a.state;
    if (a.transition) reasons.push(a.transition.reason);
    if (!a.allowed) {
      waits++;
      now = a.waitUntil!;
      continue;
    }
    sent++;
    const r = recordOutcome(state, 'failure', now + 1000, options);
    state = r.state;
    if (r.transition) {
      reasons.push(r.transition.reason);
      if (r.state.state === 'open') coolDowns.push(r.state.retryAt! - (now + 1000));
    }
    now += 1000;
  }
  t.equal(reasons[0], 'consecutive_failures', 'opened after ten failures in a row');
  t.equal(reasons.at(-1), 'failing_too_long');
  t.ok(now >= 5 * 86_400_000 && now < 5 * 86_400_000 + 3_600_000, 'disabled within the hour after 5 days of failing');
  t.same(coolDowns.slice(0, 8), [60_000, 120_000, 240_000, 480_000, 960_000, 1_920_000, 3_600_000, 3_600_000], 'doubling, capped at an hour');
  t.equal(sent, 10 + reasons.filter((r) => r === 'cool_down_elapsed').length, 'after opening, only probes were sent');
  t.ok(sent < 140, `${sent} requests in 5 days instead of one per retry of every delivery`);
  t.ok(waits > 0);
});

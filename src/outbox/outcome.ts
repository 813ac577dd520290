// What one attempt's outcome means: the delivery's next state (DELIVERED, FAILED with its next
// attempt from the retry schedule and any Retry-After, or DEAD after the last attempt), and what
// the attempts of a batch do to each subscription's circuit breaker. Pure: the relay
// (worker/relay.ts) locks the rows, calls these, and writes what they return.
import { admit, recordOutcome, type BreakerOptions, type BreakerState, type Transition } from './breaker.ts';
import { nextAttempt, type RetrySchedule } from './schedule.ts';
import type { SendOutcome } from './send.ts';
import type { AttemptRecord, BreakerRecord } from '../db/outbox.ts';

/** One finished send, as the relay keeps it until it is recorded. */
export type Sent = {
  delivery_id: string;
  subscription_id: string;
  object_id: string;
  version: number;
  attempt: number;
  /** Epoch ms when the request started. */
  startedAt: number;
  outcome: SendOutcome;
};

/** The attempt row and the delivery's next state. */
export function attemptRecord(sent: Sent, schedule: RetrySchedule, now: number, random: () => number = Math.random): AttemptRecord {
  const o = sent.outcome;
  const base = {
    delivery_id: sent.delivery_id,
    subscription_id: sent.subscription_id,
    object_id: sent.object_id,
    version: sent.version,
    attempt: sent.attempt,
    attempted_at: new Date(sent.startedAt).toISOString(),
    duration_ms: Math.round(o.ms),
    status_code: o.status ?? null,
    response_body: o.bodyStart ?? null,
  };
  if (o.ok) return { ...base, outcome: 'success', error: null, status: 'DELIVERED', next_attempt_at: null };
  const next = nextAttempt(schedule, sent.attempt, { retryAfterS: o.retryAfterS, random });
  return {
    ...base,
    outcome: o.kind,
    error: o.error,
    status: next.dead ? 'DEAD' : 'FAILED',
    next_attempt_at: next.dead ? null : new Date(now + next.delayMs).toISOString(),
  };
}

/** Which breaker outcome a send is: 410 Gone disables, any other failure counts as one. */
export const breakerOutcome = (o: SendOutcome) => (o.ok ? 'success' : o.gone ? 'gone' : 'failure');

/** When a circuit in this state may be asked again: the probe time, or never (closed, disabled). */
export function probeAt(state: BreakerState, options: BreakerOptions): number | null {
  if (state.state === 'open') return state.retryAt;
  if (state.state === 'half_open') return (state.probeSentAt ?? 0) + options.probeTimeoutMs;
  return null;
}

/** The row outbox_record writes for a breaker after these transitions. */
export function breakerRecord(
  id: string,
  state: BreakerState,
  transitions: Transition[],
  options: BreakerOptions,
  seen: { lastSuccess?: number; lastFailure?: number } = {},
): BreakerRecord {
  const iso = (ms: number | null | undefined) => (ms == null ? null : new Date(ms).toISOString());
  return {
    id,
    breaker: state,
    circuit_state: state.state,
    circuit_probe_at: iso(probeAt(state, options)),
    enabled: state.state !== 'disabled',
    disabled_reason: state.disabledReason,
    last_success_at: iso(seen.lastSuccess),
    last_failure_at: iso(seen.lastFailure),
    transitions: transitions.map((t) => ({ at: new Date(t.at).toISOString(), from: t.from, to: t.to, reason: t.reason })),
  };
}

/**
 * Feeds a batch of sends into the breakers of their subscriptions, in the order they finished, and
 * returns one breaker row per subscription that has one (a deleted subscription has none).
 */
export function applyToBreakers(
  locked: { id: string; breaker: unknown }[],
  sent: Sent[],
  options: BreakerOptions,
): { breakers: BreakerRecord[]; transitions: (Transition & { subscription_id: string })[] } {
  const breakers: BreakerRecord[] = [];
  const all: (Transition & { subscription_id: string })[] = [];
  for (const sub of locked) {
    let state = sub.breaker as BreakerState;
    const transitions: Transition[] = [];
    const seen: { lastSuccess?: number; lastFailure?: number } = {};
    for (const s of sent.filter((x) => x.subscription_id === sub.id)) {
      const at = s.startedAt + s.outcome.ms;
      const r = recordOutcome(state, breakerOutcome(s.outcome), at, options);
      state = r.state;
      if (r.transition) transitions.push(r.transition);
      if (s.outcome.ok) seen.lastSuccess = Math.max(seen.lastSuccess ?? 0, at);
      else seen.lastFailure = Math.max(seen.lastFailure ?? 0, at);
    }
    breakers.push(breakerRecord(sub.id, state, transitions, options, seen));
    all.push(...transitions.map((t) => ({ ...t, subscription_id: sub.id })));
  }
  return { breakers, transitions: all };
}

/** The probe's admission: the breaker row to store when a probe may go now, else null. */
export function admitProbe(
  id: string,
  breaker: unknown,
  now: number,
  options: BreakerOptions,
): { record: BreakerRecord; transition: Transition | null } | null {
  const a = admit(breaker as BreakerState, now, options);
  if (!a.allowed) return null;
  return { record: breakerRecord(id, a.state, a.transition ? [a.transition] : [], options), transition: a.transition };
}

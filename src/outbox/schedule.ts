// When a delivery is attempted again: the retry schedule (parsed from text like
// `0s,5s,5m,30m,2h`), its jitter, the last attempt (after which a delivery is DEAD), and the
// Retry-After a receiver may ask for. Pure: time and randomness come in as arguments.

/** Delays in ms; entry i is the wait before attempt i + 1, so entry 0 comes before the first. */
export type RetrySchedule = readonly number[];

/** Standard Webhooks' example schedule: ten attempts over about three days. */
export const DEFAULT_RETRY_SCHEDULE = '0s,5s,5m,30m,2h,5h,10h,14h,20h,24h';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const MAX_ATTEMPTS = 50;
const MAX_STEP_MS = 7 * UNIT_MS.d;

/** Parses a comma-separated schedule; throws a message naming the bad entry and the fix. */
export function parseRetrySchedule(text: string): RetrySchedule {
  const entries = text.split(',').map((s) => s.trim());
  if (entries.length === 1 && entries[0] === '') {
    throw new TypeError(`a retry schedule lists the wait before each attempt, like ${DEFAULT_RETRY_SCHEDULE}`);
  }
  if (entries.length > MAX_ATTEMPTS) {
    throw new TypeError(`a retry schedule has at most ${MAX_ATTEMPTS} attempts, this one ${entries.length}`);
  }
  return entries.map((entry, i) => {
    const match = /^(\d{1,9})(ms|s|m|h|d)$/.exec(entry);
    if (!match) {
      throw new TypeError(
        `retry schedule entry ${i + 1} ('${entry}'): write a whole number and a unit (ms, s, m, h or d), like 30s or 5m`,
      );
    }
    const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
    if (ms > MAX_STEP_MS) throw new TypeError(`retry schedule entry ${i + 1} ('${entry}') is longer than 7d`);
    return ms;
  });
}

// Jitter: +-20% of the step, at most +-5 minutes. When a receiver is down, every delivery to it
// fails within the same seconds; without jitter all of them would come back at the same instant
// on every step (and so would the receiver's load when it recovers). +-20% spreads a burst over
// 40% of the step, and the cap keeps the long steps close to the documented schedule: a few
// minutes of spread already separates any burst, 24h does not need +-5h.
const JITTER = 0.2;
const MAX_JITTER_MS = 5 * UNIT_MS.m;

/** The wait before attempt `attempt` (1-based), jittered; `random` returns [0, 1). */
export function attemptDelayMs(schedule: RetrySchedule, attempt: number, random: () => number = Math.random): number {
  const step = schedule[attempt - 1];
  if (step === undefined || !Number.isInteger(attempt)) {
    throw new RangeError(`attempt ${attempt} is outside the schedule (1 to ${schedule.length})`);
  }
  const spread = Math.min(step * JITTER, MAX_JITTER_MS);
  return Math.round(step + (random() * 2 - 1) * spread);
}

/** Whether attempt `attempt` (1-based) is the schedule's last: if it fails, the delivery is DEAD. */
export function isLastAttempt(schedule: RetrySchedule, attempt: number): boolean {
  return attempt >= schedule.length;
}

/**
 * What follows failed attempt `failed` (1-based): DEAD after the last one, otherwise the wait
 * before the next. A Retry-After from the receiver is honoured by never going sooner than it.
 */
export function nextAttempt(
  schedule: RetrySchedule,
  failed: number,
  options: { retryAfterS?: number | undefined; random?: () => number } = {},
): { dead: true } | { dead: false; attempt: number; delayMs: number } {
  if (isLastAttempt(schedule, failed)) return { dead: true };
  const attempt = failed + 1;
  const delayMs = attemptDelayMs(schedule, attempt, options.random);
  return { dead: false, attempt, delayMs: Math.max(delayMs, (options.retryAfterS ?? 0) * 1000) };
}

/** A day: as long as the default schedule's longest step. A longer wait is not believed. */
export const MAX_RETRY_AFTER_S = 86_400;

/**
 * Seconds to wait from a Retry-After header: delay-seconds (`120`) or an HTTP date, capped at
 * `maxS` (a receiver asking for a year must not park a delivery for one); a date in the past is 0.
 * Undefined when the header is absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number, maxS = MAX_RETRY_AFTER_S): number | undefined {
  if (value == null) return undefined;
  const text = value.trim();
  let seconds: number;
  if (/^\d+$/.test(text)) {
    seconds = Number(text);
  } else {
    // HTTP dates: IMF-fixdate and RFC 850 end in 'GMT'; asctime (`Sun Nov  6 08:49:37 1994`)
    // has no zone but means GMT, which Date.parse would not assume. Nothing else is a date here
    // (Date.parse reads '-5' as a year).
    const asctime = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/.test(text);
    if (!asctime && !/^[A-Za-z]{3}.* GMT$/.test(text)) return undefined;
    const at = Date.parse(asctime ? `${text} GMT` : text);
    if (Number.isNaN(at)) return undefined;
    seconds = Math.ceil((at - nowMs) / 1000);
  }
  return Math.min(Math.max(seconds, 0), maxS);
}

// Retry schedule (src/outbox/schedule.ts): parsing and its errors, jitter bounds, the last attempt,
// and Retry-After in both of its forms.
import fc from 'fast-check';
import t from 'tap';
import {
  attemptDelayMs,
  DEFAULT_RETRY_SCHEDULE,
  isLastAttempt,
  nextAttempt,
  parseRetryAfter,
  parseRetrySchedule,
} from '../src/outbox/schedule.ts';

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const NO_JITTER = () => 0.5; // random() * 2 - 1 === 0

t.test('the default is the Standard Webhooks schedule: ten attempts over 75h35m05s', async (t) => {
  const schedule = parseRetrySchedule(DEFAULT_RETRY_SCHEDULE);
  t.same(schedule, [0, 5 * S, 5 * M, 30 * M, 2 * H, 5 * H, 10 * H, 14 * H, 20 * H, 24 * H]);
  let elapsed = attemptDelayMs(schedule, 1, NO_JITTER);
  let attempt = 1;
  for (;;) {
    const next = nextAttempt(schedule, attempt, { random: NO_JITTER });
    if (next.dead) break;
    t.equal(next.attempt, attempt + 1);
    elapsed += next.delayMs;
    attempt = next.attempt;
  }
  t.equal(attempt, 10, 'DEAD after the tenth failure');
  t.equal(elapsed, 75 * H + 35 * M + 5 * S);
});

t.test('a schedule accepts ms, s, m, h and d, with spaces around commas', async (t) => {
  t.same(parseRetrySchedule('0ms, 250ms,1s , 2m,3h,1d'), [0, 250, 1 * S, 2 * M, 3 * H, 24 * H]);
  t.same(parseRetrySchedule('10s'), [10 * S], 'one attempt, no retries');
});

t.test('a bad schedule is refused with the entry and the fix', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /lists the wait before each attempt, like 0s,5s,5m/],
    ['5', /entry 1 \('5'\): write a whole number and a unit \(ms, s, m, h or d\), like 30s or 5m/],
    ['0s,5x', /entry 2 \('5x'\)/],
    ['0s,-5s', /entry 2 \('-5s'\)/],
    ['0s,1.5h', /entry 2 \('1\.5h'\)/],
    ['0s,,5m', /entry 2 \(''\)/],
    ['0s,5 m', /entry 2 \('5 m'\)/],
    ['0s,8d', /entry 2 \('8d'\) is longer than 7d/],
    [Array(51).fill('1s').join(','), /at most 50 attempts, this one 51/],
  ];
  for (const [text, message] of cases) t.throws(() => parseRetrySchedule(text), message, text.slice(0, 20));
});

t.test('jitter: +-20% of the step, at most +-5 minutes, never on an immediate attempt', async (t) => {
  const schedule = parseRetrySchedule('0s,5s,5m,24h');
  t.equal(attemptDelayMs(schedule, 1, () => 0), 0);
  t.equal(attemptDelayMs(schedule, 1, () => 0.999), 0);
  t.equal(attemptDelayMs(schedule, 2, () => 0), 4 * S);
  t.equal(attemptDelayMs(schedule, 2, NO_JITTER), 5 * S);
  t.equal(attemptDelayMs(schedule, 3, () => 0), 4 * M);
  t.equal(attemptDelayMs(schedule, 3, () => 1), 6 * M, 'the upper bound');
  t.equal(attemptDelayMs(schedule, 4, () => 0), 24 * H - 5 * M, 'capped on a long step');
  t.equal(attemptDelayMs(schedule, 4, () => 1), 24 * H + 5 * M);
  t.throws(() => attemptDelayMs(schedule, 0), /attempt 0 is outside the schedule \(1 to 4\)/);
  t.throws(() => attemptDelayMs(schedule, 5), /attempt 5 is outside/);

  fc.assert(
    fc.property(fc.integer({ min: 0, max: 7 * 24 * H }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (step, r) => {
      const delay = attemptDelayMs([step], 1, () => r);
      const spread = Math.min(step * 0.2, 5 * M);
      return delay >= step - spread - 0.5 && delay <= step + spread + 0.5;
    }),
  );
  // With the real Math.random, a burst of failures is spread, not sent back at one instant.
  const delays = new Set(Array.from({ length: 200 }, () => attemptDelayMs(schedule, 3)));
  t.ok(delays.size > 100, `200 retries spread over ${delays.size} distinct delays`);
});

t.test('the last attempt: isLastAttempt and nextAttempt agree, DEAD afterwards', async (t) => {
  const schedule = parseRetrySchedule('0s,1m,1h');
  t.equal(isLastAttempt(schedule, 1), false);
  t.equal(isLastAttempt(schedule, 2), false);
  t.equal(isLastAttempt(schedule, 3), true);
  t.same(nextAttempt(schedule, 2, { random: NO_JITTER }), { dead: false, attempt: 3, delayMs: H });
  t.same(nextAttempt(schedule, 3), { dead: true });
  t.same(nextAttempt(parseRetrySchedule('0s'), 1), { dead: true }, 'a one-attempt schedule never retries');
});

t.test('Retry-After is honoured by never retrying sooner, and never revives a DEAD delivery', async (t) => {
  const schedule = parseRetrySchedule('0s,5s,1h');
  t.same(nextAttempt(schedule, 1, { retryAfterS: 120, random: NO_JITTER }), { dead: false, attempt: 2, delayMs: 120 * S });
  t.same(nextAttempt(schedule, 2, { retryAfterS: 120, random: NO_JITTER }), { dead: false, attempt: 3, delayMs: H }, 'the schedule when longer');
  t.same(nextAttempt(schedule, 3, { retryAfterS: 120 }), { dead: true });
});

t.test('parseRetryAfter: delay-seconds and the three HTTP date forms, capped, garbage ignored', async (t) => {
  const now = Date.parse('2024-05-01T12:00:00Z');
  t.equal(parseRetryAfter('120', now), 120);
  t.equal(parseRetryAfter(' 0 ', now), 0);
  t.equal(parseRetryAfter('Wed, 01 May 2024 12:01:30 GMT', now), 90, 'IMF-fixdate');
  t.equal(parseRetryAfter('Wednesday, 01-May-24 12:01:30 GMT', now), 90, 'RFC 850');
  t.equal(parseRetryAfter('Wed May  1 12:01:30 2024', now), 90, 'asctime, read as GMT');
  t.equal(parseRetryAfter('Wed, 01 May 2024 12:00:00 GMT', now), 0, 'now');
  t.equal(parseRetryAfter('Tue, 30 Apr 2024 12:00:00 GMT', now), 0, 'a past date means now');
  t.equal(parseRetryAfter('Wed, 01 May 2024 12:00:00 GMT', now - 500), 1, 'part of a second rounds up');
  t.equal(parseRetryAfter('31536000', now), 86_400, 'a year is capped at a day');
  t.equal(parseRetryAfter('Thu, 01 May 2025 12:00:00 GMT', now), 86_400);
  t.equal(parseRetryAfter('99999999999999999999', now), 86_400);
  t.equal(parseRetryAfter('7200', now, 3600), 3600, 'a custom cap');
  for (const junk of [null, undefined, '', 'soon', '-5', '1.5', '1e3', '2024-05-01T12:01:30Z', 'in 5 minutes']) {
    t.equal(parseRetryAfter(junk, now), undefined, String(junk));
  }
});

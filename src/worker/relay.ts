// The relay: claims due deliveries (db/outbox.ts), signs and sends them (outbox/message.ts,
// outbox/send.ts), and records what came back, feeding each subscription's circuit breaker
// (outbox/outcome.ts). Sends run in parallel up to OUTBOX_CONCURRENCY, at most
// OUTBOX_SUBSCRIPTION_CONCURRENCY to one subscriber, so a receiver that hangs holds its own slots
// only. Finished sends are recorded together, one transaction for whatever finished meanwhile (the
// fold's group commit, for outcomes). Woken by NOTIFY on OUTBOX_CHANNEL (the fold's commits, a
// delivery becoming due after another version's outcome) and by its own finished sends; polls every
// OUTBOX_POLL_MS for retries coming due and expired leases. Never logs a body or a header value.
// It has its own few connections: behind the fold loops' transactions, a claim waited for a
// connection as long as it took to run.
import { hostname } from 'node:os';
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import { connect } from '../db/client.ts';
import { OUTBOX_CHANNEL, claimDeliveries, claimProbe, dueProbes, recordAttempts, releaseDeliveries, type ClaimedDelivery } from '../db/outbox.ts';
import type { Logger } from '../log.ts';
import type { OutboxMetrics } from '../metrics.ts';
import { breakerOptions, type BreakerOptions, type Transition } from '../outbox/breaker.ts';
import { messageBody, messageHeaders } from '../outbox/message.ts';
import { admitProbe, applyToBreakers, attemptRecord, type Sent } from '../outbox/outcome.ts';
import { createSender, type SendOutcome } from '../outbox/send.ts';
import { Doorbell } from './claim.ts';

export type Relay = { stop(): Promise<void> };

export function relayBreakerOptions(config: Config): BreakerOptions {
  return breakerOptions({
    consecutiveFailures: config.OUTBOX_BREAKER_FAILURES,
    failureRate: config.OUTBOX_BREAKER_FAILURE_RATE,
    minRequests: config.OUTBOX_BREAKER_MIN_REQUESTS,
    windowMs: config.OUTBOX_BREAKER_WINDOW,
    coolDownMs: config.OUTBOX_BREAKER_COOL_DOWN,
    maxCoolDownMs: Math.max(config.OUTBOX_BREAKER_MAX_COOL_DOWN, config.OUTBOX_BREAKER_COOL_DOWN),
    // A probe whose relay died is replaced once its lease would have run out.
    probeTimeoutMs: config.OUTBOX_LEASE_S * 1000,
    disableAfterMs: config.OUTBOX_DISABLE_AFTER,
  });
}

// How often the relay looks for open circuits whose probe is due.
const PROBE_CHECK_MS = 250;
// A batch of outcomes the database refuses this many times in a row is dropped: its deliveries'
// leases run out and they are sent again (the receiver dedupes on webhook-id).
const RECORD_TRIES = 5;
// Claims in flight at once. A claim commits synchronously (see db/outbox.ts), and while one waits
// for its flush the other takes what arrived meanwhile; their flushes are shared.
const CLAIM_LOOPS = 2;

export async function startRelay(deps: {
  sql: postgres.Sql;
  /** When given, the relay opens a small pool of its own there; otherwise it uses `sql`. */
  databaseUrl?: string;
  config: Config;
  log: Logger;
  metrics?: OutboxMetrics;
  userAgent?: string;
}): Promise<Relay> {
  const { config, metrics } = deps;
  const log = deps.log.child({ component: 'relay' });
  // Statements may take as long as a request: under load a claim's flush takes a while, and one cut
  // at the fold's 1 s would only be claimed again.
  const own = deps.databaseUrl
    ? connect(deps.databaseUrl, { max: CLAIM_LOOPS + 2, connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.OUTBOX_TIMEOUT_MS, applicationName: 'webhook-inbox-relay' })
    : undefined;
  const sql = own ?? deps.sql;
  const workerId = `${hostname()}:${process.pid}:relay`;
  const breaker = relayBreakerOptions(config);
  const schedule = config.OUTBOX_RETRY_SCHEDULE;
  const max = config.OUTBOX_CONCURRENCY;
  const perSubscription = Math.min(config.OUTBOX_SUBSCRIPTION_CONCURRENCY, max);
  const sender = createSender({
    timeoutMs: config.OUTBOX_TIMEOUT_MS,
    allowNetworks: config.OUTBOX_ALLOW_NETWORKS,
    allowHttp: config.OUTBOX_ALLOW_HTTP,
    userAgent: deps.userAgent ?? 'webhook-inbox/1 (+https://www.standardwebhooks.com/)',
  });

  const bell = new Doorbell();
  const inFlight = new Map<string, { subscription: string; done: Promise<void> }>();
  const perSub = new Map<string, number>();
  const abandoned = new Set<string>();
  const finished: (Sent & { created: number; messageId: string })[] = [];
  let flushing: Promise<void> | undefined;
  let stopping = false;
  let lastProbeCheck = 0;

  const listener = await sql.listen(OUTBOX_CHANNEL, () => bell.ring());

  function settle(id: string, subscription: string) {
    inFlight.delete(id);
    const n = (perSub.get(subscription) ?? 1) - 1;
    if (n <= 0) perSub.delete(subscription);
    else perSub.set(subscription, n);
  }

  function logTransition(t: Transition, subscriptionId: string) {
    metrics?.observeTransition(t.from, t.to, t.reason);
    const line = { subscriptionId, from: t.from, to: t.to, reason: t.reason };
    if (t.to === 'closed') log.info(line, 'circuit closed');
    else log.warn(line, t.to === 'disabled' ? 'subscription disabled by its circuit breaker' : `circuit ${t.to.replace('_', '-')}`);
  }

  function start(d: ClaimedDelivery) {
    const startedAt = Date.now();
    perSub.set(d.subscription_id, (perSub.get(d.subscription_id) ?? 0) + 1);
    const send = async (): Promise<SendOutcome> => {
      try {
        const body = messageBody(d);
        return await sender.send({ subscriptionId: d.subscription_id, url: d.url, headers: messageHeaders(d, body, new Date(startedAt)), body });
      } catch (err) {
        // A stored secret or header the signer refuses: an attempt that failed, said in words.
        return { ok: false, kind: 'network', error: (err as Error).message, ms: Date.now() - startedAt };
      }
    };
    const done = send().then((outcome) => {
      if (abandoned.has(d.delivery_id)) return; // handed back at shutdown: another relay sends it
      // The slot is the request: free it now, the record follows (the stream's lease keeps the
      // object's next version waiting until then).
      settle(d.delivery_id, d.subscription_id);
      bell.ring();
      finished.push({
        delivery_id: d.delivery_id,
        subscription_id: d.subscription_id,
        object_id: d.object_id,
        version: d.version,
        attempt: d.attempt,
        startedAt,
        outcome,
        created: d.created,
        messageId: d.message_id,
      });
      void flush();
    });
    inFlight.set(d.delivery_id, { subscription: d.subscription_id, done });
  }

  function flush(): Promise<void> {
    flushing ??= (async () => {
      let tries = 0;
      while (finished.length > 0) {
        const batch = finished.splice(0);
        const now = Date.now();
        try {
          const attempts = batch.map((s) => attemptRecord(s, schedule, now));
          const { woken, decided } = await recordAttempts(sql, batch.map((s) => s.subscription_id), (locked) => ({
            attempts,
            ...applyToBreakers(locked, batch, breaker),
          }));
          tries = 0;
          for (const [i, s] of batch.entries()) {
            const a = attempts[i]!;
            metrics?.observeAttempt(a.outcome, a.status, s.outcome.ms / 1000);
            if (a.status === 'DELIVERED') metrics?.observeLatency(Math.max(0, (s.startedAt + s.outcome.ms) / 1000 - s.created));
            const line = {
              deliveryId: s.delivery_id,
              messageId: s.messageId,
              subscriptionId: s.subscription_id,
              objectId: s.object_id,
              version: s.version,
              attempt: s.attempt,
              status: a.status,
              code: a.status_code ?? undefined,
              ms: a.duration_ms,
            };
            if (a.status === 'DELIVERED') log.info(line, 'delivered');
            else if (a.status === 'DEAD') log.error({ ...line, err: a.error }, 'delivery failed for the last time; DEAD');
            else log.warn({ ...line, err: a.error, retryAt: a.next_attempt_at }, 'delivery failed; will retry');
          }
          for (const t of decided.transitions) logTransition(t, t.subscription_id);
          if (woken > 0) bell.ring();
        } catch (err) {
          tries++;
          if (tries >= RECORD_TRIES) {
            log.error({ err, deliveries: batch.map((s) => s.delivery_id) }, 'could not record attempts; their leases will run out and they are sent again');
            tries = 0;
            continue;
          }
          log.warn({ err, deliveries: batch.length }, 'could not record attempts; retrying');
          finished.unshift(...batch);
          await new Promise((r) => setTimeout(r, Math.min(config.OUTBOX_POLL_MS, 200 * tries)));
        }
      }
    })().finally(() => {
      flushing = undefined;
      if (finished.length > 0) void flush();
    });
    return flushing;
  }

  async function probe() {
    if (Date.now() - lastProbeCheck < PROBE_CHECK_MS) return;
    lastProbeCheck = Date.now();
    for (const id of await dueProbes(sql)) {
      if (perSub.has(id)) continue;
      let transition: Transition | null = null;
      const { claimed } = await claimProbe(sql, id, { leaseSeconds: config.OUTBOX_LEASE_S, workerId }, (b) => {
        const a = admitProbe(id, b, Date.now(), breaker);
        transition = a?.transition ?? null;
        return a?.record ?? null;
      });
      if (claimed.length === 0) continue;
      if (transition) logTransition(transition, id);
      for (const d of claimed) start(d);
    }
  }

  let reserved = 0;
  const claimLoop = async (n: number) => {
    while (!stopping) {
      try {
        if (n === 0) await probe();
        // Outcomes waiting to be recorded count too: a database slower than the receivers slows the claims.
        const capacity = Math.min(max - inFlight.size - reserved - finished.length, Math.ceil(max / CLAIM_LOOPS));
        if (capacity <= 0) {
          await bell.sleep(config.OUTBOX_POLL_MS);
          continue;
        }
        const exclude = [...perSub].filter(([, count]) => count >= perSubscription).map(([id]) => id);
        reserved += capacity;
        const claimed = await claimDeliveries(sql, {
          limit: capacity,
          perSubscription,
          leaseSeconds: config.OUTBOX_LEASE_S,
          workerId,
          exclude,
        }).finally(() => (reserved -= capacity));
        if (claimed.length > 0) log.debug({ deliveries: claimed.map((d) => d.delivery_id) }, 'deliveries claimed');
        for (const d of claimed) start(d);
        if (claimed.length === 0) await bell.sleep(config.OUTBOX_POLL_MS);
      } catch (err) {
        log.error({ err }, 'claiming deliveries failed; retrying after the poll interval');
        await bell.sleep(config.OUTBOX_POLL_MS);
      }
    }
  };
  const loops = Array.from({ length: CLAIM_LOOPS }, (_, n) => claimLoop(n));
  log.info({ concurrency: max, perSubscription, timeoutMs: config.OUTBOX_TIMEOUT_MS }, 'relay started');

  return {
    async stop() {
      stopping = true;
      bell.ringAll();
      await Promise.all(loops);
      // Sends in flight get a moment to finish; the rest are handed back to another relay.
      const grace = Math.min(config.OUTBOX_TIMEOUT_MS, 3000);
      await Promise.race([Promise.all([...inFlight.values()].map((f) => f.done)), new Promise((r) => setTimeout(r, grace))]);
      const left = [...inFlight.keys()];
      for (const id of left) abandoned.add(id);
      sender.close();
      await flush();
      const released = await releaseDeliveries(sql, left, workerId).catch((err) => {
        log.warn({ err, deliveries: left.length }, 'could not hand back deliveries; their leases will run out');
        return 0;
      });
      await listener.unlisten().catch(() => {});
      await own?.end({ timeout: 5 });
      log.info({ released }, 'relay stopped');
    },
  };
}

// The bench's outbox phase (`npm run bench -- --phases outbox`), rows beside the others:
//   1. the fold's drain of a realistic backlog with no subscription, then with two (the fold then
//      writes a message and two deliveries per change), relay off, alternating: what the outbox
//      costs the fold
//   2. the relay alone: the deliveries of (1) sent to two fast local receivers, deliveries/s
//   3. end to end at fixed rates: a signed Stripe delivery sent -> its change's message answered
//      2xx by a local receiver (the subscriber has it), p50/p99, with the service as users run it
// The receivers run in this process (scripts/lib/receiver.ts), as a subscriber's would elsewhere.
import { randomInt } from 'node:crypto';
import type postgres from 'postgres';
import { insertEvent } from '../../src/db/events.ts';
import { createSubscription, deleteSubscription, listSubscriptions } from '../../src/db/subscriptions.ts';
import { generateSecret } from '../../src/outbox/sign.ts';
import { closedLoop, cpuPerRow, openLoop, percentile, type CpuSnapshot } from '../bench-lib.ts';
import { deliver, signedDelivery } from './deliver.ts';
import { startReceiver, type Receiver } from './receiver.ts';
import { startService, type ServiceProcess } from './service.ts';
import { buildStream } from './stream.ts';

export type OutboxBenchContext = {
  sql: postgres.Sql;
  databaseUrl: string;
  serviceEnv: Record<string, string>;
  workers: string;
  backlog: number;
  rates: number[];
  seconds: number;
  rounds: number;
  cpu: (services: (ServiceProcess | undefined)[]) => CpuSnapshot;
  progress: (message: string) => void;
  rows: Record<string, string | number>[];
};

const OUTBOX_ENV = { OUTBOX_ALLOW_NETWORKS: '127.0.0.0/8', OUTBOX_ALLOW_HTTP: 'true' };

/** Replaces the subscriptions by one per receiver (the old ones' waiting deliveries become DEAD). */
async function subscribe(sql: postgres.Sql, receivers: Receiver[]): Promise<void> {
  for (const s of await listSubscriptions(sql)) await deleteSubscription(sql, s.id);
  for (const r of receivers) {
    const secret = generateSecret();
    r.secrets = [secret];
    await createSubscription(sql, { url: r.url, secret });
  }
}

async function storeBacklog(sql: postgres.Sql, backlog: number): Promise<string[]> {
  const base = randomInt(1, 2 ** 30);
  const events: ReturnType<typeof buildStream> = [];
  for (let seed = base; events.length < backlog; seed++) events.push(...buildStream({ seed, customers: 100 }));
  events.length = backlog;
  await closedLoop(backlog, 32, (i) => {
    const e = events[i]!;
    return insertEvent(sql, {
      source: 'stripe', eventId: e.id, type: e.type, apiVersion: e.api_version, account: null,
      livemode: false, created: e.created, body: JSON.stringify(e),
    });
  });
  return events.map((e) => e.id);
}

/** Folds a stored backlog with the relay off; events/s from the first to the last processed_at. */
async function drain(ctx: OutboxBenchContext, label: string): Promise<void> {
  const ids = await storeBacklog(ctx.sql, ctx.backlog);
  ctx.progress(`outbox: ${label}`);
  const service = await startService(ctx.databaseUrl, { ...ctx.serviceEnv, ...OUTBOX_ENV, WORKER_CONCURRENCY: ctx.workers, OUTBOX_CONCURRENCY: '0' });
  const cpu = ctx.cpu([service]);
  const [early] = await ctx.sql<{ n: number }[]>`select count(*)::int as n from events where event_id in ${ctx.sql(ids)} and status <> 'RECEIVED'`;
  for (;;) {
    const [row] = await ctx.sql<{ left: boolean }[]>`select exists (select 1 from events where status = 'RECEIVED') as left`;
    if (!row!.left) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const cpuRow = cpuPerRow(cpu, ctx.cpu([service]), ctx.backlog - early!.n, ['service', 'postgres']);
  await service.stop();
  const [span] = await ctx.sql<{ seconds: number; n: number }[]>`
    select extract(epoch from max(processed_at) - min(processed_at))::float8 as seconds, count(*)::int as n
      from events where event_id in ${ctx.sql(ids)}`;
  ctx.rows.push({ measure: `outbox: drain ${ctx.backlog} events, ${label}`, 'rows/s': Math.round(span!.n / span!.seconds), ...cpuRow });
}

export async function benchOutbox(ctx: OutboxBenchContext): Promise<void> {
  const fast = [await startReceiver(), await startReceiver()];
  try {
    // 1. What writing the outbox costs the fold, alternating.
    for (let round = 0; round < ctx.rounds; round++) {
      await subscribe(ctx.sql, []);
      await drain(ctx, 'no subscription');
      await subscribe(ctx.sql, fast);
      await drain(ctx, '2 subscriptions (relay off)');
    }

    // 2. The relay alone, on what (1) left waiting.
    const [{ n: waiting }] = (await ctx.sql`select count(*)::int as n from deliveries where status in ('PENDING', 'FAILED')`) as unknown as [{ n: number }];
    ctx.progress(`outbox: relaying ${waiting} deliveries to 2 local receivers`);
    const relay = await startService(ctx.databaseUrl, { ...ctx.serviceEnv, ...OUTBOX_ENV, WORKER_CONCURRENCY: '1' });
    const cpu = ctx.cpu([relay]);
    const started = Date.now();
    for (;;) {
      const [row] = await ctx.sql<{ left: number }[]>`select count(*)::int as left from deliveries where status in ('PENDING', 'FAILED')`;
      if (row!.left === 0 || Date.now() - started > 600_000) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const cpuRow = cpuPerRow(cpu, ctx.cpu([relay]), Math.max(1, waiting), ['bench', 'service', 'postgres']);
    await relay.stop();
    const [span] = await ctx.sql<{ seconds: number; n: number; superseded: number }[]>`
      select extract(epoch from max(finished_at) - min(last_attempt_at))::float8 as seconds,
             count(*) filter (where status = 'DELIVERED')::int as n, count(*) filter (where status = 'SUPERSEDED')::int as superseded
        from deliveries where finished_at >= to_timestamp(${started / 1000})`;
    ctx.rows.push({
      measure: `outbox: relay ${waiting} waiting deliveries to 2 fast local receivers`,
      'rows/s': Math.round((span!.n + span!.superseded) / Math.max(span!.seconds, 0.001)),
      ...cpuRow,
      ...(span!.superseded ? { superseded: span!.superseded } : {}),
    });

    // 3. End to end: Stripe delivery sent -> the subscriber answered 2xx.
    const receiver = await startReceiver();
    try {
      await subscribe(ctx.sql, [receiver]);
      for (const rate of ctx.rates) {
        const bodies = Array.from({ length: Math.round(rate * ctx.seconds) }, () => signedDelivery(5000, 'customer.created'));
        const service = await startService(ctx.databaseUrl, { ...ctx.serviceEnv, ...OUTBOX_ENV, WORKER_CONCURRENCY: ctx.workers });
        // A few seconds at the rate first: the service's code and the fold functions warm up.
        const warm = Array.from({ length: Math.round(rate * 3) }, () => signedDelivery(5000, 'customer.created'));
        await openLoop(rate, 3, (i) => deliver(service.url, warm[i]!));
        ctx.progress(`outbox: end to end at ${rate} req/s for ${ctx.seconds} s`);
        const sentAt = new Map<string, number>();
        const cpuBefore = ctx.cpu([service]);
        const skip = receiver.received.length;
        const { results } = await openLoop(rate, ctx.seconds, async (i, dueAt) => {
          sentAt.set(bodies[i]!.id, performance.timeOrigin + dueAt);
          return deliver(service.url, bodies[i]!);
        });
        const ids = new Set(bodies.map((b) => b.id));
        const arrived = () => receiver.received.slice(skip).filter((r) => r.status === 200 && ids.has(r.body.source_event));
        const deadline = Date.now() + 120_000;
        while (arrived().length < bodies.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        const cpuRow2 = cpuPerRow(cpuBefore, ctx.cpu([service]), bodies.length, ['bench', 'service', 'postgres']);
        await service.stop();
        const e2e = arrived().map((r) => r.at - sentAt.get(r.body.source_event)!);
        // Where the time went: stored -> folded, and the change's commit -> its claim by the relay.
        const [split] = await ctx.sql<{ fold50: number; fold99: number; claim50: number; claim99: number }[]>`
          select percentile_cont(0.5) within group (order by f) as fold50, percentile_cont(0.99) within group (order by f) as fold99,
                 percentile_cont(0.5) within group (order by c) as claim50, percentile_cont(0.99) within group (order by c) as claim99
            from (select extract(epoch from e.processed_at - e.received_at) * 1000 as f,
                         extract(epoch from d.last_attempt_at - d.created_at) * 1000 as c
                    from events e join outbox_messages m on m.source_event = e.event_id join deliveries d on d.message_id = m.id
                   where e.event_id in ${ctx.sql([...ids])}) x`;
        const ok = results.filter((r) => r.status === 200).length;
        ctx.rows.push({
          measure: `outbox: end to end at ${rate} req/s (Stripe sent -> subscriber 2xx)`,
          'rows/s': rate,
          'e2e p50 ms': percentile(e2e, 50),
          'e2e p99 ms': percentile(e2e, 99),
          'max ms': percentile(e2e, 100),
          'fold p50/p99 ms': `${Math.round(split!.fold50)}/${Math.round(split!.fold99)}`,
          'commit->claim p50/p99 ms': `${Math.round(split!.claim50)}/${Math.round(split!.claim99)}`,
          ...cpuRow2,
          ...(e2e.length < bodies.length ? { 'not received': bodies.length - e2e.length } : {}),
          ...(ok < bodies.length ? { 'non-200': bodies.length - ok } : {}),
        });
      }
    } finally {
      await receiver.close();
    }
  } finally {
    for (const r of fast) await r.close();
  }
}

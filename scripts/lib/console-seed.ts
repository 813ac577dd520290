// Realistic data for the console's bench and screenshots: a Stripe stream (scripts/lib/stream.ts)
// stored and folded by the real workers, with what an operator meets at night: a few customers
// whose events never came (their children wait in pending_links), failed and retrying events, and
// arrival times spread over the last day. Writes to the database it is given; never imports test/.
import type postgres from 'postgres';
import { loadConfig } from '../../src/config.ts';
import { insertEvent } from '../../src/db/events.ts';
import { createSubscription } from '../../src/db/subscriptions.ts';
import { generateSecret } from '../../src/outbox/sign.ts';
import { startReceiver } from './receiver.ts';
import { silentLogger } from '../../src/log.ts';
import { startWorkers } from '../../src/worker/index.ts';
import { buildStream } from './stream.ts';
import { waitFor } from './wait.ts';

export type SeedOptions = {
  seed?: number;
  customers?: number;
  /** Customers whose own events are left out, so that their invoices and subscriptions wait for them. */
  missingCustomers?: number;
  /** One event in this many becomes FAILED (attempts exhausted), and as many RECEIVED retrying. */
  failEvery?: number;
  /** Arrival times are spread over this many hours before now. */
  hours?: number;
  /** A subscription to every change, sent to a local receiver that fails one request in ten. */
  subscriber?: boolean;
};

const ERRORS = [
  'canceling statement due to statement timeout',
  'could not serialize access due to concurrent update',
  'connection terminated unexpectedly',
];

/** Stores and folds the stream; returns how many events were stored. */
export async function seedConsoleData(sql: postgres.Sql, databaseUrl: string, options: SeedOptions = {}): Promise<number> {
  const { seed = 7, customers = 60, missingCustomers = 3, failEvery = 150, hours = 24, subscriber = false } = options;
  let requests = 0;
  const receiver = subscriber ? await startReceiver({ answer: () => ({ status: ++requests % 10 === 0 ? 500 : 200 }) }) : undefined;
  if (receiver) await createSubscription(sql, { url: receiver.url, description: 'billing service', secret: generateSecret() });
  const start = Math.floor(Date.now() / 1000) - hours * 3600;
  const stream = buildStream({ seed, customers, start });
  const missing = new Set(
    stream
      .filter((e) => e.type === 'customer.created')
      .slice(0, missingCustomers)
      .map((e) => e.data.object.id as string),
  );
  const kept = stream.filter((e) => !(e.data.object.object === 'customer' && missing.has(e.data.object.id)));
  for (const e of kept) {
    await insertEvent(sql, {
      source: 'stripe',
      eventId: e.id,
      type: e.type,
      apiVersion: e.api_version,
      account: e.account ?? null,
      livemode: e.livemode,
      created: e.created,
      body: JSON.stringify(e),
    });
  }
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'silent',
    WORKER_CONCURRENCY: '2',
    WORKER_POLL_MS: '50',
    OUTBOX_ALLOW_HTTP: 'true',
    OUTBOX_ALLOW_NETWORKS: '127.0.0.0/8',
  });
  const workers = await startWorkers({ sql, databaseUrl, config, log: silentLogger(), schedules: false });
  try {
    await waitFor(async () => (await sql`select 1 from events where status = 'RECEIVED' limit 1`).length === 0, {
      what: 'the seeded events to be folded',
      timeoutMs: 600_000,
    });
    // Sent once each (the failed ones wait for their retry).
    await waitFor(async () => (await sql`select 1 from deliveries where status = 'PENDING' limit 1`).length === 0, {
      what: 'the deliveries to be sent',
      timeoutMs: 600_000,
    });
  } finally {
    await workers.stop();
    await receiver?.close();
  }
  // Arrival in Stripe's order, spread over the window, each folded a fraction of a second later;
  // the pending links' `since` follows the event that parked them.
  await sql`
    with ordered as (
      select id, row_number() over (order by created, id) as n, count(*) over () as total from events
    )
    update events e
       set received_at = now() - make_interval(hours => ${hours}) * (1 - o.n::float8 / o.total) - random() * interval '20 s',
           processed_at = null
      from ordered o where o.id = e.id`;
  await sql`update events set processed_at = received_at + (0.02 + random() * 0.4) * interval '1 s' where status <> 'RECEIVED'`;
  await sql`update pending_links l set since = e.received_at from events e where e.source = 'stripe' and e.event_id = l.event_id`;
  // The outbox's times follow the folds that wrote its messages.
  await sql`update outbox_messages m set created_at = e.processed_at from events e where e.source = 'stripe' and e.event_id = m.source_event`;
  await sql`update deliveries d set created_at = m.created_at, finished_at = case when d.finished_at is not null then m.created_at + interval '80 ms' end,
                   last_attempt_at = m.created_at + interval '40 ms'
              from outbox_messages m where m.id = d.message_id`;
  await sql`update delivery_attempts a set attempted_at = d.created_at + interval '40 ms' from deliveries d where d.id = a.delivery_id`;
  if (failEvery > 0) {
    await sql`
      update events set status = 'FAILED', attempts = 8, result = null,
             last_error = (${ERRORS}::text[])[1 + (id % ${ERRORS.length})]
       where id % ${failEvery} = 3 and type like 'invoice.%'`;
    await sql`
      update events set status = 'RECEIVED', attempts = 2, result = null, processed_at = null,
             received_at = now() - (id % 50) * interval '1 s', next_attempt_at = now() + interval '1 hour',
             last_error = ${ERRORS[0]!}
       where id % ${failEvery} = 7`;
  }
  return kept.length;
}

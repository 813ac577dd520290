// Fault: the real service (node src/main.ts) is killed with SIGKILL while its relay is sending to
// a slow receiver: some requests are in flight, and changes the fold committed are not sent yet.
// After a restart every message reaches the receiver at least once, the ones in flight at the
// kill again with the same webhook-id, and no delivery is left waiting or DEAD.
import t from 'tap';
import { freePort } from '../src/db/embedded.ts';
import { deliverStream } from '../scripts/lib/deliver.ts';
import { startReceiver } from '../scripts/lib/receiver.ts';
import { spawnService, type ServiceProcess } from '../scripts/lib/service.ts';
import { buildStream } from '../scripts/lib/stream.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { createTestDatabase } from './helpers/db.ts';
import { unfinished } from './helpers/fold.ts';

const TOKEN = 'admin-token-0123456789abcdef';

t.test('SIGKILL mid-relay, restart: every message delivered at least once, the same webhook-id again', async (t) => {
  const db = await createTestDatabase(t);
  // A slow receiver, few requests at a time: the relay lags behind the fold.
  const receiver = await startReceiver({ answer: () => ({ status: 200, delayMs: 400 }) });
  t.teardown(() => receiver.close());
  const port = await freePort();
  const env = {
    PORT: String(port),
    ADMIN_TOKEN: TOKEN,
    OUTBOX_ALLOW_NETWORKS: '127.0.0.0/8',
    OUTBOX_ALLOW_HTTP: 'true',
    OUTBOX_SUBSCRIPTION_CONCURRENCY: '4',
    OUTBOX_TIMEOUT_MS: '1000',
    // Short leases, so what the killed process held comes back within the test.
    OUTBOX_LEASE_S: '6',
    WORKER_LEASE_S: '5',
  };
  const processes: ServiceProcess[] = [];
  t.teardown(() => Promise.all(processes.map((p) => p.stop())));
  const start = async () => {
    const service = await spawnService(db.url, env);
    processes.push(service);
    await service.ready();
    return service;
  };
  const waiting = async () => (await db.sql`select count(*)::int as n from deliveries where status in ('PENDING', 'FAILED')`)[0]!.n as number;

  let service = await start();
  const res = await fetch(`${service.url}/subscriptions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: receiver.url }),
  });
  t.equal(res.status, 201, 'subscribed through the API');
  receiver.secrets = [((await res.json()) as { secret: string }).secret];

  const stream = buildStream({ seed: 71, customers: 4 });
  const load = deliverStream(stream, { url: () => service.url, perSecond: 200 });
  t.teardown(() => load.stop());
  await load.done;
  await waitFor(
    async () =>
      (await unfinished(db.sql)) === 0 &&
      receiver.accepted().length >= 10 &&
      (await waiting()) > 10 &&
      // Last, after every await: nothing runs between this check and the kill below, so the
      // requests seen in flight here are still in flight when the process dies.
      receiver.received.some((r) => r.status === undefined),
    { what: 'everything folded, the relay mid-way, requests in flight', proc: service, timeoutMs: 60_000, intervalMs: 5 },
  );
  // Requests the receiver has not answered yet: the relay cannot have recorded them.
  const inFlight = receiver.received.filter((r) => r.status === undefined).map((r) => r.id);
  const receivedBefore = receiver.received.length;
  await service.kill();
  const unsent = await waiting();

  service = await start();
  await waitFor(async () => (await waiting()) === 0, { what: 'every delivery finished', proc: service, timeoutMs: 60_000 });
  await service.stop();

  const deliveries = await db.sql<{ message_id: string; status: string }[]>`select message_id, status from deliveries`;
  const accepted = new Set(receiver.accepted().map((r) => r.id));
  const received = new Set(receiver.received.map((r) => r.id));
  const after = receiver.received.slice(receivedBefore).map((r) => r.id);
  const statuses = [...new Set(deliveries.map((d) => d.status))].sort();
  t.comment(
    `${deliveries.length} deliveries; at the kill ${inFlight.length} requests in flight and ${unsent} deliveries waiting; ` +
      `${receiver.received.length} requests received, ${after.length} after the restart; statuses ${statuses.join(', ')}`,
  );
  t.ok(inFlight.length > 0 && unsent > 0, 'the kill came mid-relay');
  t.same(statuses.filter((s) => s !== 'DELIVERED' && s !== 'SUPERSEDED'), [], 'every delivery DELIVERED or SUPERSEDED by a newer version');
  t.same(deliveries.filter((d) => d.status === 'DELIVERED' && !accepted.has(d.message_id)).map((d) => d.message_id), [], 'every delivered message was answered 2xx by the receiver');
  t.same(deliveries.filter((d) => !received.has(d.message_id) && d.status !== 'SUPERSEDED').map((d) => d.message_id), [], 'every message reached the receiver at least once');
  const redelivered = inFlight.filter((id) => after.includes(id));
  t.ok(redelivered.length > 0, `${redelivered.length} of the ${inFlight.length} in flight were sent again after the restart`);
  const supersededInFlight = inFlight.filter((id) => !after.includes(id));
  t.same(
    supersededInFlight.filter((id) => deliveries.find((d) => d.message_id === id)?.status !== 'SUPERSEDED'),
    [],
    'an in-flight message not sent again was superseded by a newer version of its object',
  );
  t.ok(receiver.received.every((r) => r.verified), 'every signature verifies');
});

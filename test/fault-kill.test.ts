// Fault: the service (HTTP and workers) is killed with SIGKILL while a realistic Stripe stream is
// delivered at a steady rate, and restarted on the same database and port. Deliveries that fail
// are retried as Stripe retries them. No acknowledged event is lost or stored twice, every event
// is folded, and the graph is exactly the graph of the same stream folded in order.
import { freePort } from '../src/db/embedded.ts';
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { graphSnapshot, unfinished } from './helpers/fold.ts';
import { foldInOrder } from './helpers/in-order.ts';
import { deliverStream } from '../scripts/lib/deliver.ts';
import { spawnService, type ServiceProcess } from '../scripts/lib/service.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { buildStream } from '../scripts/lib/stream.ts';

// One subtest: tap ends a file's top level on its own between awaited assertions.
t.test('SIGKILL mid-stream, restart, finish: nothing lost, the in-order graph', async (t) => {
  const began = Date.now();
  const stream = buildStream({ seed: 5101, customers: 80 });
  const db = await createTestDatabase(t);
  const reference = await createTestDatabase(t);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  // A short lease, so the events the killed process had claimed come back within the test.
  const env = { PORT: String(port), WORKER_LEASE_S: '5' };
  const processes: ServiceProcess[] = [];
  t.teardown(() => Promise.all(processes.map((p) => p.stop())));
  const start = async () => {
    const service = await spawnService(db.url, env);
    processes.push(service);
    await service.ready();
    return service;
  };
  const count = async (where: string) =>
    ((await db.sql.unsafe(`select count(*)::int as n from events where ${where}`))[0]!.n as number);

  let service = await start();
  const load = deliverStream(stream, { url: () => url, perSecond: 200 });
  t.teardown(() => load.stop());

  // Kill it mid-stream, with deliveries in flight and workers folding.
  await waitFor(async () => load.acked() >= stream.length * 0.4 && (await count(`status <> 'RECEIVED'`)) > 0, {
    what: '40% of the stream acknowledged and some of it folded',
    proc: service,
  });
  await service.kill();
  const killedAt = Date.now();
  const ackedBeforeKill = load.deliveries.filter((d) => d.ackedAt !== undefined).map((d) => d.id);
  const storedAtKill = new Set(
    (await db.sql<{ event_id: string }[]>`select event_id from events`).map((r) => r.event_id),
  );

  // Stripe sees the outage (refused and reset connections) and keeps retrying; then it comes back.
  await waitFor(() => load.failedAttempts() > 0, { what: 'deliveries failing while the service is down' });
  service = await start();
  const downMs = Date.now() - killedAt;

  await waitFor(() => load.acked() === stream.length, { what: 'every event acknowledged', timeoutMs: 40_000 });
  await waitFor(async () => (await unfinished(db.sql)) === 0, { what: 'every event folded', proc: service, timeoutMs: 40_000 });
  await service.stop();
  const faultSeconds = (Date.now() - began) / 1000;

  // The same stream folded in order by one worker on a database of its own: what a correct fold ends with.
  await foldInOrder(reference.sql, stream);

  const rows = await db.sql<{ event_id: string; status: string; n: number }[]>`
    select event_id, status, count(*) over (partition by event_id)::int as n from events order by event_id`;
  const stored = new Set(rows.map((r) => r.event_id));
  const statusOf = async (sql: typeof db.sql) =>
    Object.fromEntries((await sql<{ event_id: string; status: string }[]>`select event_id, status from events`).map((r) => [r.event_id, r.status]));
  const statuses = await statusOf(db.sql);
  const acked = load.deliveries.filter((d) => d.statuses.includes(200));
  const lost = acked.filter((d) => !stored.has(d.id)).map((d) => d.id);
  const processed = rows.filter((r) => r.status === 'PROCESSED').length;
  const ignored = rows.filter((r) => r.status === 'IGNORED').length;
  const attempts = load.deliveries.reduce((sum, d) => sum + d.attempts, 0);
  const retried = load.deliveries.filter((d) => d.attempts > 1).length;
  // Committed, but the 200 died with the process: redelivered, and answered 200 as a duplicate.
  const unanswered = [...storedAtKill].filter((id) => !ackedBeforeKill.includes(id)).length;

  t.comment(
    `sent ${stream.length} events in ${attempts} deliveries (${load.failedAttempts()} failed, ${retried} events retried), ` +
      `acknowledged ${acked.length} (${ackedBeforeKill.length} before the kill), stored ${stored.size}, ` +
      `processed ${processed} + ignored ${ignored}, lost ${lost.length}; ${unanswered} stored but unanswered at the kill; ` +
      `down ${downMs} ms; fault run ${faultSeconds.toFixed(1)} s, with the in-order fold ${((Date.now() - began) / 1000).toFixed(1)} s`,
  );
  t.ok(ackedBeforeKill.length > 0 && ackedBeforeKill.length < stream.length, 'the kill came mid-stream');
  t.ok(storedAtKill.size < stream.length, 'events were still arriving when the service was killed');
  t.ok(load.failedAttempts() > 0, 'deliveries failed while the service was down');
  t.same(lost, [], 'every acknowledged event is stored (none lost)');
  t.same(ackedBeforeKill.filter((id) => !stored.has(id)), [], 'every event acknowledged before the kill survived it');
  t.equal(acked.length, stream.length, 'every event was acknowledged in the end');
  t.equal(rows.length, stream.length, 'stored count = acknowledged count');
  t.same(rows.filter((r) => r.n > 1).map((r) => r.event_id), [], 'no event stored twice');
  t.same(rows.filter((r) => r.status !== 'PROCESSED' && r.status !== 'IGNORED').map((r) => `${r.event_id}:${r.status}`), [], 'every event ends PROCESSED or IGNORED');
  t.same(statuses, await statusOf(reference.sql), 'each event ends as it does in the in-order fold (IGNORED only for types not folded)');
  const graph = await graphSnapshot(db.sql);
  t.same(graph.pending_links, [], 'nothing waits for a parent');
  t.same(graph, await graphSnapshot(reference.sql), 'the graph equals the in-order fold of the same stream');
});

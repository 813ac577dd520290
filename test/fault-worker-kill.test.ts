// Fault: a worker process (ROLE=worker) is killed with SIGKILL in the middle of a backlog, holding
// claimed events it never folded. Those events keep their lease (nobody takes them early), and
// once it runs out another worker process folds them, each on its second attempt; the graph is
// exactly the graph of the same stream folded in order.
import { hostname } from 'node:os';
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { graphSnapshot, storeEvents, unfinished } from './helpers/fold.ts';
import { foldInOrder } from './helpers/in-order.ts';
import { spawnService, type ServiceProcess } from '../scripts/lib/service.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { buildStream } from '../scripts/lib/stream.ts';

// Long enough that the first worker's claims are still leased when it is killed, even on a busy
// machine; short enough to wait out.
const LEASE_S = 5;

t.test('SIGKILL a worker mid-fold: its claims wait out the lease, then another worker folds them', async (t) => {
  const began = Date.now();
  const stream = buildStream({ seed: 5202, customers: 185 });
  const db = await createTestDatabase(t);
  const reference = await createTestDatabase(t);
  await storeEvents(db.sql, stream);
  const count = async (where: string) =>
    (await db.sql.unsafe(`select count(*)::int as n from events where ${where}`))[0]!.n as number;

  const processes: ServiceProcess[] = [];
  t.teardown(() => Promise.all(processes.map((p) => p.stop())));
  const worker = async (leaseSeconds: number) => {
    const p = await spawnService(db.url, { ROLE: 'worker', WORKER_BATCH_SIZE: '500', WORKER_LEASE_S: String(leaseSeconds) });
    processes.push(p);
    return p;
  };

  // Four claim loops of 500 take 2,000 of the backlog at once; kill the process a little way in.
  const first = await worker(LEASE_S);
  await waitFor(async () => (await count(`status <> 'RECEIVED'`)) >= 100, {
    what: 'the first worker to fold 100 events',
    proc: first,
    timeoutMs: 60_000,
  });
  await first.kill();
  // A fold statement the worker sent before it died still runs to its end, and commits: its
  // events are folded by the first worker, not held. Wait for those to finish before looking.
  await waitFor(
    async () =>
      (
        await db.sql`select count(*)::int as n from pg_stat_activity
                     where datname = current_database() and pid <> pg_backend_pid() and state <> 'idle'`
      )[0]!.n === 0,
    { what: "the dead worker's statements in flight to finish", timeoutMs: 10_000 },
  );
  const mine = `${hostname()}:${first.pid}:%`;
  const finishedByFirst = await count(`status <> 'RECEIVED'`);
  const held = await db.sql<{ id: string; attempts: number; lease_end: Date; leased: boolean; mine: boolean }[]>`
    select id::text, attempts, next_attempt_at as lease_end, next_attempt_at > now() as leased, locked_by like ${mine} as mine
    from events where status = 'RECEIVED' and locked_by is not null order by id`;
  const neverClaimed = await count(`status = 'RECEIVED' and locked_by is null and attempts = 0`);

  // A second worker, with the default-length lease so that none of its own claims run out.
  const second = await worker(60);
  const secondStarted = Date.now();
  await waitFor(async () => (await unfinished(db.sql)) === 0, {
    what: 'the second worker to fold everything',
    proc: second,
    timeoutMs: 60_000,
  });
  const secondSeconds = (Date.now() - secondStarted) / 1000;
  await second.stop();
  const faultSeconds = (Date.now() - began) / 1000;

  await foldInOrder(reference.sql, stream);

  const rows = await db.sql<{ id: string; event_id: string; status: string; attempts: number; processed_at: Date; locked_by: string | null }[]>`
    select id::text, event_id, status, attempts, processed_at, locked_by from events order by id`;
  const byId = new Map(rows.map((r) => [r.id, r]));
  const heldIds = new Set(held.map((h) => h.id));
  const statusOf = async (sql: typeof db.sql) =>
    Object.fromEntries((await sql<{ event_id: string; status: string }[]>`select event_id, status from events`).map((r) => [r.event_id, r.status]));
  const done = rows.filter((r) => r.status === 'PROCESSED' || r.status === 'IGNORED');

  t.comment(
    `stored ${rows.length} events; the first worker folded ${finishedByFirst} and died holding ${held.length} ` +
      `(${neverClaimed} never claimed); the second folded the rest in ${secondSeconds.toFixed(1)} s ` +
      `(lease ${LEASE_S} s); processed ${rows.filter((r) => r.status === 'PROCESSED').length} + ignored ` +
      `${rows.filter((r) => r.status === 'IGNORED').length}, lost ${stream.length - done.length}; ` +
      `fault run ${faultSeconds.toFixed(1)} s, with the in-order fold ${((Date.now() - began) / 1000).toFixed(1)} s`,
  );
  t.equal(rows.length, stream.length, 'every event of the backlog is stored once');
  t.ok(finishedByFirst > 0 && finishedByFirst < stream.length, 'the first worker was killed mid-backlog');
  t.ok(held.length > 0, 'it died holding claimed, unfolded events');
  t.same(held.filter((h) => !h.mine).map((h) => h.id), [], 'every held event is held by the dead worker');
  t.same(held.filter((h) => !h.leased).map((h) => h.id), [], 'each is still leased (next_attempt_at in the future) after the kill');
  t.same(held.filter((h) => h.attempts !== 1).map((h) => h.id), [], 'each on its first attempt');

  t.same(rows.filter((r) => r.status !== 'PROCESSED' && r.status !== 'IGNORED').map((r) => `${r.id}:${r.status}`), [], 'every event ends PROCESSED or IGNORED');
  t.same(held.filter((h) => byId.get(h.id)!.attempts !== 2).map((h) => `${h.id}:${byId.get(h.id)!.attempts}`), [], 'the events the dead worker held took exactly 2 attempts');
  t.same(held.filter((h) => byId.get(h.id)!.processed_at < h.lease_end).map((h) => h.id), [], 'none was folded before its lease ran out');
  t.same(held.filter((h) => !byId.get(h.id)!.locked_by?.startsWith(`${hostname()}:${second.pid}:`)).map((h) => h.id), [], 'the second worker folded them');
  t.same(rows.filter((r) => !heldIds.has(r.id) && r.attempts !== 1).map((r) => `${r.id}:${r.attempts}`), [], 'every other event took exactly 1 attempt');

  t.same(await statusOf(db.sql), await statusOf(reference.sql), 'each event ends as it does in the in-order fold');
  const graph = await graphSnapshot(db.sql);
  t.same(graph.pending_links, [], 'nothing waits for a parent');
  t.same(graph, await graphSnapshot(reference.sql), 'the graph equals the in-order fold of the same stream');
});

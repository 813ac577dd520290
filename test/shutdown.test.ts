// Graceful shutdown under load: SIGTERM while signed deliveries keep arriving and the workers fold
// them. The process exits 0 within SHUTDOWN_TIMEOUT_MS, every delivery it answered 200 is in the
// database (the rest were refused or cut before an answer, which senders retry), and no event is
// left leased to the stopped workers.
import postgres from 'postgres';
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { deliver, signedDelivery } from '../scripts/lib/deliver.ts';
import { startService } from '../scripts/lib/service.ts';
import { waitFor } from '../scripts/lib/wait.ts';

const db = await createTestDatabase(t);
const service = await startService(db.url, { WORKER_CONCURRENCY: '4', SHUTDOWN_TIMEOUT_MS: '8000' });
t.teardown(() => service.child.kill('SIGKILL'));
const exited = new Promise<number | null>((resolve) => service.child.on('exit', (code) => resolve(code)));

type Sent = { id: string; status: number; after: boolean };

// One subtest holds the whole run: tap ends a file's top level on its own when awaits separate
// its assertions.
t.test('SIGTERM under load with workers folding', async (t) => {
  const sent: Sent[] = [];
  let signalled = false;
  let running = true;
  // About 200 deliveries a second, each on its own, like Stripe during a burst.
  const load = (async () => {
    const inflight: Promise<void>[] = [];
    while (running) {
      const d = signedDelivery(5000);
      const after = signalled;
      inflight.push(deliver(service.url, d).then((r) => void sent.push({ id: d.id, status: r.status, after })));
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(inflight);
  })();

  await waitFor(() => sent.filter((s) => s.status === 200).length >= 200, { what: '200 stored deliveries' });
  const signalledAt = Date.now();
  signalled = true;
  service.child.kill('SIGTERM');
  const code = await exited;
  const took = Date.now() - signalledAt;
  // Keep sending a moment after the exit: those must all be refused (status 0), never a 200.
  const exitedAt = sent.length;
  await waitFor(() => sent.length >= exitedAt + 20, { what: '20 deliveries after the exit' });
  running = false;
  await load;

  const check = postgres(db.url, { max: 1, onnotice: () => {} });
  t.teardown(() => check.end());
  const acked = sent.filter((s) => s.status === 200).map((s) => s.id);
  const stored = new Set((await check<{ event_id: string }[]>`select event_id from events`).map((r) => r.event_id));

  t.comment(`sent ${sent.length}, acknowledged ${acked.length}; exit ${code} ${took} ms after SIGTERM`);
  // Past SHUTDOWN_TIMEOUT_MS the process exits 1: 0 means the ordered shutdown finished in time.
  t.equal(code, 0, 'SIGTERM under load exits 0');
  t.same(acked.filter((id) => !stored.has(id)), [], 'every acknowledged delivery is in the database');
  t.same(
    [...new Set(sent.map((s) => s.status))].filter((s) => s !== 200 && s !== 0 && s !== 503).sort(),
    [],
    'answers were 200, 503, or no answer at all (connection refused or closed)',
  );
  t.ok(sent.slice(exitedAt).every((s) => s.status === 0), 'nothing is answered after the exit');
  const [leases] = await check<{ leased: number; folded: number }[]>`
    select count(*) filter (where status = 'RECEIVED' and locked_until > now())::int as leased,
           count(*) filter (where status <> 'RECEIVED')::int as folded
      from events`;
  t.ok(leases!.folded > 0, `the workers were folding (${leases!.folded} folded)`);
  t.equal(leases!.leased, 0, 'the stopped workers finished or released every claim');
});

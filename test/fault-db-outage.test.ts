// Fault: Postgres stops while signed deliveries arrive at a steady rate, then starts again.
// While it is down every delivery is answered 503 within Stripe's 2 s; no 200 is ever given for
// an event that is not in the database; afterwards the same service process resumes by itself.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import t from 'tap';
import { freePort, startEmbeddedPostgres, type Embedded } from '../src/db/embedded.ts';
import { deliver, signedDelivery } from '../scripts/lib/deliver.ts';
import { startService } from '../scripts/lib/service.ts';
import { waitFor } from '../scripts/lib/wait.ts';

const dir = path.join(tmpdir(), `wi-outage-${randomBytes(4).toString('hex')}`);
const port = await freePort();
const startPg = () => startEmbeddedPostgres({ dir, port, database: 'outage' });
let pg: Embedded = await startPg();
t.teardown(async () => {
  await pg.stop().catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

const service = await startService(pg.url, { WORKER_CONCURRENCY: '0', DB_CONNECT_TIMEOUT_MS: '500' });
t.teardown(service.stop);

// The phase when a delivery was sent and when it was answered. 'restarting' starts when the
// restart is asked for: a delivery sent while down may wait for it and be stored (a 200 after
// the commit, which is right), so 'while down' counts only the ones answered before it.
type Phase = 'before' | 'down' | 'restarting' | 'after';
type Sent = { id: string; status: number; ms: number; phase: Phase; answered: Phase };
const sent: Sent[] = [];
let phase: Phase = 'before';
let running = true;
// 50 deliveries a second, each on its own (open loop), like a sender that does not wait.
const load = (async () => {
  const inflight: Promise<void>[] = [];
  while (running) {
    const d = signedDelivery();
    const p = phase;
    inflight.push(deliver(service.url, d).then((r) => void sent.push({ id: d.id, ...r, phase: p, answered: phase })));
    await new Promise((r) => setTimeout(r, 20));
  }
  await Promise.all(inflight);
})();

await waitFor(() => sent.filter((s) => s.status === 200).length >= 50, { what: '50 stored deliveries' });
await pg.stop();
phase = 'down';
const downAt = sent.length;
await waitFor(() => sent.length >= downAt + 100, { what: '100 deliveries while down' });
phase = 'restarting';
pg = await startPg();
phase = 'after';
const upAt = sent.filter((s) => s.phase === 'after').length;
await waitFor(() => sent.filter((s) => s.phase === 'after' && s.status === 200).length >= upAt + 50, { what: '50 stored after the restart' });
running = false;
await load;

const check = postgres(pg.url, { max: 1, onnotice: () => {} });
t.teardown(() => check.end());
const acked = sent.filter((s) => s.status === 200).map((s) => s.id);
const stored = new Set(
  (await check<{ event_id: string }[]>`select event_id from events where event_id in ${check(acked)}`).map((r) => r.event_id),
);
const down = sent.filter((s) => s.phase === 'down' && s.answered === 'down');
const straddled = sent.filter((s) => s.phase === 'down' && s.answered !== 'down');

const slowestDown = Math.max(...down.map((s) => s.ms));
t.comment(
  `sent ${sent.length}, acknowledged ${acked.length}, stored ${stored.size}, lost ${acked.filter((id) => !stored.has(id)).length}; ` +
    `while down: ${down.length} deliveries, ${down.filter((s) => s.status === 503).length} answered 503, ` +
    `${down.filter((s) => s.status === 200).length} answered 200, slowest ${slowestDown.toFixed(0)} ms; ` +
    `sent while down and answered once the restart began: ${straddled.length} ` +
    `(${straddled.filter((s) => s.status === 200).length} stored and answered 200)`,
);
t.same(acked.filter((id) => !stored.has(id)), [], 'every 200 is in the database');
t.same([...new Set(down.map((s) => s.status))], [503], 'while down: only 503, never 200');
// How fast the 503s came is measured by npm run faults, not asserted here: only that there were some.
t.ok(down.some((s) => s.status === 503), 'the outage was seen as 503s');
t.equal(sent.at(-1)?.status, 200, 'the service resumed without a restart');
t.ok(sent.every((s) => s.status === 200 || s.status === 503), 'no other status at any time');

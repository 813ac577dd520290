// The outbox end to end, against real local HTTP receivers: the shuffled, duplicated stream of the
// convergence property folded by 4 workers while the relay sends every change to two subscribers.
// Each receives, per object, only increasing versions, the last equal to the object's final row
// (snapshot and links), previous_version naming the version it had before, every signature valid.
import fc from 'fast-check';
import t from 'tap';
import type postgres from 'postgres';
import { createSubscription } from '../src/db/subscriptions.ts';
import { createLogger, silentLogger } from '../src/log.ts';
import { generateSecret } from '../src/outbox/sign.ts';
import { BY_TABLE, TABLES } from '../src/stripe/catalog.ts';
import { startWorkers } from '../src/worker/index.ts';
import { startReceiver, type Receiver } from '../scripts/lib/receiver.ts';
import { buildStream } from '../scripts/lib/stream.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { testConfig } from './helpers/app.ts';
import { createTestDatabase } from './helpers/db.ts';
import { resetGraph, storeEvents, unfinished } from './helpers/fold.ts';

export const OUTBOX_ENV = {
  OUTBOX_ALLOW_NETWORKS: '127.0.0.0/8',
  OUTBOX_ALLOW_HTTP: 'true',
  OUTBOX_POLL_MS: '50',
  WORKER_POLL_MS: '20',
};

const testLog = () => (process.env.TEST_LOG ? createLogger(process.env.TEST_LOG as 'debug', { pretty: false }) : silentLogger());

const db = await createTestDatabase(t);
const sql = db.sql;

async function waiting(sql: postgres.Sql): Promise<number> {
  const [row] = await sql`select count(*)::int as n from deliveries where status in ('PENDING', 'FAILED')`;
  return row!.n as number;
}

/** Every object row with its version, data and links, by id. */
async function finalRows(sql: postgres.Sql): Promise<Map<string, { version: number; data: unknown; links: Record<string, string | null> }>> {
  const rows = new Map();
  for (const table of TABLES) {
    const spec = BY_TABLE.get(table)!;
    for (const r of await sql.unsafe(`select * from ${table}`)) {
      rows.set(r.id, { version: Number(r.version), data: r.data, links: Object.fromEntries(spec.links.map((l) => [l.column, r[l.column]])) });
    }
  }
  return rows;
}

async function subscribe(receiver: Receiver, types?: string[]): Promise<string> {
  const secret = generateSecret();
  receiver.secrets = [secret];
  const s = await createSubscription(sql, { url: receiver.url, secret, types });
  return s.id;
}

/** JSON with sorted keys: jsonb does not keep key order. */
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));

/** Per object, what a receiver accepted, in arrival order. */
function byObject(receiver: Receiver): Map<string, any[]> {
  const out = new Map<string, any[]>();
  for (const r of receiver.accepted()) {
    const list = out.get(r.body.object_id) ?? [];
    list.push(r.body);
    out.set(r.body.object_id, list);
  }
  return out;
}

t.test('a shuffled, duplicated stream: every subscriber gets increasing versions, ending at the final rows', async (t) => {
  const stream = buildStream({ seed: 31, customers: 3 });
  let runs = 0;
  const numRuns = Number(process.env.RUNS ?? 3);
  await fc.assert(
    fc.asyncProperty(
      fc.shuffledSubarray(stream, { minLength: stream.length, maxLength: stream.length }),
      fc.array(fc.nat({ max: stream.length - 1 }), { maxLength: 10 }),
      async (order, dupes) => {
        runs++;
        await resetGraph(sql);
        await sql`truncate outbox_subscriptions, outbox_messages, deliveries, delivery_attempts, delivery_streams, circuit_transitions`;
        const receivers = [await startReceiver(), await startReceiver()];
        try {
          for (const r of receivers) await subscribe(r);
          await storeEvents(sql, [...order, ...dupes.map((i) => order[i]!)]);
          const config = testConfig({ ...OUTBOX_ENV, WORKER_CONCURRENCY: '4', WORKER_BATCH_SIZE: '3' });
          const workers = await startWorkers({ sql, databaseUrl: '', config, log: testLog(), schedules: false });
          try {
            await waitFor(async () => (await unfinished(sql)) === 0 && (await waiting(sql)) === 0, {
              what: 'every event folded and every delivery sent',
              timeoutMs: 60_000,
            }).catch(async (err) => {
              const left = await sql`select d.id, d.status, d.object_id, d.version, d.attempts, d.next_attempt_at - now() as due_in, d.locked_until - now() as lease,
                                            s.locked_until - now() as stream_lease, s.in_flight, s.delivered_version
                                       from deliveries d left join delivery_streams s using (subscription_id, object_id)
                                      where d.status in ('PENDING', 'FAILED') limit 5`;
              throw new Error(`${(err as Error).message}: ${await unfinished(sql)} events unfolded; waiting: ${JSON.stringify(left)}`);
            });
          } finally {
            await workers.stop();
          }
          const rows = await finalRows(sql);
          for (const [n, r] of receivers.entries()) {
            const bad = r.received.filter((x) => !x.verified);
            if (bad.length > 0) throw new Error(`receiver ${n}: ${bad.length} requests with a signature that does not verify`);
            const got = byObject(r);
            for (const [id, row] of rows) {
              const seen = got.get(id);
              if (!seen) throw new Error(`receiver ${n}: nothing about ${id} (version ${row.version})`);
              const versions = seen.map((b) => b.version);
              for (let i = 1; i < versions.length; i++) {
                if (versions[i] <= versions[i - 1]) throw new Error(`receiver ${n}: ${id} went ${versions.join(' -> ')}`);
                if (seen[i].previous_version !== versions[i - 1]) {
                  throw new Error(`receiver ${n}: ${id} v${versions[i]} says previous_version ${seen[i].previous_version}, it had v${versions[i - 1]}`);
                }
              }
              if (seen[0].previous_version !== null) throw new Error(`receiver ${n}: the first message about ${id} has previous_version ${seen[0].previous_version}`);
              const last = seen.at(-1);
              if (last.version !== row.version) throw new Error(`receiver ${n}: ${id} ends at v${last.version}, the row is at v${row.version}`);
              if (canonical(last.data) !== canonical(row.data)) throw new Error(`receiver ${n}: ${id}'s last data is not the row's`);
              if (canonical(last.links) !== canonical(row.links)) {
                throw new Error(`receiver ${n}: ${id}'s last links ${JSON.stringify(last.links)} are not the row's ${JSON.stringify(row.links)}`);
              }
            }
            const ids = new Set(r.accepted().map((x) => x.id));
            if (ids.size !== r.accepted().length) throw new Error(`receiver ${n}: a message was accepted twice`);
          }
        } finally {
          for (const r of receivers) await r.close();
        }
      },
    ),
    { numRuns, endOnFailure: true, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
  );
  t.equal(runs, numRuns, `${runs} arrival orders folded and relayed`);
});

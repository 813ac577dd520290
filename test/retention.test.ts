// purgeEvents: only finished events older than the window go, in batches of the given size.
import t from 'tap';
import { purgeEvents } from '../src/db/retention.ts';
import { createTestDatabase } from './helpers/db.ts';
import { seedEvent } from './helpers/events.ts';

t.test('purges finished events older than the window, in small batches, and nothing else', async (t) => {
  const db = await createTestDatabase(t);
  const purged = [
    await seedEvent(db.sql, { status: 'PROCESSED', age: '31 days' }),
    await seedEvent(db.sql, { status: 'PROCESSED', age: '400 days' }),
    await seedEvent(db.sql, { status: 'FAILED', age: '45 days', lastError: 'x' }),
    await seedEvent(db.sql, { status: 'IGNORED', age: '31 days', source: 'acme' }),
    await seedEvent(db.sql, { status: 'IGNORED', age: '90 days' }),
  ];
  const kept = [
    await seedEvent(db.sql, { status: 'RECEIVED', age: '60 days' }),
    await seedEvent(db.sql, { status: 'RECEIVED', age: '60 days', dueIn: '1 minute' }),
    await seedEvent(db.sql, { status: 'PROCESSED', age: '29 days' }),
    await seedEvent(db.sql, { status: 'FAILED', age: '1 day' }),
    await seedEvent(db.sql, { status: 'IGNORED', age: '0 seconds' }),
  ];
  const batches: number[] = [];
  const n = await purgeEvents(db.sql, { olderThanDays: 30, batchSize: 2, onBatch: (b) => batches.push(b) });
  t.equal(n, purged.length);
  t.same(batches, [2, 2, 1], 'batches of at most batchSize');
  const left = (await db.sql`select event_id from events order by id`).map((r) => r.event_id);
  t.same(left, kept.map((r) => r.event_id), 'unfinished and recent events are kept');
  t.equal(await purgeEvents(db.sql, { olderThanDays: 30, batchSize: 2 }), 0, 'a second run finds nothing');
});

t.test('maxBatches bounds one run; the next run carries on', async (t) => {
  const db = await createTestDatabase(t);
  for (let i = 0; i < 7; i++) await seedEvent(db.sql, { status: 'PROCESSED', age: '40 days' });
  t.equal(await purgeEvents(db.sql, { olderThanDays: 30, batchSize: 3, maxBatches: 1 }), 3);
  t.equal(await purgeEvents(db.sql, { olderThanDays: 30, batchSize: 3 }), 4);
});

t.test('a row locked by someone else is skipped, not waited for', async (t) => {
  const db = await createTestDatabase(t);
  const busy = await seedEvent(db.sql, { status: 'FAILED', age: '40 days' });
  const free = await seedEvent(db.sql, { status: 'FAILED', age: '40 days' });
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let locked!: () => void;
  const isLocked = new Promise<void>((r) => (locked = r));
  const holder = db.sql.begin(async (tx) => {
    await tx`select 1 from events where id = ${busy.id} for update`;
    locked();
    await held;
  });
  await isLocked;
  // The lock is held until release() below: had the purge waited for it, it would never return.
  t.equal(await purgeEvents(db.sql, { olderThanDays: 30, batchSize: 10 }), 1, 'purged around the locked row');
  release();
  await holder;
  const left = (await db.sql`select event_id from events`).map((r) => r.event_id);
  t.same(left, [busy.event_id]);
  t.notOk(left.includes(free.event_id));
});

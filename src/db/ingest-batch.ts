// Group commit for ingest: deliveries that arrive while a statement is in flight wait for the next
// one, which stores them all with one INSERT ... ON CONFLICT DO NOTHING. Each caller's promise
// settles only after the statement holding its row committed. It sends no NOTIFY (createWakeup).
import postgres from 'postgres';
import type { Sql } from './client.ts';
import type { NewEvent } from './events.ts';

export type IngestOutcome = 'stored' | 'duplicate';

export type IngestBatchOptions = {
  /** Rows in one statement at most. */
  maxRows: number;
  /** Bytes of payload in one statement at most (a single larger row still goes alone). */
  maxBytes: number;
  /** Statements in flight at once; the rest of the queue waits for one of them to finish. */
  maxInFlight: number;
};

export type IngestBatcher = {
  /**
   * Queues one event for the next statement. Resolves once that statement committed; rejects
   * with the statement's error (or the row's own, if Postgres refused only this row), or with
   * IngestExpiredError if `deadline` (performance.now()) passed before its statement was sent.
   */
  insert(event: NewEvent, deadline?: number): Promise<IngestOutcome>;
  /** Statements sent and rows they carried since start: what tests and the bench read. */
  stats(): { statements: number; rows: number; largest: number };
};

/** The caller stopped waiting before its row was sent: it was not stored. */
export class IngestExpiredError extends Error {
  constructor() {
    super('the delivery waited past its deadline before a statement took it; not stored');
    this.name = 'IngestExpiredError';
  }
}

// Data the database refuses to store although it parsed as JSON in JavaScript (e.g. \u0000 or a
// lone surrogate in a string, nesting too deep): the sender's problem, not an outage. In a batch
// such a row fails the whole statement, so the batch is sent again one row per statement.
export const UNSTORABLE = new Set(['22P02', '22P05', '22025', '22021', '54000', '54001']);

export function isUnstorable(err: unknown): boolean {
  return err instanceof postgres.PostgresError && UNSTORABLE.has(err.code);
}

type Entry = {
  event: NewEvent;
  bytes: number;
  deadline: number;
  resolve: (outcome: IngestOutcome) => void;
  reject: (err: unknown) => void;
};

const COLUMNS = 8;

// One text per batch size: postgres.js prepares each once per connection. The body travels as
// text and Postgres parses it into jsonb (a string bound to a jsonb parameter would be stored as
// a JSON string); bound values are sent as they are, nothing is escaped in JavaScript.
const statements: string[] = [];
function statementFor(rows: number): string {
  let text = statements[rows];
  if (text) return text;
  const values: string[] = [];
  for (let r = 0; r < rows; r++) {
    const p = r * COLUMNS;
    values.push(
      `($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}, $${p + 6}::boolean, to_timestamp($${p + 7}::bigint), $${p + 8}::text::jsonb)`,
    );
  }
  text = `insert into events (source, event_id, type, api_version, account, livemode, created, payload)
values ${values.join(', ')}
on conflict (source, event_id) do nothing
returning source, event_id`;
  statements[rows] = text;
  return text;
}

/** Stores `events` in one statement; per event, whether it was stored or was a duplicate. */
export async function insertEventBatch(sql: Sql, events: NewEvent[]): Promise<IngestOutcome[]> {
  const params: (string | number | boolean | null)[] = [];
  for (const e of events) {
    params.push(e.source, e.eventId, e.type, e.apiVersion, e.account, e.livemode, e.created, e.body);
  }
  const rows = await sql.unsafe<{ source: string; event_id: string }[]>(statementFor(events.length), params, { prepare: true });
  // Two deliveries of one event in one batch: Postgres stores the first and skips the other.
  const inserted = new Set<string>();
  for (const r of rows) inserted.add(`${r.source}\n${r.event_id}`);
  return events.map((e) => (inserted.delete(`${e.source}\n${e.eventId}`) ? 'stored' : 'duplicate'));
}

export function createIngestBatcher(sql: Sql, options: IngestBatchOptions): IngestBatcher {
  const queue: Entry[] = [];
  let head = 0;
  let inFlight = 0;
  let scheduled = false;
  let statementCount = 0;
  let rowCount = 0;
  let largest = 0;

  // Deliveries parsed in the same turn of the event loop all reach the queue before it is
  // flushed: setImmediate runs right after this turn's I/O, adding no delay when idle.
  const schedule = () => {
    if (scheduled || inFlight >= options.maxInFlight) return;
    scheduled = true;
    setImmediate(flush);
  };

  const take = (): Entry[] => {
    const batch: Entry[] = [];
    let bytes = 0;
    const now = performance.now();
    while (head < queue.length && batch.length < options.maxRows) {
      const entry = queue[head]!;
      if (batch.length > 0 && bytes + entry.bytes > options.maxBytes) break;
      queue[head++] = undefined as unknown as Entry;
      if (entry.deadline <= now) {
        entry.reject(new IngestExpiredError());
        continue;
      }
      batch.push(entry);
      bytes += entry.bytes;
    }
    // Statements of 1, 2, 4, 8, ... rows only: the rest goes back to the front of the queue, for
    // the next statement. Each shape is parsed and planned once per connection (six plans up to
    // 32 rows, not 32): Postgres spent 191 us a row with these shapes, 245 us with any count.
    const extra = batch.splice(2 ** Math.floor(Math.log2(Math.max(1, batch.length))));
    head -= extra.length;
    for (let i = 0; i < extra.length; i++) queue[head + i] = extra[i]!;
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    }
    return batch;
  };

  const flush = () => {
    scheduled = false;
    while (inFlight < options.maxInFlight && head < queue.length) {
      const batch = take();
      if (batch.length === 0) continue;
      inFlight++;
      void send(batch).finally(() => {
        inFlight--;
        if (head < queue.length) schedule();
      });
    }
  };

  const run = async (batch: Entry[]) => {
    statementCount++;
    rowCount += batch.length;
    if (batch.length > largest) largest = batch.length;
    const outcomes = await insertEventBatch(sql, batch.map((e) => e.event));
    batch.forEach((entry, i) => entry.resolve(outcomes[i]!));
  };

  const send = async (batch: Entry[]) => {
    try {
      await run(batch);
    } catch (err) {
      if (batch.length === 1 || !isUnstorable(err)) {
        for (const entry of batch) entry.reject(err);
        return;
      }
      // One row Postgres refuses fails only itself: every row again, each in its own statement.
      await Promise.all(batch.map((entry) => run([entry]).catch((rowErr) => entry.reject(rowErr))));
    }
  };

  return {
    insert(event, deadline = Infinity) {
      return new Promise<IngestOutcome>((resolve, reject) => {
        queue.push({ event, bytes: event.body.length, deadline, resolve, reject });
        schedule();
      });
    },
    stats: () => ({ statements: statementCount, rows: rowCount, largest }),
  };
}

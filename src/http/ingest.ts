// POST /webhooks/:source: raw bytes -> verify -> one INSERT ... ON CONFLICT DO NOTHING -> 200.
// The 200 is sent only after the statement committed; anything else answers 4xx or 503. The fold
// workers are woken after the commit, outside the ingest transaction.
import type { Hono } from 'hono';
import postgres from 'postgres';
import type { Sql } from '../db/client.ts';
import { insertEvent } from '../db/events.ts';
import { DatabaseUnavailableError, HttpError, PayloadError, UnknownSourceError } from '../errors.ts';
import type { Source, VerifiedEvent } from '../sources/types.ts';
import { readBodyLimited } from './body.ts';
import type { AppEnv } from './app.ts';

export type IngestDeps = {
  sql: Sql;
  sources: Map<string, Source>;
  maxBodyBytes: number;
  timeoutMs: number;
  onOutcome?: (source: string, outcome: string, seconds: number) => void;
  /** Called after an event committed: wakes the fold workers (db/events.ts createWakeup). */
  wake?: () => void;
};

// Data the database refuses to store although it parsed as JSON in JavaScript (e.g. \u0000 or a
// lone surrogate in a string, nesting too deep): the sender's problem, not an outage.
const UNSTORABLE = new Set(['22P02', '22P05', '22025', '22021', '54000', '54001']);

export function mountIngest(app: Hono<AppEnv>, deps: IngestDeps): void {
  app.post('/webhooks/:source', async (c) => {
    const started = performance.now();
    const name = c.req.param('source');
    const log = c.get('log').child({ source: name });
    let event: VerifiedEvent | undefined;
    let outcome = 'error';
    let failure: unknown;
    try {
      const source = deps.sources.get(name);
      if (!source) throw new UnknownSourceError(name);
      const raw = await readBodyLimited(c.req.raw, deps.maxBodyBytes);
      event = source.verify(raw, c.req.raw.headers, Date.now());
      outcome = await store(deps, name, event);
      return c.json({ status: 'success' }, 200);
    } catch (err) {
      outcome = err instanceof HttpError ? err.name : 'error';
      failure = err;
      throw err;
    } finally {
      const ms = performance.now() - started;
      deps.onOutcome?.(name, outcome, ms / 1000);
      const line = { eventId: event?.eventId, type: event?.type, outcome, ms: Math.round(ms * 100) / 100 };
      if (failure === undefined) log.info(line, 'webhook received');
      else log.warn({ ...line, error: errorText(failure) }, 'webhook rejected');
    }
  });
}

async function store(deps: IngestDeps, source: string, event: VerifiedEvent): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DatabaseUnavailableError()), deps.timeoutMs);
  });
  try {
    // If the deadline wins, the insert may still commit later: harmless, the sender got a 503 and
    // its retry is answered 200 as a duplicate. The reverse (200 without a commit) cannot happen.
    const outcome = await Promise.race([insertEvent(deps.sql, { source, ...event }), deadline]);
    if (outcome === 'stored') deps.wake?.();
    return outcome;
  } catch (err) {
    if (err instanceof HttpError) throw err;
    if (err instanceof postgres.PostgresError && UNSTORABLE.has(err.code)) {
      throw new PayloadError(`body cannot be stored: ${err.message}`, { cause: err });
    }
    throw new DatabaseUnavailableError({ cause: err });
  } finally {
    clearTimeout(timer);
  }
}

function errorText(err: unknown): string {
  const e = err as Error;
  const cause = e.cause as Error | undefined;
  return cause?.message ? `${e.message}: ${cause.message}` : String(e.message ?? e);
}

// POST /webhooks/:source: raw bytes -> verify -> INSERT ... ON CONFLICT DO NOTHING -> 200.
// The 200 is sent only after the statement holding the event committed (group commit:
// db/ingest-batch.ts); anything else answers 4xx or 503. The fold workers are woken after the
// commit, outside the ingest transaction. Served by Hono, and by Node's own request handler on the
// hot path (ingestListener), both through receive(): one place verifies, stores, logs and counts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Hono } from 'hono';
import { isUnstorable, type IngestBatcher } from '../db/ingest-batch.ts';
import { DatabaseUnavailableError, HttpError, PayloadError, UnknownSourceError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { HeaderReader, Source, VerifiedEvent } from '../sources/types.ts';
import { readBodyLimited, readIncomingLimited } from './body.ts';
import type { AppEnv } from './app.ts';

export type IngestDeps = {
  batcher: IngestBatcher;
  sources: Map<string, Source>;
  maxBodyBytes: number;
  timeoutMs: number;
  log: Logger;
  onOutcome?: (source: string, outcome: string, seconds: number) => void;
  /** Called after an event committed: wakes the fold workers (db/events.ts createWakeup). */
  wake?: () => void;
};

export type Ingest = {
  maxBodyBytes: number;
  /** Verifies and stores one delivery; resolves once it is committed, or throws an HttpError. */
  receive(name: string, read: () => Promise<Uint8Array>, headers: HeaderReader, requestId: string): Promise<void>;
};

export const SUCCESS_BODY = '{"status":"success"}';

export function createIngest(deps: IngestDeps): Ingest {
  return {
    maxBodyBytes: deps.maxBodyBytes,
    async receive(name, read, headers, requestId) {
      const started = performance.now();
      let event: VerifiedEvent | undefined;
      let outcome = 'error';
      let failure: unknown;
      try {
        const source = deps.sources.get(name);
        if (!source) throw new UnknownSourceError(name);
        const raw = await read();
        event = source.verify(raw, headers, Date.now());
        outcome = await store(deps, name, event, started);
      } catch (err) {
        outcome = err instanceof HttpError ? err.name : 'error';
        failure = err;
        throw err;
      } finally {
        // One line per delivery, built once here (no child loggers on the hot path).
        const ms = performance.now() - started;
        deps.onOutcome?.(name, outcome, ms / 1000);
        const line = { requestId, source: name, eventId: event?.eventId, type: event?.type, outcome, ms: Math.round(ms * 100) / 100 };
        if (failure === undefined) deps.log.info(line, 'webhook received');
        else deps.log.warn({ ...line, error: errorText(failure) }, 'webhook rejected');
      }
    },
  };
}

/** The route for Hono (app.request() in tests, and any server that serves app.fetch). */
export function mountIngest(app: Hono<AppEnv>, ingest: Ingest): void {
  app.post('/webhooks/:source', async (c) => {
    await ingest.receive(c.req.param('source'), () => readBodyLimited(c.req.raw, ingest.maxBodyBytes), c.req.raw.headers, c.get('requestId'));
    return c.body(SUCCESS_BODY, 200, { 'content-type': 'application/json' });
  });
}

const WEBHOOK_PATH = /^\/webhooks\/([^/?#]+)(?:\?.*)?$/;
// As Hono's requestId middleware: the caller's X-Request-Id when it is a sane token, else a new one.
const REQUEST_ID = /^[\w\-=]{1,255}$/;

/**
 * The hot path without the Request/Response conversion: takes POST /webhooks/:source straight
 * from Node's IncomingMessage and answers with res.end. Returns false for any other request, which
 * the caller hands to Hono. Errors are answered by `onError`, the same mapping as app.onError.
 */
export function ingestListener(
  ingest: Ingest,
  options: {
    onError: (err: unknown, requestId: string) => { status: number; body: string; headers?: Record<string, string> };
    isStopping?: () => boolean;
  },
): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    if (req.method !== 'POST') return false;
    const match = WEBHOOK_PATH.exec(req.url ?? '');
    if (!match) return false;
    let name: string;
    try {
      name = decodeURIComponent(match[1]!);
    } catch {
      return false;
    }
    const offered = req.headers['x-request-id'];
    const requestId = typeof offered === 'string' && REQUEST_ID.test(offered) ? offered : crypto.randomUUID();
    const headers: HeaderReader = {
      get(key) {
        const value = req.headers[key];
        return value === undefined ? null : typeof value === 'string' ? value : value.join(', ');
      },
    };
    const answer = (status: number, body: string, extra?: Record<string, string>) => {
      const head: Record<string, string> = { 'content-type': 'application/json', 'x-request-id': requestId, ...extra };
      // Draining, or a body left unread (too large, or the request failed early): close the
      // connection after the answer instead of reading what is left of the body.
      if (options.isStopping?.() || !req.complete) head.connection = 'close';
      res.writeHead(status, head).end(body);
    };
    ingest.receive(name, () => readIncomingLimited(req, ingest.maxBodyBytes), headers, requestId).then(
      () => answer(200, SUCCESS_BODY),
      (err) => {
        if (res.headersSent || res.destroyed) return;
        const r = options.onError(err, requestId);
        answer(r.status, r.body, r.headers);
      },
    );
    return true;
  };
}

async function store(deps: IngestDeps, source: string, event: VerifiedEvent, started: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DatabaseUnavailableError()), deps.timeoutMs);
  });
  try {
    // If the deadline wins, the insert may still commit later: harmless, the sender got a 503 and
    // its retry is answered 200 as a duplicate. The reverse (200 without a commit) cannot happen.
    // A delivery still queued at its deadline is dropped from the queue, not stored.
    const outcome = await Promise.race([deps.batcher.insert({ source, ...event }, started + deps.timeoutMs), deadline]);
    if (outcome === 'stored') deps.wake?.();
    return outcome;
  } catch (err) {
    if (err instanceof HttpError) throw err;
    if (isUnstorable(err)) throw new PayloadError(`body cannot be stored: ${(err as Error).message}`, { cause: err });
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

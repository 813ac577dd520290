// The admin API: list events, look one up, replay. Bearer ADMIN_TOKEN compared in constant time;
// without it every route answers 401, and with ADMIN_TOKEN unset the API is off (404 saying so).
// Parameters are validated by zod and a bad one answers 400 naming it. Queries live in db/event-lookup.ts and db/replay.ts.
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context, type MiddlewareHandler } from 'hono';
import postgres from 'postgres';
import { z } from 'zod';
import { EVENT_REF_HELP, checkWindow, decodeCursor, filterFields, isEmptyFilter, parseEventRef, type EventRef } from '../db/event-filter.ts';
import { getEvent, listEvents, parkedLinks } from '../db/event-lookup.ts';
import { countReplayable, replayEvent, replayEvents, sampleReplayable } from '../db/replay.ts';
import {
  AdminDisabledError,
  BadRequestError,
  DatabaseUnavailableError,
  EventLeasedError,
  EventNotFoundError,
  QueryTimeoutError,
  UnauthorizedError,
} from '../errors.ts';
import type { AppEnv } from './app.ts';

export type AdminDeps = {
  /** A pool whose statement timeout suits operator queries (ADMIN_STATEMENT_TIMEOUT_MS). */
  sql: postgres.Sql;
  /** Unset: the admin API is off. */
  token: string | undefined;
  /** Events re-queued per statement by POST /events/replay. */
  replayBatchSize?: number;
};

const LIST_LIMIT_MAX = 1000;
const DRY_RUN_SAMPLE = 10;

const listQuery = z
  .strictObject({
    ...filterFields,
    limit: z.coerce.number().int().min(1).max(LIST_LIMIT_MAX).default(50),
    cursor: z
      .string()
      .transform((v, ctx) => {
        const cursor = decodeCursor(v);
        if (cursor) return cursor;
        ctx.addIssue({ code: 'custom', message: 'not a cursor from a previous page' });
        return z.NEVER;
      })
      .optional(),
  })
  .superRefine(checkWindow);

const replayBody = z
  .strictObject({
    ...filterFields,
    limit: z.number().int().min(1).optional(),
    dry_run: z.boolean().default(false),
  })
  .superRefine(checkWindow);

const LIST_PARAMETERS = Object.keys(listQuery.shape).join(', ');

/** Parses with zod; a failure is a 400 naming the parameter. Shared with the outbox's routes. */
export function parse<T extends z.ZodType>(schema: T, input: unknown, known: string): z.infer<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    throw new BadRequestError(`unknown parameter ${issue.keys.join(', ')} (known: ${known})`, issue.keys[0]);
  }
  const name = String(issue.path[0] ?? 'body');
  throw new BadRequestError(`${name}: ${issue.message}`, name);
}

function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

// Hashing first makes both sides the same length, so timingSafeEqual never throws and the time
// taken does not depend on where the first wrong character is.
export function sameToken(offered: string, expected: string): boolean {
  const a = createHash('sha256').update(offered).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

// Named answers for what an operator can act on; the rest reaches app.onError as a 500.
export async function query<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof postgres.PostgresError) {
      if (err.code === '57014') throw new QueryTimeoutError({ cause: err });
      throw err;
    }
    const code = (err as { code?: string }).code;
    if (code && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|CONNECT_TIMEOUT|CONNECTION_)/.test(code)) {
      throw new DatabaseUnavailableError({ cause: err });
    }
    throw err;
  }
}

function eventRef(c: Context<AppEnv>): EventRef {
  const text = c.req.param('id') ?? '';
  const ref = parseEventRef(text);
  if (!ref) throw new BadRequestError(`id: ${EVENT_REF_HELP}`, 'id');
  return ref;
}

/** The bearer ADMIN_TOKEN check of every admin route (the outbox's too). */
export function requireAdmin(token: string | undefined): MiddlewareHandler<AppEnv> {
  return async (_c, next) => {
    if (!token) throw new AdminDisabledError();
    const offered = bearer(_c.req.header('authorization'));
    if (!offered || !sameToken(offered, token)) throw new UnauthorizedError();
    await next();
  };
}

export function mountAdmin(app: Hono<AppEnv>, deps: AdminDeps): void {
  const admin = new Hono<AppEnv>();
  const batchSize = deps.replayBatchSize ?? 1000;

  admin.use(requireAdmin(deps.token));

  admin.get('/', async (c) => {
    const params = c.req.queries();
    for (const [name, values] of Object.entries(params)) {
      if (values.length > 1) throw new BadRequestError(`${name}: given more than once (comma-separate several statuses)`, name);
    }
    const q = parse(listQuery, Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v[0]])), LIST_PARAMETERS);
    const { limit, cursor, ...filter } = q;
    return c.json(await query(() => listEvents(deps.sql, filter, { limit, cursor })));
  });

  admin.post('/replay', async (c) => {
    let body: unknown;
    const text = await c.req.text();
    try {
      body = text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      throw new BadRequestError('body: expected a JSON object such as {"status":"FAILED"}', 'body');
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new BadRequestError('body: expected a JSON object such as {"status":"FAILED"}', 'body');
    }
    const { limit, dry_run, ...filter } = parse(replayBody, body, 'status, source, type, from, to, limit, dry_run');
    if (isEmptyFilter(filter)) {
      // Replaying every event is legitimate but rare and heavy: make the caller say so.
      throw new BadRequestError(
        'body: give at least one filter (status, source, type, from, to); to replay everything, give from: "1970-01-01"',
        'body',
      );
    }
    const log = c.get('log');
    if (dry_run) {
      const [matched, sample] = await query(() =>
        Promise.all([countReplayable(deps.sql, filter, limit), sampleReplayable(deps.sql, filter, Math.min(DRY_RUN_SAMPLE, limit ?? DRY_RUN_SAMPLE))]),
      );
      log.info({ filter, limit, matched }, 'replay dry run');
      return c.json({ dry_run: true, matched, sample });
    }
    const done = await query(() => replayEvents(deps.sql, filter, { batchSize, limit }));
    log.info({ filter, limit, replayed: done.replayed }, 'events replayed');
    return c.json({ dry_run: false, matched: done.scanned, replayed: done.replayed });
  });

  admin.get('/:id', async (c) => {
    const ref = eventRef(c);
    const event = await query(() => getEvent(deps.sql, ref));
    if (!event) throw new EventNotFoundError(c.req.param('id'));
    const parked = await query(() => parkedLinks(deps.sql, event));
    return c.json({ ...event, parked });
  });

  admin.post('/:id/replay', async (c) => {
    const ref = eventRef(c);
    const done = await query(() => replayEvent(deps.sql, ref));
    if (done.outcome === 'missing') throw new EventNotFoundError(c.req.param('id'));
    if (done.outcome === 'leased') throw new EventLeasedError(c.req.param('id'));
    c.get('log').info({ id: done.id }, 'event replayed');
    return c.json({ id: done.id, replayed: 1 });
  });

  app.route('/events', admin);
}

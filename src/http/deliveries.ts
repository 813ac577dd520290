// The outbox's delivery API (admin bearer token): list deliveries newest first with their attempts
// (keyset pages), look one up with the message it carries, and replay the dead-letter queue (by ids
// or by filter, with dry_run). GET /dlqs and POST /dlqs are thin aliases in the shape our users'
// own API document names them (offset pages; a list of ids to send again).
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { checkWindow, filterFields } from '../db/event-filter.ts';
import {
  DELIVERY_STATUSES,
  decodeDeliveryCursor,
  getDelivery,
  listDead,
  listDeliveries,
  replayDeliveries,
  replayDryRun,
  type DeliveryStatus,
  type ReplayTarget,
} from '../db/deliveries.ts';
import { BadRequestError, HttpError } from '../errors.ts';
import { parse, query, requireAdmin } from './admin.ts';
import type { AppEnv } from './app.ts';
import { jsonBody, parseBody, type OutboxApiDeps } from './subscriptions.ts';

const LIST_LIMIT_MAX = 1000;
const REPLAY_IDS_MAX = 10_000;

const statuses = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (Array.isArray(v) ? v : v.split(',')).map((s) => s.trim().toUpperCase()).filter((s) => s !== ''))
  .pipe(
    z
      .array(z.enum(DELIVERY_STATUSES, { error: `expected ${DELIVERY_STATUSES.join(', ')} (several comma-separated)` }))
      .min(1, `expected ${DELIVERY_STATUSES.join(', ')}`),
  )
  .transform((v) => [...new Set(v)] as DeliveryStatus[]);

const deliveryId = z
  .union([z.string(), z.number()])
  .transform((v) => String(v))
  .pipe(z.string().regex(/^[1-9]\d{0,17}$/, 'expected a delivery id (a positive whole number)'));

const filter = {
  subscription: z.string().regex(/^ep_[0-9a-f]{24}$/, 'expected a subscription id (ep_ and 24 hex digits)').optional(),
  status: statuses.optional(),
  object_id: z.string().min(1).max(255).regex(/^[^\u0000]*$/, 'expected a Stripe object id such as in_1Abc').optional(),
  from: filterFields.from,
  to: filterFields.to,
};

const listQuery = z
  .strictObject({
    ...filter,
    limit: z.coerce.number().int().min(1).max(LIST_LIMIT_MAX).default(50),
    cursor: z
      .string()
      .transform((v, ctx) => {
        const id = decodeDeliveryCursor(v);
        if (id) return id;
        ctx.addIssue({ code: 'custom', message: 'not a cursor from a previous page' });
        return z.NEVER;
      })
      .optional(),
  })
  .superRefine(checkWindow);

const replayIds = z.strictObject({ ids: z.array(deliveryId).min(1, 'give at least one id').max(REPLAY_IDS_MAX), dry_run: z.boolean().default(false) });
const replayFilter = z
  .strictObject({ ...filter, limit: z.number().int().min(1).optional(), dry_run: z.boolean().default(false) })
  .superRefine(checkWindow)
  .refine((f) => f.subscription || f.status || f.object_id || f.from || f.to, 'give ids, or at least one filter (subscription, status, object_id, from, to)');

const dlqQuery = z.strictObject({
  skip: z.coerce.number().int().min(0).max(1_000_000).default(0),
  limit: z.coerce.number().int().min(1).max(LIST_LIMIT_MAX).default(100),
});
const dlqBody = z.strictObject({ dlqs: z.array(deliveryId).min(1, 'give at least one delivery id').max(REPLAY_IDS_MAX) });

const LIST_PARAMETERS = Object.keys(listQuery.shape).join(', ');

function queryParams(c: Context<AppEnv>): Record<string, string> {
  const params = c.req.queries();
  for (const [name, values] of Object.entries(params)) {
    if (values.length > 1) throw new BadRequestError(`${name}: given more than once (comma-separate several statuses)`, name);
  }
  return Object.fromEntries(Object.entries(params).map(([k, v]) => [k, v[0]!]));
}

export function mountDeliveries(app: Hono<AppEnv>, deps: OutboxApiDeps): void {
  const { sql } = deps;
  const api = new Hono<AppEnv>();
  api.use(requireAdmin(deps.token));

  api.get('/', async (c) => {
    const { limit, cursor, ...f } = parse(listQuery, queryParams(c), LIST_PARAMETERS);
    return c.json(await query(() => listDeliveries(sql, f, { limit, cursor })));
  });

  async function replay(c: Context<AppEnv>, target: ReplayTarget, dryRun: boolean) {
    const log = c.get('log');
    if (dryRun) {
      const { matched, sample } = await query(() => replayDryRun(sql, target));
      log.info({ matched }, 'delivery replay dry run');
      return c.json({ dry_run: true, matched, sample });
    }
    const ids = await query(() => replayDeliveries(sql, target));
    log.info({ replayed: ids.length, sample: ids.slice(0, 10) }, 'deliveries replayed');
    return c.json({ dry_run: false, replayed: ids.length, ids });
  }

  api.post('/replay', async (c) => {
    const body = await jsonBody(c, '{"ids":["123"]} or {"status":"DEAD","from":"24h"}');
    if ('ids' in body) {
      const { ids, dry_run } = parseBody(replayIds, body, 'ids, dry_run');
      return replay(c, { ids }, dry_run);
    }
    const { dry_run, limit, ...f } = parseBody(replayFilter, body, 'ids, subscription, status, object_id, from, to, limit, dry_run');
    return replay(c, { filter: f, limit }, dry_run);
  });

  api.get('/:id', async (c) => {
    const id = c.req.param('id');
    const parsed = deliveryId.safeParse(id);
    if (!parsed.success) throw new BadRequestError('id: expected a delivery id (a positive whole number)', 'id');
    const found = await query(() => getDelivery(sql, parsed.data));
    if (!found) throw new HttpError(404, `no delivery ${id}`);
    return c.json(found);
  });

  app.route('/deliveries', api);

  // Our users' names for the dead-letter queue.
  app.get('/dlqs', requireAdmin(deps.token), async (c) => {
    const { skip, limit } = parse(dlqQuery, queryParams(c), 'skip, limit');
    return c.json({ dlqs: await query(() => listDead(sql, skip, limit)), skip, limit });
  });
  app.post('/dlqs', requireAdmin(deps.token), async (c) => {
    const { dlqs } = parseBody(dlqBody, await jsonBody(c, '{"dlqs":["123","124"]}'), 'dlqs');
    return replay(c, { ids: dlqs }, false);
  });
}

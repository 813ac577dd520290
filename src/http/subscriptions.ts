// The outbox's subscription API (admin bearer token, like /events): register a receiver, list,
// look one up with its circuit and statistics, change, delete (history kept), rotate its secret,
// recover what failed in a window, and the statistics of one subscription or of the whole service.
// Bad input answers 400 naming the field; a URL that resolves to a non-public address is refused.
// Secrets are shown once (create, rotate); header values never, and neither is ever logged.
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import { filterFields } from '../db/event-filter.ts';
import {
  createSubscription,
  deleteSubscription,
  getSubscription,
  listSubscriptions,
  outboxStats,
  recentTransitions,
  recoverDeliveries,
  rotateSecret,
  updateSubscription,
} from '../db/subscriptions.ts';
import { BadRequestError, HttpError } from '../errors.ts';
import { customHeadersProblem } from '../outbox/send.ts';
import { generateSecret, secretProblem } from '../outbox/sign.ts';
import { validateSubscriptionUrl } from '../outbox/ssrf.ts';
import { parse, query, requireAdmin } from './admin.ts';
import type { AppEnv } from './app.ts';

export type OutboxApiDeps = {
  /** The admin pool. */
  sql: postgres.Sql;
  token: string | undefined;
  config: Config;
};

// Exact types (invoice.updated, checkout.session.created), prefix patterns (invoice.*), or *.
const TYPE = /^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$/;

const fields = {
  url: z.string().max(2048, 'at most 2048 characters'),
  description: z.string().max(1000, 'at most 1000 characters'),
  types: z
    .array(z.string().regex(TYPE, 'expected a message type (invoice.updated), a prefix pattern (invoice.*) or *'))
    .min(1, 'give at least one type, or leave types out for every type')
    .max(100, 'at most 100 types'),
  headers: z
    .record(z.string(), z.string().max(4096, 'a header value has at most 4096 characters'))
    .refine((h) => Object.keys(h).length <= 20, 'at most 20 headers')
    .superRefine((h, ctx) => {
      const problem = customHeadersProblem(h);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    }),
  secret: z.string().superRefine((s, ctx) => {
    const problem = secretProblem(s);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
};
/** The same checks for the console's subscription forms. */
export const subscriptionFields = fields;

const createBody = z.strictObject({
  url: fields.url,
  description: fields.description.optional(),
  types: fields.types.optional(),
  headers: fields.headers.optional(),
  secret: fields.secret.optional(),
});

const patchBody = z
  .strictObject({
    url: fields.url.optional(),
    description: fields.description.nullable().optional(),
    types: fields.types.nullable().optional(),
    headers: fields.headers.optional(),
    enabled: z.boolean().optional(),
  })
  .refine((p) => Object.keys(p).length > 0, 'give at least one of url, description, types, headers, enabled');

const rotateBody = z.strictObject({ secret: fields.secret.optional() });

const recoverBody = z
  .strictObject({ since: filterFields.from.unwrap(), until: filterFields.to })
  .superRefine((w, ctx) => {
    if (w.until && Date.parse(w.since) >= Date.parse(w.until)) ctx.addIssue({ code: 'custom', path: ['until'], message: 'must be later than since' });
  })
  .transform(({ since, until }) => ({ from: since, to: until }));

const ID = /^ep_[0-9a-f]{24}$/;

/** A JSON object body, or a 400 saying what is expected. An empty body is `{}`. */
export async function jsonBody(c: Context<AppEnv>, example: string): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  let body: unknown;
  try {
    body = text.trim() === '' ? {} : JSON.parse(text);
  } catch {
    throw new BadRequestError(`body: expected a JSON object such as ${example}`, 'body');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new BadRequestError(`body: expected a JSON object such as ${example}`, 'body');
  }
  return body as Record<string, unknown>;
}

/**
 * parse(), but an unknown field is named before anything else: `{"ids": [...]}` sent to a route
 * that takes `dlqs` should say so, not that dlqs is missing.
 */
export function parseBody<T extends z.ZodType>(schema: T, body: Record<string, unknown>, known: string): z.infer<T> {
  const names = known.split(', ');
  const unknown = Object.keys(body).filter((k) => !names.includes(k));
  if (unknown.length > 0) throw new BadRequestError(`unknown parameter ${unknown.join(', ')} (known: ${known})`, unknown[0]);
  return parse(schema, body, known);
}

function subscriptionId(c: Context<AppEnv>): string {
  const id = c.req.param('id') ?? '';
  if (!ID.test(id)) throw new BadRequestError('id: expected a subscription id (ep_ and 24 hex digits)', 'id');
  return id;
}

const notFound = (id: string) => new HttpError(404, `no subscription ${id}`);

export function mountSubscriptions(app: Hono<AppEnv>, deps: OutboxApiDeps): void {
  const { sql, config } = deps;
  const api = new Hono<AppEnv>();
  api.use(requireAdmin(deps.token));

  async function checkUrl(url: string): Promise<void> {
    const checked = await validateSubscriptionUrl(url, { allowHttp: config.OUTBOX_ALLOW_HTTP, allowNetworks: config.OUTBOX_ALLOW_NETWORKS });
    if (!checked.ok) throw new BadRequestError(`url: ${checked.error}`, 'url');
  }

  api.post('/', async (c) => {
    const body = parseBody(createBody, await jsonBody(c, '{"url":"https://example.com/hooks"}'), 'url, description, types, headers, secret');
    await checkUrl(body.url);
    const secret = body.secret ?? generateSecret();
    const created = await query(() => createSubscription(sql, { ...body, secret }));
    c.get('log').info({ subscriptionId: created.id, types: created.types, headers: created.header_names }, 'subscription created');
    return c.json({ ...created, secret }, 201);
  });

  api.get('/', async (c) => c.json({ items: await query(() => listSubscriptions(sql)) }));

  api.get('/:id', async (c) => {
    const id = subscriptionId(c);
    const found = await query(() => getSubscription(sql, id));
    if (!found) throw notFound(id);
    const [transitions, stats] = await query(() => Promise.all([recentTransitions(sql, id), outboxStats(sql, id)]));
    return c.json({ ...found, circuit: { ...found.circuit, transitions }, stats });
  });

  api.get('/:id/stats', async (c) => {
    const id = subscriptionId(c);
    if (!(await query(() => getSubscription(sql, id)))) throw notFound(id);
    return c.json(await query(() => outboxStats(sql, id)));
  });

  api.patch('/:id', async (c) => {
    const id = subscriptionId(c);
    const patch = parseBody(patchBody, await jsonBody(c, '{"enabled":true}'), 'url, description, types, headers, enabled');
    if (patch.url !== undefined) await checkUrl(patch.url);
    const updated = await query(() => updateSubscription(sql, id, patch));
    if (!updated) throw notFound(id);
    c.get('log').info({ subscriptionId: id, changed: Object.keys(patch) }, 'subscription changed');
    return c.json(updated);
  });

  api.delete('/:id', async (c) => {
    const id = subscriptionId(c);
    if (!(await query(() => deleteSubscription(sql, id)))) throw notFound(id);
    c.get('log').info({ subscriptionId: id }, 'subscription deleted');
    return c.json({ id, deleted: true });
  });

  api.post('/:id/rotate-secret', async (c) => {
    const id = subscriptionId(c);
    const body = parseBody(rotateBody, await jsonBody(c, '{}'), 'secret');
    const secret = body.secret ?? generateSecret();
    const rotated = await query(() => rotateSecret(sql, id, secret, config.OUTBOX_ROTATION_OVERLAP));
    if (!rotated) throw notFound(id);
    c.get('log').info({ subscriptionId: id, previousUntil: rotated.previous_secret_expires_at }, 'subscription secret rotated');
    return c.json({ id, secret, previous_secret_expires_at: rotated.previous_secret_expires_at });
  });

  api.post('/:id/recover', async (c) => {
    const id = subscriptionId(c);
    const w = parseBody(recoverBody, await jsonBody(c, '{"since":"24h"}'), 'since, until');
    if (!(await query(() => getSubscription(sql, id)))) throw notFound(id);
    const recovered = await query(() => recoverDeliveries(sql, id, w.from, w.to));
    c.get('log').info({ subscriptionId: id, since: w.from, until: w.to, recovered }, 'deliveries recovered');
    return c.json({ id, recovered });
  });

  app.route('/subscriptions', api);

  app.get('/stats', requireAdmin(deps.token), async (c) => c.json(await query(() => outboxStats(sql))));
}

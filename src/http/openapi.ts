// GET /openapi.json: the HTTP API described for tools (OpenAPI 3.1). Written by hand next to the
// routes it describes; test/openapi.test.ts fails when a route is added without its entry here.
import type { Hono } from 'hono';
import { EVENT_STATUSES } from '../db/schema.ts';
import type { AppEnv } from './app.ts';

const error = { $ref: '#/components/schemas/Error' };
const json = (schema: object, description: string) => ({ description, content: { 'application/json': { schema } } });
const errors = {
  400: json(error, 'A bad parameter; `parameter` names it.'),
  401: json(error, 'Missing or wrong bearer token.'),
  404: json(error, 'No such event, or the admin API is off (ADMIN_TOKEN unset).'),
  503: json(error, 'Database unreachable or the query ran past ADMIN_STATEMENT_TIMEOUT_MS.'),
};

const filterProperties = {
  status: {
    description: `One or more of ${EVENT_STATUSES.join(', ')}, comma-separated (an array in a JSON body).`,
    oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string', enum: EVENT_STATUSES } }],
    example: 'FAILED',
  },
  source: { type: 'string', description: 'stripe, stripe-thin (thin events), stripe-api (objects read from Stripe\'s API), or a Standard Webhooks source name.', example: 'stripe' },
  type: { type: 'string', description: 'An exact type, or a prefix pattern ending in `*`.', example: 'invoice.*' },
  from: {
    type: 'string',
    description: 'received_at >= this. ISO-8601 with an offset, a date (midnight UTC), or an age such as 24h, 90m, 7d.',
    example: '2024-05-01T18:00:00Z',
  },
  to: { type: 'string', description: 'received_at < this; same forms as from.', example: '2024-05-02T06:00:00Z' },
};

const filterParameters = Object.entries(filterProperties).map(([name, p]) => ({
  name,
  in: 'query',
  required: false,
  description: p.description,
  schema: { type: 'string' },
  example: p.example,
}));

const eventRef = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'The surrogate id (12345), source:event_id (stripe:evt_1Abc), or a bare Stripe evt_ id.',
  schema: { type: 'string' },
};

const nullable = (type: string, extra: object = {}) => ({ type: [type, 'null'], ...extra });

// ---- The outbox's routes ------------------------------------------------------------------------

const admin = [{ admin: [] }];
const subscriptionId = { name: 'id', in: 'path', required: true, description: 'Subscription id (ep_...).', schema: { type: 'string' } };
const body = (schema: object, example?: object) => ({ required: true, content: { 'application/json': { schema, ...(example ? { example } : {}) } } });
const outboxErrors = { ...errors, 404: json(error, 'No such subscription or delivery, or the admin API is off (ADMIN_TOKEN unset).') };
const windowStats = {
  type: 'object',
  properties: {
    delivered: { type: 'integer' },
    failed_attempts: { type: 'integer' },
    dead: { type: 'integer' },
    superseded: { type: 'integer' },
    success_rate: nullable('number', { description: '2xx among attempts, 0 to 1.' }),
    latency_p50_ms: nullable('number', { description: 'From the commit of the change to the 2xx.' }),
    latency_p99_ms: nullable('number'),
  },
};
const writable = {
  url: { type: 'string', description: 'https URL (http only with OUTBOX_ALLOW_HTTP=true); it must resolve to public addresses unless OUTBOX_ALLOW_NETWORKS allows them.' },
  description: { type: 'string' },
  types: { type: 'array', items: { type: 'string' }, description: 'Message types: invoice.updated, a prefix pattern invoice.*, or *. Absent: every type.' },
  headers: { type: 'object', additionalProperties: { type: 'string' }, description: 'Headers every delivery carries (e.g. the receiver\'s own Authorization). Never returned: only their names are.' },
};
const deliveryFilter = {
  subscription: { type: 'string', description: 'Subscription id.' },
  status: { type: 'string', description: 'PENDING, FAILED, DELIVERED, DEAD or SUPERSEDED; several comma-separated (an array in a body).' },
  object_id: { type: 'string', description: 'The Stripe object (in_1Abc).' },
  from: { type: 'string', description: 'created_at >= this (ISO-8601, a date, or an age such as 24h).' },
  to: { type: 'string', description: 'created_at < this.' },
};

export const OUTBOX_PATHS = {
  '/subscriptions': {
    post: {
      summary: 'Register a receiver of change messages; the answer carries its secret, shown this once.',
      security: admin,
      requestBody: body(
        { type: 'object', additionalProperties: false, required: ['url'], properties: { ...writable, secret: { type: 'string', description: 'A whsec_ secret of your own; generated when absent.' } } },
        { url: 'https://example.com/hooks', types: ['invoice.*', 'subscription.updated'] },
      ),
      responses: { 201: json({ $ref: '#/components/schemas/Subscription' }, 'Registered; `secret` is shown only here.'), ...outboxErrors },
    },
    get: {
      summary: 'Every subscription not deleted, with its circuit.',
      security: admin,
      responses: { 200: json({ type: 'object', properties: { items: { type: 'array', items: { $ref: '#/components/schemas/Subscription' } } } }, 'The subscriptions.'), ...outboxErrors },
    },
  },
  '/subscriptions/{id}': {
    get: {
      summary: 'One subscription with its circuit (state, latest transitions) and statistics.',
      security: admin,
      parameters: [subscriptionId],
      responses: { 200: json({ $ref: '#/components/schemas/Subscription' }, 'The subscription.'), ...outboxErrors },
    },
    patch: {
      summary: 'Change url, description, types, headers or enabled. enabled: true also closes its circuit.',
      security: admin,
      parameters: [subscriptionId],
      requestBody: body({ type: 'object', additionalProperties: false, properties: { ...writable, enabled: { type: 'boolean' } } }, { enabled: true }),
      responses: { 200: json({ $ref: '#/components/schemas/Subscription' }, 'Changed.'), ...outboxErrors },
    },
    delete: {
      summary: 'Stop delivering to it for good; its deliveries and attempts are kept (waiting ones become DEAD).',
      security: admin,
      parameters: [subscriptionId],
      responses: { 200: json({ type: 'object', properties: { id: { type: 'string' }, deleted: { const: true } } }, 'Deleted.'), ...outboxErrors },
    },
  },
  '/subscriptions/{id}/rotate-secret': {
    post: {
      summary: 'A new secret (generated, or given); the old one keeps signing beside it for OUTBOX_ROTATION_OVERLAP.',
      security: admin,
      parameters: [subscriptionId],
      requestBody: body({ type: 'object', additionalProperties: false, properties: { secret: { type: 'string' } } }, {}),
      responses: {
        200: json({ type: 'object', properties: { id: { type: 'string' }, secret: { type: 'string' }, previous_secret_expires_at: { type: 'string', format: 'date-time' } } }, 'The new secret, shown this once.'),
        ...outboxErrors,
      },
    },
  },
  '/subscriptions/{id}/recover': {
    post: {
      summary: 'Send again every delivery of it that failed or died in [since, until) (by its last attempt).',
      security: admin,
      parameters: [subscriptionId],
      requestBody: body({ type: 'object', additionalProperties: false, required: ['since'], properties: { since: { type: 'string' }, until: { type: 'string' } } }, { since: '24h' }),
      responses: { 200: json({ type: 'object', properties: { id: { type: 'string' }, recovered: { type: 'integer' } } }, 'How many were re-queued.'), ...outboxErrors },
    },
  },
  '/subscriptions/{id}/stats': {
    get: {
      summary: 'Statistics of one subscription over the last hour and day.',
      security: admin,
      parameters: [subscriptionId],
      responses: { 200: json({ $ref: '#/components/schemas/OutboxStats' }, 'Statistics.'), ...outboxErrors },
    },
  },
  '/stats': {
    get: {
      summary: 'Statistics of the whole outbox over the last hour and day.',
      security: admin,
      responses: { 200: json({ $ref: '#/components/schemas/OutboxStats' }, 'Statistics.'), ...outboxErrors },
    },
  },
  '/deliveries': {
    get: {
      summary: 'Deliveries newest first, each with its attempts (keyset pages).',
      security: admin,
      parameters: [
        ...Object.entries(deliveryFilter).map(([name, p]) => ({ name, in: 'query', required: false, description: p.description, schema: { type: 'string' } })),
        { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
        { name: 'cursor', in: 'query', required: false, description: 'next_cursor of the previous page.', schema: { type: 'string' } },
      ],
      responses: {
        200: json({ type: 'object', properties: { items: { type: 'array', items: { $ref: '#/components/schemas/Delivery' } }, next_cursor: nullable('string') } }, 'One page.'),
        ...outboxErrors,
      },
    },
  },
  '/deliveries/{id}': {
    get: {
      summary: 'One delivery with its attempts and the message it carries.',
      security: admin,
      parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
      responses: { 200: json({ $ref: '#/components/schemas/Delivery' }, 'The delivery.'), ...outboxErrors },
    },
  },
  '/deliveries/replay': {
    post: {
      summary: 'The dead-letter queue\'s reprocessing: send DEAD (and FAILED) deliveries again, by ids or by filter.',
      description: 'A delivery older than a version the subscriber already has is superseded instead of sent: versions never go backwards.',
      security: admin,
      requestBody: body(
        {
          oneOf: [
            { type: 'object', additionalProperties: false, required: ['ids'], properties: { ids: { type: 'array', items: { type: 'string' } }, dry_run: { type: 'boolean' } } },
            { type: 'object', additionalProperties: false, properties: { ...deliveryFilter, limit: { type: 'integer' }, dry_run: { type: 'boolean' } } },
          ],
        },
        { status: 'DEAD', from: '24h', dry_run: true },
      ),
      responses: {
        200: json({ type: 'object', properties: { dry_run: { type: 'boolean' }, matched: { type: 'integer' }, replayed: { type: 'integer' }, ids: { type: 'array', items: { type: 'string' } } } }, 'What was re-queued.'),
        ...outboxErrors,
      },
    },
  },
  '/dlqs': {
    get: {
      summary: 'The dead-letter queue, newest first, by offset (an alias in the shape of our users\' API).',
      security: admin,
      parameters: [
        { name: 'skip', in: 'query', required: false, schema: { type: 'integer', minimum: 0, default: 0 } },
        { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
      ],
      responses: { 200: json({ type: 'object', properties: { dlqs: { type: 'array', items: { $ref: '#/components/schemas/Delivery' } } } }, 'DEAD deliveries.'), ...outboxErrors },
    },
    post: {
      summary: 'Send these dead deliveries again (an alias of POST /deliveries/replay {"ids": [...]}).',
      security: admin,
      requestBody: body({ type: 'object', additionalProperties: false, required: ['dlqs'], properties: { dlqs: { type: 'array', items: { type: 'string' } } } }, { dlqs: ['123', '124'] }),
      responses: { 200: json({ type: 'object', properties: { replayed: { type: 'integer' }, ids: { type: 'array', items: { type: 'string' } } } }, 'Re-queued.'), ...outboxErrors },
    },
  },
};

const OUTBOX_SCHEMAS = {
  Subscription: {
    type: 'object',
    properties: {
      id: { type: 'string' },
      url: { type: 'string' },
      description: nullable('string'),
      types: nullable('array', { items: { type: 'string' } }),
      header_names: { type: 'array', items: { type: 'string' } },
      enabled: { type: 'boolean' },
      disabled_reason: nullable('string', { description: 'by_request, gone (410), failing_too_long, deleted.' }),
      circuit: {
        type: 'object',
        properties: {
          state: { type: 'string', enum: ['closed', 'open', 'half_open', 'disabled'] },
          consecutive_failures: { type: 'integer' },
          failing_since: nullable('string', { format: 'date-time' }),
          next_probe_at: nullable('string', { format: 'date-time' }),
          transitions: { type: 'array', items: { type: 'object', properties: { at: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' }, reason: { type: 'string' } } } },
        },
      },
      stats: { $ref: '#/components/schemas/OutboxStats' },
      secret: { type: 'string', description: 'Only when created.' },
    },
  },
  OutboxStats: {
    type: 'object',
    properties: { pending: { type: 'integer' }, oldest_pending_age_s: nullable('number'), last_hour: windowStats, last_day: windowStats },
  },
  Delivery: {
    type: 'object',
    properties: {
      id: { type: 'string' },
      message_id: { type: 'string', description: 'The webhook-id.' },
      subscription_id: { type: 'string' },
      type: { type: 'string' },
      object: { type: 'string' },
      object_id: { type: 'string' },
      version: { type: 'integer' },
      previous_version: nullable('integer'),
      status: { type: 'string', enum: ['PENDING', 'FAILED', 'DELIVERED', 'DEAD', 'SUPERSEDED'] },
      attempt_count: { type: 'integer' },
      attempts: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            attempt: { type: 'integer' },
            attempted_at: { type: 'string', format: 'date-time' },
            duration_ms: { type: 'integer' },
            status_code: nullable('integer'),
            outcome: { type: 'string' },
            error: nullable('string'),
            response_body: nullable('string', { description: 'The first 1 KB of the answer.' }),
          },
        },
      },
    },
  },
};

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'webhook-inbox',
    version: '1',
    description:
      'Receives webhooks, stores each before answering 200, folds Stripe events into relational tables. The /events routes are the admin API: send `Authorization: Bearer <ADMIN_TOKEN>`.',
  },
  components: {
    securitySchemes: { admin: { type: 'http', scheme: 'bearer', description: 'ADMIN_TOKEN' } },
    schemas: {
      ...OUTBOX_SCHEMAS,
      Error: {
        type: 'object',
        required: ['error'],
        properties: { error: { type: 'string' }, parameter: { type: 'string' } },
      },
      EventItem: {
        type: 'object',
        properties: {
          id: { type: 'string', description: 'Surrogate id (a bigint, as a string).' },
          source: { type: 'string' },
          event_id: { type: 'string' },
          type: { type: 'string' },
          status: { type: 'string', enum: EVENT_STATUSES },
          attempts: { type: 'integer' },
          received_at: { type: 'string', format: 'date-time' },
          processed_at: nullable('string', { format: 'date-time' }),
          last_error: nullable('string'),
        },
      },
      EventDetail: {
        allOf: [
          { $ref: '#/components/schemas/EventItem' },
          {
            type: 'object',
            properties: {
              api_version: nullable('string'),
              account: nullable('string'),
              livemode: nullable('boolean'),
              created: nullable('string', { format: 'date-time' }),
              next_attempt_at: { type: 'string', format: 'date-time' },
              locked_until: nullable('string', { format: 'date-time' }),
              locked_by: nullable('string'),
              object_id: nullable('string', { description: 'data.object.id: the object the event is about.' }),
              object_customer: nullable('string', { description: 'data.object.customer, when the object names one.' }),
              payload: { type: 'object', description: 'The event body as received.' },
              result: { description: 'What folding did: objects written, links parked and resolved; or {"ignored": reason}.' },
              parked: {
                type: 'array',
                description: 'Links this event parked that still wait for their parent (rows of pending_links).',
                items: {
                  type: 'object',
                  properties: {
                    child_table: { type: 'string' },
                    child_id: { type: 'string' },
                    link_column: { type: 'string' },
                    parent_table: { type: 'string' },
                    parent_id: { type: 'string' },
                    since: { type: 'string', format: 'date-time' },
                  },
                },
              },
            },
          },
        ],
      },
    },
  },
  paths: {
    '/webhooks/{source}': {
      post: {
        summary: 'Receive one webhook delivery (signed).',
        parameters: [{ name: 'source', in: 'path', required: true, schema: { type: 'string' }, example: 'stripe' }],
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object' } } } },
        responses: {
          200: json({ type: 'object', properties: { status: { const: 'success' } } }, 'Stored, or a duplicate of a stored event.'),
          400: json(error, 'Bad signature or not an event.'),
          404: json(error, 'Unknown source.'),
          413: json(error, 'Body over WEBHOOK_MAX_BODY_BYTES.'),
          503: json(error, 'Database unavailable or the source secret is unset: retry later.'),
        },
      },
    },
    '/events': {
      get: {
        summary: 'List events, newest first, with keyset pagination.',
        security: [{ admin: [] }],
        parameters: [
          ...filterParameters,
          { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
          { name: 'cursor', in: 'query', required: false, description: 'next_cursor of the previous page.', schema: { type: 'string' } },
        ],
        responses: {
          200: json(
            {
              type: 'object',
              properties: {
                items: { type: 'array', items: { $ref: '#/components/schemas/EventItem' } },
                next_cursor: nullable('string', { description: 'Pass as cursor for the next page; null on the last page.' }),
              },
            },
            'One page of events.',
          ),
          ...errors,
        },
      },
    },
    '/events/{id}': {
      get: {
        summary: 'One event with its payload, fold result and the links it parked.',
        security: [{ admin: [] }],
        parameters: [eventRef],
        responses: { 200: json({ $ref: '#/components/schemas/EventDetail' }, 'The event.'), ...errors },
      },
    },
    '/events/{id}/replay': {
      post: {
        summary: 'Put one event back to be folded again.',
        security: [{ admin: [] }],
        parameters: [eventRef],
        responses: {
          200: json({ type: 'object', properties: { id: { type: 'string' }, replayed: { const: 1 } } }, 'Re-queued.'),
          409: json(error, 'A worker is folding it right now; try again after its lease.'),
          ...errors,
        },
      },
    },
    '/events/replay': {
      post: {
        summary: 'Put every matching event back to be folded again (oldest first, in batches).',
        description:
          'At least one filter is required. Events a worker holds right now are skipped. Safe to repeat: folding an event again changes nothing that a newer event wrote.',
        security: [{ admin: [] }],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  ...filterProperties,
                  limit: { type: 'integer', minimum: 1, description: 'Replay at most this many (the oldest).' },
                  dry_run: { type: 'boolean', default: false, description: 'Count and sample, change nothing.' },
                },
              },
              example: { status: 'FAILED', from: '24h', dry_run: true },
            },
          },
        },
        responses: {
          200: json(
            {
              type: 'object',
              properties: {
                dry_run: { type: 'boolean' },
                matched: { type: 'integer', description: 'Events that matched (and were not leased).' },
                replayed: { type: 'integer', description: 'Events re-queued (absent on a dry run).' },
                sample: { type: 'array', items: { $ref: '#/components/schemas/EventItem' }, description: 'Dry run only: the first ones.' },
              },
            },
            'How many.',
          ),
          ...errors,
        },
      },
    },
    ...OUTBOX_PATHS,
    '/healthz': { get: { summary: 'The process is alive.', responses: { 200: json({ type: 'object' }, 'ok') } } },
    '/readyz': {
      get: {
        summary: 'The database is reachable, migrations are applied, and the process is not shutting down.',
        responses: { 200: json({ type: 'object' }, 'ready'), 503: json({ type: 'object' }, 'not ready, with a reason') },
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics.',
        responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    },
    '/openapi.json': {
      get: { summary: 'This document.', responses: { 200: json({ type: 'object' }, 'OpenAPI 3.1') } },
    },
  },
} as const;

export function mountOpenApi(app: Hono<AppEnv>): void {
  app.get('/openapi.json', (c) => c.json(OPENAPI));
}

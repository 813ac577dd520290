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
  source: { type: 'string', description: 'stripe, or a Standard Webhooks source name.', example: 'stripe' },
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

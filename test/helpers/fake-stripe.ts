// A fake Stripe API as a real local HTTP server, for tests that talk to it through the real `stripe`
// package: objects and events the test puts in, served by id and in lists the way Stripe pages them,
// per Connect account, with faults switched on at run time and every request recorded.
// It knows Stripe's collection paths; src/ must not (the catalogue of types owns that).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import apiObjects from '../../scripts/lib/fixtures/stripe-api-objects.json' with { type: 'json' };
import objects from '../../scripts/lib/fixtures/stripe-objects.json' with { type: 'json' };

export type StripeObject = { id: string; object: string; created?: number; [field: string]: unknown };
/** A v2 event: `created` is an ISO timestamp there, and `context` names the account. */
export type ThinEvent = { id: string; object: string; created?: string; context?: string; [field: string]: unknown };

export type RecordedRequest = {
  /** Date.now() when the request arrived. */
  at: number;
  method: string;
  path: string;
  query: URLSearchParams;
  /** The Stripe-Account header, or the last segment of Stripe-Context (thin events send that). */
  account: string | undefined;
  key: string | undefined;
  /** The status answered; undefined while a slow answer is pending. */
  status: number | undefined;
  /** The fault that answered or slowed it. */
  fault: FaultKind | undefined;
  /** The client hung up before the answer (a timeout on its side). */
  aborted: boolean;
};

export type FaultKind = 'rate_limit' | 'server_error' | 'slow' | 'not_found';

export type FaultRule = {
  kind: FaultKind;
  /** Which requests: a RegExp tested on the path, or a path prefix ('/v1/customers'); all when unset. */
  path?: RegExp | string;
  /** Only the next `times` matching requests. With neither `times` nor `ratio`: until cleared. */
  times?: number;
  /** This share of matching requests, deterministically (0.25: the 4th, 8th, ...). */
  ratio?: number;
  /** rate_limit: the Retry-After header in seconds; no header when null. Default 1. */
  retryAfter?: number | null;
  /** The Stripe-Should-Retry header ('true'/'false'); no header when unset, as on most Stripe answers. */
  shouldRetry?: boolean;
  /** slow: how long to wait before answering normally (or with the next matching fault). */
  delayMs?: number;
};

export type Fault = { readonly hits: number; clear: () => void };

export type FakeStripe = {
  url: string;
  port: number;
  /** Put or replace an object, in the platform account or a connected one. */
  put: (object: StripeObject, options?: { account?: string }) => void;
  /** Retrieve answers `{ id, object, deleted: true }` from now on; lists leave it out. */
  markDeleted: (type: string, id: string, options?: { account?: string }) => void;
  /** Gone: retrieve answers 404 resource_missing. */
  remove: (type: string, id: string, options?: { account?: string }) => void;
  /** A v1 event for GET /v1/events; its account is `options.account`, else `event.account`. */
  addEvent: (event: StripeObject, options?: { account?: string }) => void;
  /** A v2 event (object 'v2.core.event') for GET /v2/core/events/:id; account from `context`. */
  addThinEvent: (event: ThinEvent, options?: { account?: string }) => void;
  fault: (rule: FaultRule) => Fault;
  clearFaults: () => void;
  /** Every request in arrival order. */
  requests: RecordedRequest[];
  /** A `stripe` client pointed at the fake; no retries unless asked for. */
  client: (config?: Stripe.StripeConfig & { key?: string }) => Stripe;
  close: () => Promise<void>;
};

export const TEST_KEY = 'sk_test_fake_0123456789abcdef';

/** The collection path under /v1 of each object type the fake serves. */
export const COLLECTIONS: Record<string, string> = {
  customers: 'customer',
  products: 'product',
  prices: 'price',
  plans: 'plan',
  payment_methods: 'payment_method',
  subscriptions: 'subscription',
  subscription_items: 'subscription_item',
  invoices: 'invoice',
  invoice_payments: 'invoice_payment',
  invoiceitems: 'invoiceitem',
  payment_intents: 'payment_intent',
  setup_intents: 'setup_intent',
  charges: 'charge',
  refunds: 'refund',
  disputes: 'dispute',
  'checkout/sessions': 'checkout.session',
  credit_notes: 'credit_note',
  subscription_schedules: 'subscription_schedule',
  coupons: 'coupon',
  promotion_codes: 'promotion_code',
  tax_rates: 'tax_rate',
  tax_ids: 'tax_id',
  quotes: 'quote',
  payouts: 'payout',
  'radar/early_fraud_warnings': 'radar.early_fraud_warning',
  accounts: 'account',
  transfers: 'transfer',
  events: 'event',
};

const FIXTURES: Record<string, unknown> = { ...objects, ...apiObjects };

/** A deep copy of Stripe's published example of `type` (test/fixtures), with `fields` set on top. */
export function fixtureObject(type: string, fields: Partial<StripeObject> & { id: string }): StripeObject {
  const fixture = FIXTURES[type];
  if (!fixture) throw new Error(`no fixture for '${type}': add it to scripts/lib/fixtures/stripe-api-objects.json`);
  return { ...structuredClone(fixture as StripeObject), ...fields };
}

/** The error a call ended with, to assert on its fields; a call that succeeds fails the test. */
export async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to fail, it succeeded');
}

/** The most requests whose arrival times fall within any `windowMs` span (a sliding window). */
export function busiestWindow(requests: { at: number }[], windowMs = 1000): number {
  const times = requests.map((r) => r.at).sort((a, b) => a - b);
  let most = 0;
  for (let first = 0, last = 0; last < times.length; last++) {
    while (times[last]! - times[first]! >= windowMs) first++;
    most = Math.max(most, last - first + 1);
  }
  return most;
}

// Parameters the list endpoints accept besides paging, each an equality filter on a top-level
// field (an expanded field compares by its id). Anything else is answered 400, like Stripe does.
const EQUALITY_FILTERS = new Set(['customer', 'subscription', 'status', 'product', 'price', 'payment_intent', 'charge', 'invoice', 'active']);
const MAX_EVENT_TYPES = 20;

type Stored = { object: StripeObject; seq: number; deleted: boolean };
type Scope = { objects: Map<string, Stored>; thinEvents: Map<string, ThinEvent> };
type Answer = { status: number; body: unknown; headers?: Record<string, string> };
type ActiveFault = FaultRule & { hits: number; credit: number; cleared: boolean };

class StripeFailure extends Error {
  readonly answer: Answer;
  constructor(status: number, error: Record<string, unknown>) {
    super(String(error.message));
    this.answer = { status, body: { error } };
  }
}

const invalid = (message: string, param?: string) => new StripeFailure(400, { type: 'invalid_request_error', message, ...(param ? { param } : {}) });
const missing = (type: string, id: string, param = 'id') =>
  new StripeFailure(404, { type: 'invalid_request_error', code: 'resource_missing', message: `No such ${type}: '${id}'`, param });

export async function startFakeStripe(options: { keys?: string[] } = {}): Promise<FakeStripe> {
  const scopes = new Map<string, Scope>();
  const faults: ActiveFault[] = [];
  const requests: RecordedRequest[] = [];
  const pending = new Set<NodeJS.Timeout>();
  let seq = 0;
  let requestCount = 0;

  const scope = (account: string | undefined): Scope => {
    const name = account ?? '';
    let s = scopes.get(name);
    if (!s) scopes.set(name, (s = { objects: new Map(), thinEvents: new Map() }));
    return s;
  };
  const keyOf = (type: string, id: string) => `${type}\u0000${id}`;

  const put = (object: StripeObject, opts: { account?: string } = {}) => {
    if (typeof object.id !== 'string' || typeof object.object !== 'string') throw new Error('an object needs a string id and object');
    const objectsOf = scope(opts.account).objects;
    const key = keyOf(object.object, object.id);
    const before = objectsOf.get(key);
    // An update keeps the object's place in lists, as on Stripe (lists order by creation).
    objectsOf.set(key, { object: structuredClone(object), seq: before?.seq ?? ++seq, deleted: false });
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const account = header(req, 'stripe-account') ?? header(req, 'stripe-context')?.split('/').pop();
    const auth = header(req, 'authorization');
    const record: RecordedRequest = {
      at: Date.now(),
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      account: account || undefined,
      key: auth?.startsWith('Bearer ') ? auth.slice(7) : undefined,
      status: undefined,
      fault: undefined,
      aborted: false,
    };
    requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
    });
    const requestId = `req_fake${++requestCount}`;
    const send = (answer: Answer) => {
      record.status = answer.status;
      if (res.destroyed) return;
      res.writeHead(answer.status, {
        'content-type': 'application/json',
        'request-id': requestId,
        ...(req.headers['stripe-version'] ? { 'stripe-version': String(req.headers['stripe-version']) } : {}),
        ...answer.headers,
      });
      res.end(JSON.stringify(answer.body));
    };
    req.resume();
    req.on('end', () => {
      const authProblem = checkKey(record.key, options.keys);
      if (authProblem) return send(authProblem);
      const { delayMs, failure } = pickFault(faults, record);
      const answer = () => {
        if (failure) return send(failure);
        try {
          send({ status: 200, body: route(record, scope(record.account)) });
        } catch (error) {
          if (error instanceof StripeFailure) return send(error.answer);
          send({ status: 500, body: { error: { type: 'api_error', message: `fake Stripe bug: ${String(error)}` } } });
        }
      };
      if (delayMs <= 0) return answer();
      const timer = setTimeout(() => {
        pending.delete(timer);
        answer();
      }, delayMs);
      pending.add(timer);
    });
  });
  // The stripe package keeps connections alive; a test's end must not wait for them.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    port,
    put,
    markDeleted: (type, id, opts = {}) => {
      const stored = scope(opts.account).objects.get(keyOf(type, id));
      if (!stored) throw new Error(`markDeleted: no ${type} ${id} in ${opts.account ?? 'the platform'}`);
      stored.deleted = true;
    },
    remove: (type, id, opts = {}) => {
      scope(opts.account).objects.delete(keyOf(type, id));
    },
    addEvent: (event, opts = {}) => {
      if (event.object !== 'event') throw new Error(`addEvent takes v1 events (object 'event'), got '${event.object}'`);
      put(event, { account: opts.account ?? (typeof event.account === 'string' ? event.account : undefined) });
    },
    addThinEvent: (event, opts = {}) => {
      if (event.object !== 'v2.core.event') throw new Error(`addThinEvent takes v2 events (object 'v2.core.event'), got '${event.object}'`);
      const account = opts.account ?? (typeof event.context === 'string' ? event.context.split('/').pop() : undefined);
      scope(account).thinEvents.set(event.id, structuredClone(event));
    },
    fault: (rule) => {
      const active: ActiveFault = { ...rule, hits: 0, credit: 0, cleared: false };
      faults.push(active);
      return {
        get hits() {
          return active.hits;
        },
        clear: () => {
          active.cleared = true;
        },
      };
    },
    clearFaults: () => {
      for (const f of faults) f.cleared = true;
    },
    requests,
    client: ({ key = TEST_KEY, ...config } = {}) =>
      new Stripe(key, { host: '127.0.0.1', port, protocol: 'http', maxNetworkRetries: 0, telemetry: false, ...config }),
    close: async () => {
      for (const timer of pending) clearTimeout(timer);
      pending.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value || undefined;
}

// Stripe answers 401 with an invalid_request_error. A live key never belongs in a test: refused too.
function checkKey(key: string | undefined, accepted: string[] | undefined): Answer | undefined {
  const fail = (message: string): Answer => ({ status: 401, body: { error: { type: 'invalid_request_error', message } } });
  if (!key) {
    return fail("You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').");
  }
  const masked = `${key.slice(0, 8)}${'*'.repeat(4)}${key.slice(-4)}`;
  if (!/^(sk|rk)_test_\w+$/.test(key)) return fail(`Invalid API Key provided: ${masked} (the fake Stripe takes sk_test_ and rk_test_ keys only)`);
  if (accepted && !accepted.includes(key)) return fail(`Invalid API Key provided: ${masked}`);
  return undefined;
}

function pickFault(faults: ActiveFault[], record: RecordedRequest): { delayMs: number; failure: Answer | undefined } {
  let delayMs = 0;
  for (const f of faults) {
    if (f.cleared || !matches(f.path, record.path)) continue;
    if (f.times !== undefined && f.hits >= f.times) continue;
    if (f.ratio !== undefined) {
      f.credit += f.ratio;
      if (f.credit < 1) continue;
      f.credit -= 1;
    }
    f.hits++;
    record.fault = f.kind;
    if (f.kind === 'slow') {
      delayMs += f.delayMs ?? 1000;
      continue;
    }
    return { delayMs, failure: faultAnswer(f, record.path) };
  }
  return { delayMs, failure: undefined };
}

function matches(pattern: RegExp | string | undefined, path: string): boolean {
  if (pattern === undefined) return true;
  return typeof pattern === 'string' ? path.startsWith(pattern) : pattern.test(path);
}

function faultAnswer(f: ActiveFault, path: string): Answer {
  const headers: Record<string, string> = {};
  if (f.shouldRetry !== undefined) headers['stripe-should-retry'] = String(f.shouldRetry);
  switch (f.kind) {
    case 'rate_limit': {
      const retryAfter = f.retryAfter === undefined ? 1 : f.retryAfter;
      if (retryAfter !== null) headers['retry-after'] = String(retryAfter);
      return {
        status: 429,
        headers,
        body: { error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.' } },
      };
    }
    case 'server_error':
      return { status: 500, headers, body: { error: { type: 'api_error', message: "Sorry, something went wrong. We've already been notified of the problem." } } };
    case 'not_found': {
      const [, collection = '', id = ''] = /^\/v1\/(.+)\/([^/]+)$/.exec(path) ?? [];
      return { ...missing(COLLECTIONS[collection] ?? 'object', decodeURIComponent(id || path)).answer, headers };
    }
    case 'slow':
      throw new Error('unreachable');
  }
}

// ---------------------------------------------------------------------------------------------
// Routes

function route(record: RecordedRequest, s: Scope): unknown {
  const { method, path, query } = record;
  const thin = /^\/v2\/core\/events\/([^/]+)$/.exec(path);
  if (method === 'GET' && thin) {
    const id = decodeURIComponent(thin[1]!);
    const event = s.thinEvents.get(id);
    if (!event) throw missing('v2.core.event', id);
    return event;
  }
  const v1 = /^\/v1\/(.+)$/.exec(path);
  if (method === 'GET' && v1) {
    const rest = v1[1]!;
    if (COLLECTIONS[rest]) return list(rest, COLLECTIONS[rest], parseQuery(query), s);
    const slash = rest.lastIndexOf('/');
    const type = COLLECTIONS[rest.slice(0, slash)];
    if (slash > 0 && type) return retrieve(type, decodeURIComponent(rest.slice(slash + 1)), s);
  }
  throw new StripeFailure(404, {
    type: 'invalid_request_error',
    message: `Unrecognized request URL (${method}: ${path}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
  });
}

function retrieve(type: string, id: string, s: Scope): unknown {
  const stored = s.objects.get(`${type}\u0000${id}`);
  if (!stored) throw missing(type, id);
  if (stored.deleted) return { id, object: type, deleted: true };
  return stored.object;
}

type Query = Map<string, string | string[] | Record<string, string>>;

// Stripe's form encoding: a[b]=1 is a hash, a[]=1 and a[0]=1 are arrays.
function parseQuery(params: URLSearchParams): Query {
  const parsed: Query = new Map();
  for (const [key, value] of params) {
    const m = /^([^[\]]+)\[([^[\]]*)\]$/.exec(key);
    if (!m) {
      parsed.set(key, value);
      continue;
    }
    const [, name, sub] = m as unknown as [string, string, string];
    if (sub === '' || /^\d+$/.test(sub)) {
      const before = parsed.get(name);
      parsed.set(name, [...(Array.isArray(before) ? before : []), value]);
    } else {
      const before = parsed.get(name);
      parsed.set(name, { ...(before && typeof before === 'object' && !Array.isArray(before) ? before : {}), [sub]: value });
    }
  }
  return parsed;
}

function integer(value: unknown, param: string): number {
  if (typeof value !== 'string' || !/^-?\d+$/.test(value)) throw invalid(`Invalid integer: ${String(value)}`, param);
  return Number(value);
}

function list(collection: string, type: string, query: Query, s: Scope): unknown {
  const isEvents = type === 'event';
  for (const name of query.keys()) {
    const known = ['limit', 'starting_after', 'ending_before', 'created', 'expand'].includes(name)
      || (isEvents ? ['type', 'types', 'delivery_success'].includes(name) : EQUALITY_FILTERS.has(name) || name === 'type');
    if (!known) throw invalid(`Received unknown parameter: ${name}`, name);
  }
  const limit = query.has('limit') ? integer(query.get('limit'), 'limit') : 10;
  if (limit < 1) throw invalid('This value must be greater than or equal to 1.', 'limit');
  if (limit > 100) throw invalid('This value must be less than or equal to 100.', 'limit');
  const startingAfter = query.get('starting_after');
  const endingBefore = query.get('ending_before');
  if (startingAfter !== undefined && endingBefore !== undefined) {
    throw invalid('You may only specify one of these parameters: ending_before, starting_after.', 'ending_before');
  }

  // Newest first; objects created in the same second keep the order they were put in.
  const all = [...s.objects.values()]
    .filter((o) => o.object.object === type && !o.deleted)
    .sort((a, b) => (b.object.created ?? 0) - (a.object.created ?? 0) || b.seq - a.seq);
  let rows = all.filter(createdFilter(query.get('created')));
  if (isEvents) rows = rows.filter(eventTypeFilter(query.get('type'), query.get('types')));
  for (const [name, value] of query) {
    if (!EQUALITY_FILTERS.has(name) && !(name === 'type' && !isEvents)) continue;
    // status=all asks for every status (Stripe lists subscriptions without canceled ones otherwise).
    if (name === 'status' && value === 'all') continue;
    rows = rows.filter((o) => {
      const field = o.object[name];
      const id = field && typeof field === 'object' ? (field as { id?: unknown }).id : field;
      return String(id) === value;
    });
  }

  const cursorOf = (id: unknown, param: string) => {
    const cursor = all.find((o) => o.object.id === id) ?? s.objects.get(`${type}\u0000${String(id)}`);
    if (!cursor) throw missing(type, String(id), param);
    return cursor;
  };
  const newer = (a: Stored, b: Stored) => (a.object.created ?? 0) - (b.object.created ?? 0) || a.seq - b.seq;
  let page: Stored[];
  let hasMore: boolean;
  if (endingBefore !== undefined) {
    const cursor = cursorOf(endingBefore, 'ending_before');
    const before = rows.filter((o) => newer(o, cursor) > 0);
    page = before.slice(Math.max(0, before.length - limit));
    hasMore = before.length > limit;
  } else {
    const after = startingAfter === undefined ? rows : rows.filter((o) => newer(o, cursorOf(startingAfter, 'starting_after')) < 0);
    page = after.slice(0, limit);
    hasMore = after.length > limit;
  }
  return { object: 'list', data: page.map((o) => o.object), has_more: hasMore, url: `/v1/${collection}` };
}

function createdFilter(created: string | string[] | Record<string, string> | undefined): (o: Stored) => boolean {
  if (created === undefined) return () => true;
  if (typeof created === 'string') {
    const exact = integer(created, 'created');
    return (o) => o.object.created === exact;
  }
  if (Array.isArray(created)) throw invalid('Invalid timestamp or hash', 'created');
  const bounds: [string, (a: number, b: number) => boolean][] = [
    ['gt', (a, b) => a > b],
    ['gte', (a, b) => a >= b],
    ['lt', (a, b) => a < b],
    ['lte', (a, b) => a <= b],
  ];
  for (const op of Object.keys(created)) {
    if (!bounds.some(([name]) => name === op)) throw invalid(`Received unknown parameter: created[${op}]`, `created[${op}]`);
  }
  const checks = bounds
    .filter(([op]) => created[op] !== undefined)
    .map(([op, cmp]) => {
      const bound = integer(created[op], `created[${op}]`);
      return (o: Stored) => cmp(o.object.created ?? 0, bound);
    });
  return (o) => checks.every((check) => check(o));
}

// `type` takes one type with * as a wildcard ('customer.*'); `types` up to 20 exact types; not both.
function eventTypeFilter(type: unknown, types: unknown): (o: Stored) => boolean {
  if (type !== undefined && types !== undefined) throw invalid('You may only specify one of these parameters: type, types.', 'types');
  if (typeof type === 'string') {
    const pattern = new RegExp(`^${type.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
    return (o) => pattern.test(String(o.object.type));
  }
  if (types !== undefined) {
    if (!Array.isArray(types)) throw invalid('Invalid array', 'types');
    if (types.length > MAX_EVENT_TYPES) throw invalid(`You may pass at most ${MAX_EVENT_TYPES} types.`, 'types');
    return (o) => types.includes(String(o.object.type));
  }
  return () => true;
}

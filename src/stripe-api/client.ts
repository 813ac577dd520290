// The client for Stripe's API: one object by collection path and id, a collection or the events
// list page by page, for the platform or a connected account, all inside one rate limit. Read-only,
// and it knows no object types: callers pass the path ('customers', 'checkout/sessions').
import Stripe from 'stripe';
import type { Logger } from '../log.ts';
import { createRateLimiter, type RateLimiter } from './rate-limit.ts';

export type StripeApiOptions = {
  apiKey: string;
  /** Where Stripe's API is; a local fake in tests. No path: the package adds /v1 itself. */
  apiBase?: string;
  /** Requests per second for the whole client; Stripe allows 25 reads/s in test mode, 100 live. */
  rps?: number;
  /** Retries of a failed request (5xx, 409, timeout, connection, 429) before the caller sees the error. */
  maxNetworkRetries?: number;
  /** Per attempt; waiting for the rate limiter does not count. */
  timeoutMs?: number;
  log: Logger;
  /** Share one limiter between clients that use the same account's quota. */
  limiter?: RateLimiter;
  /** Stripe-Version of the answers; the `stripe` package's own version when unset. */
  apiVersion?: string;
};

export type StripeObject = { id: string; object: string; [field: string]: unknown };

export type Retrieved =
  /** `deleted`: Stripe answered `{ id, object, deleted: true }` (a deleted customer, say). */
  | { found: true; object: StripeObject; deleted: boolean; fetchedAt: Date }
  /** Stripe said resource_missing: it does not exist, or not in this account. */
  | { found: false; reason: string; fetchedAt: Date };

export type Page = { data: StripeObject[]; hasMore: boolean; fetchedAt: Date };

export type RequestOptions = {
  /** A connected account (acct_...): sent as Stripe-Account. */
  account?: string;
  /** A thin event's `context`: sent as Stripe-Context instead, as the stripe package does. Not with `account`. */
  context?: string;
};

/** List parameters: scalars, a hash like created[gte], or an array like types[]. */
export type ListParams = Record<string, string | number | boolean | string[] | Record<string, string | number> | undefined>;

export type StripeApi = {
  retrieve: (path: string, id: string, options?: RequestOptions) => Promise<Retrieved>;
  /** Every page of a collection, newest first, following starting_after until has_more is false. */
  list: (path: string, params?: ListParams, options?: RequestOptions) => AsyncGenerator<Page>;
  /**
   * Events created from `since` to `until`, both included. Stripe's `created` is whole seconds, so
   * the window widens to the whole seconds it touches: an event at its edge is never missed, at the
   * price of a few from the same seconds outside it (the inbox stores an event id once). Newest
   * first, as Stripe lists them; Stripe keeps events for 30 days.
   */
  listEvents: (options: { since: Date; until?: Date; types?: string[]; account?: string }) => AsyncGenerator<Page>;
  limiter: RateLimiter;
  /** The Stripe-Version every answer is rendered in. */
  apiVersion: string;
};

export type StripeApiErrorKind = 'rate_limited' | 'server' | 'timeout' | 'connection' | 'auth' | 'invalid_request';

/** A Stripe API call failed after the retries; `retryable` says whether trying later can help. */
export class StripeApiError extends Error {
  readonly kind: StripeApiErrorKind;
  readonly retryable: boolean;
  /** From a 429's Retry-After header, when there was one. */
  readonly retryAfterSeconds: number | undefined;
  readonly status: number | undefined;
  readonly requestId: string | undefined;
  readonly path: string;
  readonly account: string | undefined;
  constructor(
    message: string,
    fields: { kind: StripeApiErrorKind; retryable: boolean; retryAfterSeconds?: number; status?: number; requestId?: string; path: string; account?: string },
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.kind = fields.kind;
    this.retryable = fields.retryable;
    this.retryAfterSeconds = fields.retryAfterSeconds;
    this.status = fields.status;
    this.requestId = fields.requestId;
    this.path = fields.path;
    this.account = fields.account;
  }
}

const DEFAULT_API_BASE = 'https://api.stripe.com';
const DEFAULT_RPS = 20;
const DEFAULT_RETRIES = 2;
const DEFAULT_TIMEOUT_MS = 20_000;
const PAGE_SIZE = 100;
const MAX_EVENT_TYPES = 20;
// Stripe's limiter counts per second, so a 429 that names no wait is worth one second's pause.
const DEFAULT_RATE_LIMIT_PAUSE_S = 1;
// 'customers', 'checkout/sessions', 'radar/early_fraud_warnings': lower-case words, no /v1, no query.
const COLLECTION_PATH = /^[a-z0-9_]+(\/[a-z0-9_]+)*$/;

export function createStripeApi(options: StripeApiOptions): StripeApi {
  const { apiKey, log, maxNetworkRetries = DEFAULT_RETRIES, timeoutMs = DEFAULT_TIMEOUT_MS } = options;
  if (typeof apiKey !== 'string' || !/^(sk|rk)_/.test(apiKey)) throw new TypeError('the Stripe API needs a secret (sk_...) or restricted (rk_...) key');
  const limiter = options.limiter ?? createRateLimiter({ rps: options.rps ?? DEFAULT_RPS });
  const base = parseApiBase(options.apiBase ?? DEFAULT_API_BASE);

  // Every attempt goes through here, the package's own retries included, so each one waits for a
  // token, and a 429 pauses the bucket for everyone: the package would retry it (when Stripe says
  // Stripe-Should-Retry: true) after its own 0.5 s backoff, since it ignores Retry-After.
  const inner = Stripe.createNodeHttpClient();
  const httpClient: Stripe.HttpClient = {
    getClientName: () => inner.getClientName(),
    makeRequest: async (...args) => {
      await limiter.take();
      const response = await inner.makeRequest(...args);
      if (response.getStatusCode() === 429) {
        const retryAfterSeconds = retryAfter(response.getHeaders()['retry-after']);
        const pause = retryAfterSeconds ?? DEFAULT_RATE_LIMIT_PAUSE_S;
        limiter.pause(pause * 1000);
        log.warn({ path: args[2].split('?')[0], retryAfterSeconds, pauseSeconds: pause }, 'stripe api rate limited: pausing every request');
      }
      return response;
    },
  };
  const stripe = new Stripe(apiKey, {
    ...base,
    httpClient,
    maxNetworkRetries,
    timeout: timeoutMs,
    telemetry: false,
    ...(options.apiVersion ? { apiVersion: options.apiVersion as Stripe.LatestApiVersion } : {}),
  });

  const get = async (path: string, query: string, scope: RequestOptions): Promise<unknown> => {
    const url = query ? `${path}?${query}` : path;
    const account = scope.account ?? scope.context;
    if (scope.account && scope.context) throw new TypeError('a request goes to an account or a context, not both');
    const headers = scope.account ? { stripeAccount: scope.account } : scope.context ? { stripeContext: scope.context } : undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        return await stripe.rawRequest('GET', url, undefined, headers);
      } catch (error) {
        // The package never retries a 429 that lacks Stripe-Should-Retry: true; retry it here. The
        // limiter is paused for its Retry-After by now, so this attempt waits that long for its token.
        if (error instanceof Stripe.errors.StripeRateLimitError && header(error.headers, 'stripe-should-retry') === undefined && attempt < maxNetworkRetries) {
          log.info({ path, account, attempt: attempt + 1 }, 'stripe api: retrying after the rate limit pause');
          continue;
        }
        throw toApiError(error, path, account);
      }
    }
  };

  const retrieve: StripeApi['retrieve'] = async (path, id, requestOptions = {}) => {
    checkPath(path);
    if (typeof id !== 'string' || id === '') throw new TypeError(`retrieve needs an object id, got ${JSON.stringify(id)}`);
    const url = `/v1/${path}/${encodeURIComponent(id)}`;
    try {
      const object = (await get(url, '', requestOptions)) as StripeObject;
      return { found: true, object, deleted: object.deleted === true, fetchedAt: new Date() };
    } catch (error) {
      if (error instanceof StripeApiError && error.status === 404 && error.cause instanceof Stripe.errors.StripeError && error.cause.code === 'resource_missing') {
        log.info({ path: url, account: requestOptions.account ?? requestOptions.context }, 'stripe api: no such object');
        return { found: false, reason: error.cause.message, fetchedAt: new Date() };
      }
      throw error;
    }
  };

  async function* list(path: string, params: ListParams = {}, requestOptions: RequestOptions = {}): AsyncGenerator<Page> {
    checkPath(path);
    if (params.ending_before !== undefined) throw new TypeError('list pages forward with starting_after; ending_before is not supported');
    let cursor = params.starting_after;
    for (;;) {
      const query = encodeQuery({ limit: PAGE_SIZE, ...params, starting_after: cursor });
      const body = (await get(`/v1/${path}`, query, requestOptions)) as { data?: StripeObject[]; has_more?: boolean };
      if (!Array.isArray(body.data)) throw new StripeApiError(`GET /v1/${path} did not answer a list`, { kind: 'invalid_request', retryable: false, path: `/v1/${path}`, account: requestOptions.account });
      const page: Page = { data: body.data, hasMore: body.has_more === true, fetchedAt: new Date() };
      yield page;
      const last = page.data.at(-1);
      if (!page.hasMore || !last) return;
      cursor = last.id;
    }
  }

  const listEvents: StripeApi['listEvents'] = ({ since, until, types, account }) => {
    if (!(since instanceof Date) || Number.isNaN(since.getTime())) throw new TypeError('listEvents needs `since` as a valid Date');
    if (until !== undefined && (!(until instanceof Date) || Number.isNaN(until.getTime()))) throw new TypeError('listEvents: `until` must be a valid Date');
    if (types && types.length > MAX_EVENT_TYPES) throw new TypeError(`Stripe takes at most ${MAX_EVENT_TYPES} event types a request; split them over several calls`);
    const created: Record<string, number> = { gte: Math.floor(since.getTime() / 1000) };
    if (until) created.lte = Math.floor(until.getTime() / 1000);
    return list('events', { created, ...(types?.length ? { types } : {}) }, { account });
  };

  return { retrieve, list, listEvents, limiter, apiVersion: options.apiVersion ?? Stripe.API_VERSION };
}

function parseApiBase(apiBase: string): { host: string; port: number; protocol: 'http' | 'https' } {
  let url: URL;
  try {
    url = new URL(apiBase);
  } catch {
    throw new TypeError(`the Stripe API base '${apiBase}' is not a URL: use e.g. https://api.stripe.com`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError(`the Stripe API base must be http(s), got '${apiBase}'`);
  if (url.pathname !== '/' || url.search || url.hash) throw new TypeError(`the Stripe API base takes no path or query (the client adds /v1), got '${apiBase}'`);
  const protocol = url.protocol === 'https:' ? 'https' : 'http';
  return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : protocol === 'https' ? 443 : 80, protocol };
}

function checkPath(path: string): void {
  if (typeof path !== 'string' || !COLLECTION_PATH.test(path)) {
    throw new TypeError(`'${String(path)}' is not a collection path: give it without /v1 or slashes around it, e.g. 'customers' or 'checkout/sessions'`);
  }
}

// Stripe's form encoding: created[gte]=1 for a hash, types[0]=a for an array. (The package encodes
// GET parameters this way for its own methods, but rawRequest takes them only in the path.)
export function encodeQuery(params: ListParams): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) value.forEach((item, n) => query.append(`${name}[${n}]`, item));
    else if (typeof value === 'object') for (const [key, inner] of Object.entries(value)) query.append(`${name}[${key}]`, String(inner));
    else query.append(name, String(value));
  }
  return query.toString();
}

function header(headers: unknown, name: string): string | undefined {
  const value = (headers as Record<string, string | string[] | undefined> | undefined)?.[name];
  return Array.isArray(value) ? value[0] : value;
}

function retryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined) return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  // Retry-After may also be an HTTP date.
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, (at - Date.now()) / 1000);
}

function toApiError(error: unknown, path: string, account: string | undefined): StripeApiError {
  if (!(error instanceof Stripe.errors.StripeError)) {
    return new StripeApiError(`GET ${path} failed: ${String(error)}`, { kind: 'connection', retryable: true, path, account }, { cause: error });
  }
  const status = error.statusCode;
  const shouldRetry = header(error.headers, 'stripe-should-retry');
  const fields = { status, requestId: error.requestId, path, account };
  // Stripe-Should-Retry, when Stripe sends it, overrides our guess from the status.
  const retryable = (guess: boolean) => (shouldRetry === undefined ? guess : shouldRetry === 'true');
  if (error instanceof Stripe.errors.StripeConnectionError) {
    const timedOut = (error.detail as { code?: string } | undefined)?.code === 'ETIMEDOUT';
    return new StripeApiError(
      timedOut ? `GET ${path} timed out (no answer within the timeout); it can be retried` : `GET ${path}: could not reach Stripe (${error.message}); it can be retried`,
      { kind: timedOut ? 'timeout' : 'connection', retryable: true, path, account },
      { cause: error },
    );
  }
  if (status === 429) {
    const retryAfterSeconds = retryAfter(header(error.headers, 'retry-after'));
    return new StripeApiError(`GET ${path} was rate limited by Stripe (429); retry after ${retryAfterSeconds ?? DEFAULT_RATE_LIMIT_PAUSE_S} s or lower the request rate`, { ...fields, kind: 'rate_limited', retryable: retryable(true), retryAfterSeconds }, { cause: error });
  }
  if (status === 401 || status === 403) {
    return new StripeApiError(`GET ${path} was refused (${status}): check the Stripe API key and its permissions${account ? ` on account ${account}` : ''}`, { ...fields, kind: 'auth', retryable: false }, { cause: error });
  }
  if (status !== undefined && (status >= 500 || status === 409)) {
    return new StripeApiError(`GET ${path}: Stripe answered ${status}; it can be retried`, { ...fields, kind: 'server', retryable: retryable(true) }, { cause: error });
  }
  return new StripeApiError(`GET ${path}: Stripe answered ${status ?? 'an error'}: ${error.message}`, { ...fields, kind: 'invalid_request', retryable: retryable(false) }, { cause: error });
}

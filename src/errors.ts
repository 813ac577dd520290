// Named errors for problems we understand, each carrying the HTTP status it maps to. app.onError is
// the one place that turns them into responses; anything else is a 500 with a constant body.

export class HttpError extends Error {
  readonly status: 400 | 401 | 404 | 409 | 413 | 503;
  constructor(status: HttpError['status'], message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.status = status;
    this.name = new.target.name;
  }
}

/** Missing, forged or stale signature: the sender must not retry with the same bytes. */
export class SignatureError extends HttpError {
  constructor(message: string) {
    super(400, message);
  }
}

/** The body is signed but is not an event we can store (not UTF-8, not JSON, no id or type). */
export class PayloadError extends HttpError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(400, message, options);
  }
}

export class BodyTooLargeError extends HttpError {
  constructor(limit: number) {
    super(413, `body exceeds the limit of ${limit} bytes (WEBHOOK_MAX_BODY_BYTES)`);
  }
}

export class UnknownSourceError extends HttpError {
  constructor(source: string) {
    super(404, `unknown source '${source}': configure STRIPE_WEBHOOK_SECRET or WEBHOOK_SECRET_<NAME>`);
  }
}

/** The source exists but its secret is not set yet: 503 so the sender keeps retrying until it is. */
export class NotConfiguredError extends HttpError {
  constructor(message: string) {
    super(503, message);
  }
}

/** The database did not commit in time or is unreachable: 503 so the sender retries. */
export class DatabaseUnavailableError extends HttpError {
  constructor(options?: { cause?: unknown }) {
    super(503, 'database unavailable, retry later', options);
  }
}

export class UnauthorizedError extends HttpError {
  constructor() {
    super(401, 'missing or wrong bearer token');
  }
}

/** Bad query parameter or body on the admin API; names the parameter. */
export class BadRequestError extends HttpError {
  /** The query parameter or body field at fault, for programs that call the API. */
  readonly parameter: string | undefined;
  constructor(message: string, parameter?: string) {
    super(400, message);
    this.parameter = parameter;
  }
}

/** The admin API is off because ADMIN_TOKEN is unset. */
export class AdminDisabledError extends HttpError {
  constructor() {
    super(404, 'the admin API is off: set ADMIN_TOKEN (at least 16 characters) to enable it');
  }
}

export class EventNotFoundError extends HttpError {
  constructor(ref: string) {
    super(404, `no event ${ref}`);
  }
}

/** A worker holds the event's lease right now; replaying it would race the fold. */
export class EventLeasedError extends HttpError {
  constructor(ref: string) {
    super(409, `event ${ref} is being folded by a worker right now; replay it again once its lease ends`);
  }
}

/** An admin query ran past ADMIN_STATEMENT_TIMEOUT_MS. */
export class QueryTimeoutError extends HttpError {
  constructor(options?: { cause?: unknown }) {
    super(503, 'the query took longer than ADMIN_STATEMENT_TIMEOUT_MS: narrow the filters (a shorter from/to window, a status) and retry', options);
  }
}

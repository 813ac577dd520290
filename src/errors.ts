// Named errors for problems we understand, each carrying the HTTP status it maps to. app.onError is
// the one place that turns them into responses; anything else is a 500 with a constant body.

export class HttpError extends Error {
  readonly status: 400 | 401 | 404 | 413 | 503;
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
  constructor(message: string) {
    super(400, message);
  }
}

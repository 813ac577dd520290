// One structured logger. JSON lines in production; pretty output when a person watches a TTY.
// Child loggers carry the request id, source and event id so an operator can grep one event.
import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string, options: { pretty?: boolean } = {}): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  return pino({
    level,
    base: { service: 'webhook-inbox' },
    // Secrets and bodies never belong in logs; redact the obvious places in case one slips in.
    redact: ['config.STRIPE_WEBHOOK_SECRET', 'config.ADMIN_TOKEN', 'config.sources', 'headers.authorization'],
    transport: pretty ? { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } : undefined,
  });
}

/** A logger that drops everything: for tests that do not assert on logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

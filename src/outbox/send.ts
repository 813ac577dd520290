// Sends one delivery attempt: POST the body to the subscription's URL over a keep-alive agent of
// its own, through the SSRF lookup, under one hard deadline, and classify what happened. It never
// logs (headers may carry the subscriber's credentials), never follows redirects, never retries
// what the receiver answered, and knows nothing of the database or the schedule.
//
// Agents: one per subscription id, created on its first send and reused, so connections are kept
// alive per subscriber and a slow receiver's sockets are its own. Idle sockets close after
// idleSocketMs (sooner if the receiver's Keep-Alive header asks). Agents are evicted least
// recently used beyond maxAgents, and by forget(id) when a subscription changes or goes away;
// eviction closes the idle sockets at once and lets requests in flight finish. close() destroys
// everything, at shutdown.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseRetryAfter } from './schedule.ts';
import { checkAddress, createSafeLookup, hostOf, SsrfError, urlProblem, type NetworkList } from './ssrf.ts';

export type SendRequest = {
  subscriptionId: string;
  url: string;
  /** The webhook-* headers and the subscriber's own (Authorization, ...). Never logged. */
  headers: Readonly<Record<string, string>>;
  /** Exactly the text that was signed. */
  body: string;
};

export type SendOutcome =
  | { ok: true; status: number; ms: number; bodyStart: string }
  | {
      ok: false;
      /** http: answered, not 2xx. timeout: no full answer in time. network: DNS, refused, reset, TLS. ssrf: refused by policy. */
      kind: 'http' | 'timeout' | 'network' | 'ssrf';
      status?: number;
      /** From Retry-After on a 429 or 503, capped at a day. */
      retryAfterS?: number;
      /** 410 Gone: the receiver asks for no more deliveries. */
      gone?: boolean;
      error: string;
      ms: number;
      bodyStart?: string;
    };

export type SenderOptions = {
  /** One deadline for DNS, connect, TLS, request, response headers and the kept part of the body. */
  timeoutMs: number;
  allowNetworks: NetworkList;
  allowHttp: boolean;
  userAgent: string;
  /** Idle keep-alive sockets close after this long. */
  idleSocketMs?: number;
  /** Agents kept at most (least recently used ones are evicted). */
  maxAgents?: number;
};

export type Sender = {
  /** Resolves with the outcome, never rejects for what the network or the receiver does. */
  send(request: SendRequest): Promise<SendOutcome>;
  /** Drops the subscription's agent (its URL changed, or it was disabled or deleted). */
  forget(subscriptionId: string): void;
  /** Subscriptions holding an agent now. */
  agentCount(): number;
  /** Destroys every agent and its sockets, requests in flight included. */
  close(): void;
};

/** Bytes of the response body kept with the attempt, for the person reading why it failed. */
export const BODY_START_BYTES = 1024;
// Past the kept part, a response body is read and dropped to keep the socket for the next
// delivery, up to this much; a longer body is cut by destroying the socket (never buffered).
const DRAIN_BYTES = 64 * 1024;

// Set by us on every request; a subscriber's header of the same name is dropped.
const TRANSPORT_HEADERS = ['content-type', 'content-length', 'transfer-encoding', 'host', 'connection', 'keep-alive', 'user-agent', 'expect', 'te', 'upgrade'];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * What is wrong with a subscriber's own headers, or null. For registration: names are HTTP
 * tokens, values one line, and neither the webhook-* headers nor transport headers may be set.
 * Names only in the message, never values (they are credentials).
 */
export function customHeadersProblem(headers: Readonly<Record<string, string>>): string | null {
  for (const [name, value] of Object.entries(headers)) {
    if (!TOKEN.test(name)) return `header name '${name.slice(0, 40)}' is not a valid HTTP header name`;
    const lower = name.toLowerCase();
    if (lower.startsWith('webhook-') || TRANSPORT_HEADERS.includes(lower)) {
      return `header '${name}' is set by the sender and cannot be overridden`;
    }
    if (typeof value !== 'string' || !FIELD_VALUE.test(value)) {
      return `header '${name}' has a value that is not one line of text`;
    }
  }
  return null;
}

class DeadlineError extends Error {}

export function createSender(options: SenderOptions): Sender {
  const { timeoutMs, allowNetworks, allowHttp, userAgent } = options;
  const idleSocketMs = options.idleSocketMs ?? 15_000;
  const maxAgents = options.maxAgents ?? 1000;
  const lookup = createSafeLookup(allowNetworks);
  const agents = new Map<string, { agent: http.Agent; protocol: string }>();

  function evict(id: string) {
    const entry = agents.get(id);
    if (!entry) return;
    agents.delete(id);
    for (const sockets of Object.values(entry.agent.freeSockets)) for (const socket of sockets ?? []) socket.destroy();
  }

  function agentFor(id: string, protocol: string): http.Agent {
    const entry = agents.get(id);
    if (entry && entry.protocol === protocol) {
      agents.delete(id); // re-insert: Map order is the LRU order
      agents.set(id, entry);
      return entry.agent;
    }
    if (entry) evict(id);
    const settings = { keepAlive: true, timeout: idleSocketMs, lookup };
    const agent = protocol === 'https:' ? new https.Agent(settings) : new http.Agent(settings);
    agents.set(id, { agent, protocol });
    if (agents.size > maxAgents) evict(agents.keys().next().value!);
    return agent;
  }

  async function send(request: SendRequest): Promise<SendOutcome> {
    const start = performance.now();
    const elapsed = () => Math.round(performance.now() - start);
    const problem = urlProblem(request.url, { allowHttp });
    if (problem) return { ok: false, kind: 'ssrf', error: problem, ms: elapsed() };
    const url = new URL(request.url);
    const host = hostOf(url);
    // Node does not call `lookup` for a literal IP, so those are checked here.
    if (net.isIP(host)) {
      const refused = checkAddress(host, host, allowNetworks);
      if (refused) return { ok: false, kind: 'ssrf', error: refused.message, ms: elapsed() };
    }
    const headers = requestHeaders(request.headers, Buffer.byteLength(request.body), userAgent);
    const body = Buffer.from(request.body);
    const agent = agentFor(request.subscriptionId, url.protocol);
    const deadline = start + timeoutMs;
    // A keep-alive socket the receiver closed while idle is reset as soon as it is written to:
    // the request did not reach the receiver's application (and if it rarely did, receivers
    // dedupe by webhook-id), so it goes again on another socket, as Node's docs suggest for
    // `reusedSocket`. The loop ends at the first fresh socket or the deadline.
    for (;;) {
      const result = await attempt(url, agent, headers, body, deadline, elapsed);
      if (!('staleSocket' in result)) return result;
    }
  }

  return {
    send,
    forget: evict,
    agentCount: () => agents.size,
    close() {
      for (const { agent } of agents.values()) agent.destroy();
      agents.clear();
    },
  };

  function attempt(
    url: URL,
    agent: http.Agent,
    headers: http.OutgoingHttpHeaders,
    body: Buffer,
    deadline: number,
    elapsed: () => number,
  ): Promise<SendOutcome | { staleSocket: true }> {
    return new Promise((resolve) => {
      let phase = 'connecting';
      let responded = false;
      let settled = false;
      const settle = (outcome: SendOutcome | { staleSocket: true }) => {
        if (settled) return;
        settled = true;
        resolve(outcome);
      };
      const client = url.protocol === 'https:' ? https : http;
      const req = client.request(url, { method: 'POST', agent, headers });
      const timer = setTimeout(() => {
        req.destroy(new DeadlineError(`no answer within ${timeoutMs} ms (${phase})`));
      }, Math.max(deadline - performance.now(), 0));

      req.on('socket', (socket) => {
        if (!socket.connecting) {
          phase = 'waiting for the response';
          return;
        }
        socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
          phase = 'waiting for the response';
        });
      });

      req.on('error', (err: NodeJS.ErrnoException) => {
        if (responded) return; // the response's own handlers settle
        clearTimeout(timer);
        if (err instanceof SsrfError) return settle({ ok: false, kind: 'ssrf', error: err.message, ms: elapsed() });
        if (err instanceof DeadlineError) return settle({ ok: false, kind: 'timeout', error: err.message, ms: elapsed() });
        if (req.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE')) return settle({ staleSocket: true });
        settle({ ok: false, kind: 'network', error: networkError(err), ms: elapsed() });
      });

      req.on('response', (res) => {
        responded = true;
        phase = 'reading the response body';
        const status = res.statusCode ?? 0;
        const kept: Buffer[] = [];
        let keptBytes = 0;
        let readBytes = 0;
        const outcome = (): SendOutcome => {
          const bodyStart = decodeBodyStart(kept, keptBytes);
          if (status >= 200 && status < 300) return { ok: true, status, ms: elapsed(), bodyStart };
          const failure: SendOutcome = { ok: false, kind: 'http', status, error: httpError(status), ms: elapsed(), bodyStart };
          if (status === 410) failure.gone = true;
          if (status === 429 || status === 503) {
            const retryAfterS = parseRetryAfter(res.headers['retry-after'], Date.now());
            if (retryAfterS !== undefined) failure.retryAfterS = retryAfterS;
          }
          return failure;
        };
        res.on('data', (chunk: Buffer) => {
          readBytes += chunk.length;
          if (keptBytes < BODY_START_BYTES) {
            const part = chunk.subarray(0, BODY_START_BYTES - keptBytes);
            kept.push(part);
            keptBytes += part.length;
            if (keptBytes === BODY_START_BYTES) settle(outcome());
          }
          if (readBytes > BODY_START_BYTES + DRAIN_BYTES) res.destroy();
        });
        res.on('end', () => settle(outcome()));
        // The status line decides the outcome: a body cut short (deadline, reset, or destroyed
        // above) keeps the verdict, with what was read of it.
        res.on('close', () => {
          clearTimeout(timer);
          settle(outcome());
        });
        // Errors of the response stream end in 'close' above; this listener keeps them from
        // being thrown as unhandled.
        res.on('error', () => {});
      });

      req.end(body);
    });
  }
}

function requestHeaders(headers: Readonly<Record<string, string>>, length: number, userAgent: string): http.OutgoingHttpHeaders {
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    // Checked here too so Node's own error (which can quote a value) never reaches a log.
    if (!TOKEN.test(name) || typeof value !== 'string' || !FIELD_VALUE.test(value)) {
      throw new TypeError(`header '${TOKEN.test(name) ? name : '?'}' is not a valid header: refuse it at registration (customHeadersProblem)`);
    }
    if (!TRANSPORT_HEADERS.includes(name.toLowerCase())) out[name.toLowerCase()] = value;
  }
  out['content-type'] = 'application/json';
  out['content-length'] = length;
  out['user-agent'] = userAgent;
  return out;
}

function decodeBodyStart(kept: Buffer[], bytes: number): string {
  // UTF-8 (a character cut at the 1 KB boundary becomes U+FFFD); NUL becomes U+FFFD too, since
  // Postgres text cannot hold it and this is going to be stored.
  return Buffer.concat(kept, bytes).toString('utf8').replaceAll('\0', '\uFFFD');
}

function httpError(status: number): string {
  if (status >= 300 && status < 400) return `answered ${status}: redirects are not followed, point the subscription at the final URL`;
  if (status === 410) return 'answered 410 Gone: the receiver wants no more deliveries';
  if (status === 429) return 'answered 429 Too Many Requests';
  return `answered ${status}`;
}

function networkError(err: NodeJS.ErrnoException): string {
  const code = err.code;
  return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
}

// Sending one attempt (src/outbox/send.ts) to real HTTP servers on 127.0.0.1 (allowlisted): what
// counts as success, how failures are classified, the deadline, the 1 KB body limit, keep-alive
// per subscription, SSRF refusals, and a receiver that verifies the signature with standardwebhooks.
import { once } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import t, { type Test } from 'tap';
import { Webhook } from 'standardwebhooks';
import { createSender, customHeadersProblem, type SendOutcome, type SenderOptions } from '../src/outbox/send.ts';
import { generateSecret, signMessage } from '../src/outbox/sign.ts';
import { parseNetworkList } from '../src/outbox/ssrf.ts';
import { waitFor } from '../scripts/lib/wait.ts';

const LOCAL = parseNetworkList('127.0.0.0/8');

function sender(t: Test, options: Partial<SenderOptions> = {}) {
  const s = createSender({ timeoutMs: 5000, allowNetworks: LOCAL, allowHttp: true, userAgent: 'webhook-inbox-test/1', ...options });
  t.teardown(() => s.close());
  return s;
}

type Seen = { method: string; url: string; headers: http.IncomingHttpHeaders; body: string };

/** A real receiver: `handle` answers; it records every connection, request and closed socket. */
async function receiver(t: Test, handle: (req: http.IncomingMessage, res: http.ServerResponse, body: string) => void) {
  const seen = { connections: 0, closed: 0, requests: [] as Seen[] };
  const server = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    seen.requests.push({ method: req.method!, url: req.url!, headers: req.headers, body });
    handle(req, res, body);
  });
  server.on('connection', (socket) => {
    seen.connections++;
    socket.on('close', () => seen.closed++);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  return { seen, port, url: (path = '/hook') => `http://127.0.0.1:${port}${path}` };
}

/** Resolves when `check` holds, looking again on every turn of the event loop. */
const until = (check: () => boolean) => waitFor(check, { intervalMs: 0, what: 'the receiver to see it' });

const body = JSON.stringify({ type: 'invoice.paid', data: { id: 'in_1' } });
const request = (url: string, subscriptionId = 'sub_1', headers: Record<string, string> = {}) => ({ subscriptionId, url, headers, body });

t.test('2xx is success: 200 with its body, 204 without', async (t) => {
  const r = await receiver(t, (req, res) => {
    if (req.url === '/ok') res.end('{"received":true}');
    else res.writeHead(204).end();
  });
  const s = sender(t);
  t.match(await s.send(request(r.url('/ok'))), { ok: true, status: 200, bodyStart: '{"received":true}', ms: Number });
  t.match(await s.send(request(r.url('/none'))), { ok: true, status: 204, bodyStart: '' });
  const [first] = r.seen.requests;
  t.match(first, { method: 'POST', url: '/ok', body });
  t.match(first!.headers, { 'content-type': 'application/json', 'user-agent': 'webhook-inbox-test/1', 'content-length': String(body.length) });
});

t.test('a receiver verifies the Standard Webhooks signature and sees the subscriber\'s own header', async (t) => {
  const secret = generateSecret();
  const r = await receiver(t, (req, res, text) => {
    try {
      new Webhook(secret).verify(text, req.headers as Record<string, string>);
      res.writeHead(req.headers.authorization === 'Bearer tok-3141' ? 204 : 401).end();
    } catch (err) {
      res.writeHead(400).end((err as Error).message);
    }
  });
  const s = sender(t);
  const signed = (secrets: string[]) => ({ ...signMessage({ id: 'msg_1', timestamp: new Date(), body, secrets }), Authorization: 'Bearer tok-3141' });
  t.match(await s.send(request(r.url(), 'sub_1', signed([secret]))), { ok: true, status: 204 });
  t.match(await s.send(request(r.url(), 'sub_1', signed([generateSecret(), secret]))), { ok: true, status: 204 }, 'during a rotation');
  t.match(await s.send(request(r.url(), 'sub_1', signed([generateSecret()]))), {
    ok: false, kind: 'http', status: 400, bodyStart: 'No matching signature found',
  });
  t.equal(r.seen.requests[0]!.headers['webhook-id'], 'msg_1');
});

t.test('failures: 500, 301 (never followed), 410 (gone), each with the status and the body start', async (t) => {
  const r = await receiver(t, (req, res) => {
    if (req.url === '/boom') res.writeHead(500, { 'retry-after': '60' }).end('boom');
    else if (req.url === '/old') res.writeHead(301, { location: '/new' }).end();
    else if (req.url === '/gone') res.writeHead(410).end('unsubscribed');
    else res.end('ok');
  });
  const s = sender(t);
  const boom = await s.send(request(r.url('/boom')));
  t.match(boom, { ok: false, kind: 'http', status: 500, error: 'answered 500', bodyStart: 'boom' });
  t.notOk('retryAfterS' in boom, 'Retry-After only counts on 429 and 503');
  t.notOk('gone' in boom);
  t.match(await s.send(request(r.url('/old'))), { ok: false, kind: 'http', status: 301, error: /redirects are not followed/ });
  t.match(await s.send(request(r.url('/gone'))), { ok: false, kind: 'http', status: 410, gone: true, bodyStart: 'unsubscribed' });
  t.same(r.seen.requests.map((x) => x.url), ['/boom', '/old', '/gone'], '/new was never requested');
});

t.test('429 and 503 carry Retry-After, as seconds or as an HTTP date', async (t) => {
  const r = await receiver(t, (req, res) => {
    if (req.url === '/busy') res.writeHead(429, { 'retry-after': '120' }).end();
    else if (req.url === '/down') res.writeHead(503, { 'retry-after': new Date(Date.now() + 90_000).toUTCString() }).end();
    else res.writeHead(503).end();
  });
  const s = sender(t);
  t.match(await s.send(request(r.url('/busy'))), { ok: false, kind: 'http', status: 429, retryAfterS: 120 });
  const down = await s.send(request(r.url('/down')));
  t.match(down, { ok: false, status: 503 });
  t.ok(down.ok === false && down.retryAfterS! > 60 && down.retryAfterS! <= 90, `date form read as ${!down.ok && down.retryAfterS}s`);
  t.notOk('retryAfterS' in (await s.send(request(r.url('/plain')))), 'none without the header');
});

t.test('a receiver that hangs times out, and other subscribers are answered meanwhile', async (t) => {
  const hung: http.ServerResponse[] = [];
  const slow = await receiver(t, (_req, res) => hung.push(res));
  const fast = await receiver(t, (_req, res) => res.end('ok'));
  const s = sender(t, { timeoutMs: 4000 });
  let slowOutcome: SendOutcome | undefined;
  const slowSend = s.send(request(slow.url(), 'sub_slow')).then((o) => (slowOutcome = o));
  await until(() => hung.length === 1);
  t.match(await s.send(request(fast.url(), 'sub_fast')), { ok: true, status: 200 });
  t.equal(slowOutcome, undefined, 'the hanging send was still waiting when the other one was answered');
  await slowSend;
  t.match(slowOutcome, { ok: false, kind: 'timeout', error: 'no answer within 4000 ms (waiting for the response)' });
});

t.test('the deadline also covers the body; a status already received keeps its verdict', async (t) => {
  const r = await receiver(t, (_req, res) => {
    res.writeHead(200);
    res.write('partial'); // and never ends
  });
  const s = sender(t, { timeoutMs: 300 });
  t.match(await s.send(request(r.url())), { ok: true, status: 200, bodyStart: 'partial' });
  await until(() => r.seen.closed === 1);
  t.pass('the sender closed the connection at the deadline');
});

t.test('a huge (endless) body: 1 KB is kept and the connection is cut, nothing buffered', async (t) => {
  const chunk = Buffer.alloc(16 * 1024, 'x');
  const r = await receiver(t, (_req, res) => {
    res.writeHead(500);
    const pump = () => {
      while (!res.destroyed && res.write(chunk));
    };
    res.on('drain', pump);
    pump();
  });
  // A deadline far away, so only the body limit can cut this connection.
  const s = sender(t, { timeoutMs: 600_000 });
  const outcome = await s.send(request(r.url()));
  t.match(outcome, { ok: false, kind: 'http', status: 500 });
  t.equal(outcome.bodyStart, 'x'.repeat(1024));
  await until(() => r.seen.closed === 1);
  t.pass('the endless response was cut by closing the connection');
});

t.test('a body somewhat over 1 KB is drained, so the connection is reused', async (t) => {
  const r = await receiver(t, (_req, res) => res.end('é'.repeat(5000))); // 10 KB; 'é' is 2 bytes
  const s = sender(t);
  const first = await s.send(request(r.url()));
  t.equal(first.bodyStart, 'é'.repeat(512), 'cut at 1024 bytes, on a character boundary here');
  await s.send(request(r.url()));
  t.equal(r.seen.connections, 1);
});

t.test('keep-alive: one connection per subscription, reused; forget() drops it', async (t) => {
  const r = await receiver(t, (_req, res) => res.end('ok'));
  const s = sender(t);
  await s.send(request(r.url(), 'sub_a'));
  await s.send(request(r.url(), 'sub_a'));
  t.equal(r.seen.connections, 1, 'two sends, one connection');
  await s.send(request(r.url(), 'sub_b'));
  t.equal(r.seen.connections, 2, 'another subscription has its own');
  t.equal(s.agentCount(), 2);
  s.forget('sub_a');
  t.equal(s.agentCount(), 1);
  await until(() => r.seen.closed === 1);
  t.pass('forget closed its idle connection');
});

t.test('agents beyond maxAgents are evicted least recently used', async (t) => {
  const r = await receiver(t, (_req, res) => res.end('ok'));
  const s = sender(t, { maxAgents: 2 });
  for (const id of ['sub_1', 'sub_2', 'sub_1', 'sub_3']) await s.send(request(r.url(), id));
  t.equal(s.agentCount(), 2);
  t.equal(r.seen.connections, 3);
  await until(() => r.seen.closed === 1);
  await s.send(request(r.url(), 'sub_1'));
  t.equal(r.seen.connections, 3, 'sub_1 was used recently: kept, its connection reused');
  await s.send(request(r.url(), 'sub_2'));
  t.equal(r.seen.connections, 4, 'sub_2 was evicted: a new connection');
});

t.test('a keep-alive socket the receiver dropped while idle is replaced, not counted as a failure', async (t) => {
  // A bare TCP server: it answers the first request of a connection and resets the connection on
  // anything later, as a receiver does once it has closed an idle connection we still hold.
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    let answered = false;
    socket.on('data', () => {
      if (answered) return socket.resetAndDestroy();
      answered = true;
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hook`;
  const s = sender(t);
  t.match(await s.send(request(url)), { ok: true, status: 200 });
  t.match(await s.send(request(url)), { ok: true, status: 200, bodyStart: 'ok' }, 'sent again on a fresh connection');
  t.equal(connections, 2);
});

t.test('connection refused is a network error', async (t) => {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  server.close();
  await once(server, 'close');
  const outcome = await sender(t).send(request(`http://127.0.0.1:${port}/hook`));
  t.match(outcome, { ok: false, kind: 'network', error: /ECONNREFUSED/ });
  t.notOk('status' in outcome);
});

t.test('SSRF: names and literals that are not allowed never reach the receiver; http needs allowing', async (t) => {
  const r = await receiver(t, (_req, res) => res.end('ok'));
  const strict = sender(t, { allowNetworks: parseNetworkList('') });
  t.match(await strict.send(request(`http://localhost:${r.port}/hook`)), {
    ok: false, kind: 'ssrf', error: /^localhost resolves to 127\.0\.0\.1, a loopback address/,
  });
  t.match(await strict.send(request(r.url())), { ok: false, kind: 'ssrf', error: /^127\.0\.0\.1 is a loopback address/ });
  t.match(await strict.send(request(`http://[::ffff:127.0.0.1]:${r.port}/hook`)), { ok: false, kind: 'ssrf', error: /loopback/ });
  const httpsOnly = sender(t, { allowHttp: false });
  t.match(await httpsOnly.send(request(r.url())), { ok: false, kind: 'ssrf', error: /deliveries go over https only/ });
  t.equal(r.seen.connections, 0, 'the receiver never saw a connection');
  t.match(await sender(t).send(request(`http://localhost:${r.port}/hook`)), { ok: true }, 'allowlisted: goes through');
});

t.test('headers: ours win over the subscriber\'s, bad ones are refused by name only', async (t) => {
  const r = await receiver(t, (_req, res) => res.end('ok'));
  const s = sender(t);
  await s.send(request(r.url(), 'sub_1', { 'Content-Type': 'text/plain', 'X-Team': 'billing' }));
  t.match(r.seen.requests[0]!.headers, { 'content-type': 'application/json', 'x-team': 'billing' });
  const rejected = await s.send(request(r.url(), 'sub_1', { 'x-token': 'abc\r\nx-evil: 1' })).then(() => null, (err: Error) => err);
  t.type(rejected, TypeError);
  t.match(rejected?.message, /header 'x-token' is not a valid header/);
  t.notOk(rejected?.message.includes('abc'), 'the value is not in the message');
  t.equal(r.seen.requests.length, 1);

  t.equal(customHeadersProblem({ Authorization: 'Bearer x', 'X-Api-Key': 'k' }), null);
  t.match(customHeadersProblem({ 'webhook-signature': 'v1,forged' }), /set by the sender/);
  t.match(customHeadersProblem({ Host: 'internal' }), /set by the sender/);
  t.match(customHeadersProblem({ 'bad name': 'x' }), /not a valid HTTP header name/);
  t.match(customHeadersProblem({ 'x-a': 'line\nbreak-s3cr3t' }), /header 'x-a' has a value that is not one line/);
  t.notOk(customHeadersProblem({ 'x-a': 'line\nbreak-s3cr3t' })!.includes('s3cr3t'));
});

// A self-signed certificate for localhost and 127.0.0.1, made for these tests only (openssl req
// -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 36500); it protects nothing.
const TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgaj4CMhWXI9W5i0fh
JZ6HnmqP8BovWNzNIqV7wokjdz+hRANCAATJaP1mLYCQbNsgHvcAyWh0bJBwFDUX
LiNlRvpja/p9zkk1k1da5chVUlHpPRw7QyuOg9Gqz7z8IcxCSPZLdBqz
-----END PRIVATE KEY-----`;
const TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBmjCCAUGgAwIBAgIUMnjwppkL0MBAV/OBoBVmy5eyF50wCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMTIyNDIwN1oYDzIxMjYxMTA3
MjI0MjA3WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATJaP1mLYCQbNsgHvcAyWh0bJBwFDUXLiNlRvpja/p9zkk1k1da5chV
UlHpPRw7QyuOg9Gqz7z8IcxCSPZLdBqzo28wbTAdBgNVHQ4EFgQU8fWoIdeTXEKZ
O2FgaGsOpps1mvYwHwYDVR0jBBgwFoAU8fWoIdeTXEKZO2FgaGsOpps1mvYwDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDRwAwRAIgcsLlwjSwiIhR86WJU/JvpdeYAL4KCxJBJzT2anjX5CsCIBpj
HqjNAohVg0K1fZdcaNeinxbvdaYW2IHKUVsISMlf
-----END CERTIFICATE-----`;

t.test('https: certificates are verified, the SSRF lookup applies, and the deadline covers the handshake', async (t) => {
  let requests = 0;
  const server = https.createServer({ key: TEST_KEY, cert: TEST_CERT }, (_req, res) => {
    requests++;
    res.end('ok');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const s = sender(t, { allowHttp: false });
  t.match(await s.send(request(`https://localhost:${port}/hook`)), { ok: false, kind: 'network', error: /self-signed certificate/ });
  const strict = sender(t, { allowHttp: false, allowNetworks: parseNetworkList('') });
  t.match(await strict.send(request(`https://localhost:${port}/hook`)), { ok: false, kind: 'ssrf', error: /loopback/ });
  t.equal(requests, 0, 'no request was ever served');

  // A server that accepts TCP and never answers the TLS handshake.
  const silent = net.createServer(() => {});
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  const sockets = new Set<net.Socket>();
  silent.on('connection', (socket) => sockets.add(socket));
  t.teardown(() => {
    for (const socket of sockets) socket.destroy();
    silent.close();
  });
  const quick = sender(t, { allowHttp: false, timeoutMs: 300 });
  t.match(await quick.send(request(`https://127.0.0.1:${(silent.address() as net.AddressInfo).port}/hook`)), {
    ok: false, kind: 'timeout', error: 'no answer within 300 ms (connecting)',
  });
});

// A subscriber's receiver as a real local HTTP server, for the outbox tests and the bench: it
// records every request (webhook-id, whether the Standard Webhooks signature verifies with the
// secret it was given, the parsed body, when it arrived) and answers what `answer` says: a status,
// headers, or nothing at all (a receiver that hangs). Never imports test/.
import { once } from 'node:events';
import http from 'node:http';
import type net from 'node:net';
import { Webhook } from 'standardwebhooks';

export type Received = {
  id: string;
  /** The signature verified with one of the receiver's secrets. */
  verified: boolean;
  headers: http.IncomingHttpHeaders;
  body: any;
  /** Epoch ms when the request was read. */
  at: number;
  /** The status it was answered (undefined: not answered yet, or it hangs). */
  status?: number;
};

/** What to answer: a status (after delayMs), or nothing at all. */
export type Answer = { status: number; headers?: Record<string, string>; body?: string; delayMs?: number } | 'hang';

export type Receiver = {
  url: string;
  received: Received[];
  /** Requests answered 2xx. */
  accepted: () => Received[];
  /** The secrets signatures are checked with (set after registration). */
  secrets: string[];
  /** What to answer the next requests; default 200. */
  answer: (r: Received) => Answer;
  close(): Promise<void>;
};

export async function startReceiver(options: { answer?: (r: Received) => Answer; path?: string } = {}): Promise<Receiver> {
  const hanging = new Set<http.ServerResponse>();
  const receiver: Receiver = {
    url: '',
    received: [],
    accepted: () => receiver.received.filter((r) => r.status !== undefined && r.status >= 200 && r.status < 300),
    secrets: [],
    answer: options.answer ?? (() => ({ status: 200 })),
    close: async () => {},
  };
  const server = http.createServer(async (req, res) => {
    let text = '';
    for await (const chunk of req) text += chunk;
    const headers = req.headers;
    const verified = receiver.secrets.some((secret) => {
      try {
        new Webhook(secret).verify(text, headers as Record<string, string>);
        return true;
      } catch {
        return false;
      }
    });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const r: Received = { id: String(headers['webhook-id'] ?? ''), verified, headers, body, at: Date.now() };
    receiver.received.push(r);
    const a = receiver.answer(r);
    if (a === 'hang') {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return;
    }
    if (a.delayMs) await new Promise((resolve) => setTimeout(resolve, a.delayMs));
    r.status = a.status;
    res.writeHead(a.status, a.headers).end(a.body ?? '');
  });
  server.keepAliveTimeout = 30_000;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  receiver.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}${options.path ?? '/hooks'}`;
  receiver.close = async () => {
    for (const res of hanging) res.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return receiver;
}

// The bench's plain peer: the least a Stripe webhook receiver can do, in node:http. It checks the
// signature with the stripe package's constructEvent, stores the event with one INSERT into a
// narrow table of its own, and answers 200 after the commit. No framework, logs or metrics.
//   DATABASE_URL=... PORT=... STRIPE_WEBHOOK_SECRET=whsec_... node scripts/lib/plain-server.ts
import { createServer } from 'node:http';
import postgres from 'postgres';
import Stripe from 'stripe';

const sql = postgres(process.env.DATABASE_URL!, { max: 10, onnotice: () => {} });
const secret = process.env.STRIPE_WEBHOOK_SECRET!;
await sql`create table if not exists plain_events (id text primary key, type text not null, payload jsonb not null)`;

const server = createServer((req, res) => {
  if (req.method === 'GET') return void res.writeHead(200).end('ok');
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', async () => {
    const raw = Buffer.concat(chunks);
    let event: Stripe.Event;
    try {
      event = Stripe.webhooks.constructEvent(raw, req.headers['stripe-signature'] as string, secret);
    } catch {
      return void res.writeHead(400).end('bad signature');
    }
    try {
      await sql`insert into plain_events (id, type, payload) values (${event.id}, ${event.type}, ${raw.toString()}::jsonb)
                on conflict do nothing`;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
    } catch {
      res.writeHead(500).end('database error');
    }
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => void sql.end().then(() => process.exit(0))));

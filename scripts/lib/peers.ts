// The systems `npm run bench` measures next to webhook-inbox, each its own process: the plain
// node:http receiver (plain-server.ts), and on request stripe-sync-engine, installed from npm into
// a scratch folder outside the project with the ordinary npm client. None of the peer's code is
// committed: its webhook route is started the way its Fastify app starts it (server.cjs below).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { root, startServer, type ServiceProcess } from './service.ts';

export type Peer = { process: ServiceProcess; webhookPath: string };

export async function startPlainServer(databaseUrl: string): Promise<Peer> {
  const server = await startServer(path.join(root, 'scripts/lib/plain-server.ts'), databaseUrl, {}, '/healthz');
  return { process: server, webhookPath: '/webhook' };
}

export const STRIPE_SYNC_ENGINE_VERSION = '0.48.5';

// stripe-sync-engine's Fastify app (packages/fastify-app: app.ts, routes/webhooks.ts, server.ts),
// reduced to what a webhook touches: its migrations at start, a pino logger at info with request
// logging off, the body kept as a Buffer for /webhooks, processWebhook (verify, then upsert the
// object inline), 400 with the error text on any failure.
const HARNESS = `// Written by webhook-inbox's npm run bench; not part of either project.
const Fastify = require('fastify');
const pino = require('pino');
const { StripeSync, runMigrations } = require('@supabase/stripe-sync-engine');
const logger = pino({ level: 'info' });
const config = {
  databaseUrl: process.env.DATABASE_URL, schema: 'stripe', stripeSecretKey: 'sk_test_bench',
  stripeWebhookSecret: process.env.STRIPE_WEBHOOK_SECRET, stripeApiVersion: '2020-08-27',
  autoExpandLists: false, backfillRelatedEntities: true, maxPostgresConnections: 10, logger,
};
(async () => {
  await runMigrations({ databaseUrl: config.databaseUrl, schema: config.schema, logger });
  const sync = new StripeSync(config);
  const app = Fastify({ loggerInstance: logger, disableRequestLogging: true });
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => done(null, { raw: body }));
  app.get('/healthz', async () => ({ ok: true }));
  app.post('/webhooks', async (request, reply) => {
    try {
      await sync.processWebhook(request.body.raw, request.headers['stripe-signature']);
    } catch (error) {
      logger.error(error, 'Webhook processing error');
      return reply.code(400).send('Webhook Error: ' + (error instanceof Error ? error.message : 'Unknown error'));
    }
    return reply.send({ received: true });
  });
  await app.listen({ port: Number(process.env.PORT), host: '127.0.0.1' });
})();
process.on('SIGTERM', () => process.exit(0));
`;

/**
 * Installs stripe-sync-engine `version` (with fastify and pino, as its app uses them) into
 * <tmpdir>/webhook-inbox-bench-peers/ once, then starts its webhook server on `databaseUrl`.
 */
export async function startStripeSyncEngine(databaseUrl: string, version: string, log: (msg: string) => void): Promise<Peer> {
  const dir = path.join(tmpdir(), 'webhook-inbox-bench-peers', `stripe-sync-engine-${version}`);
  if (!existsSync(path.join(dir, 'node_modules/@supabase/stripe-sync-engine/package.json'))) {
    log(`installing @supabase/stripe-sync-engine@${version} into ${dir}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'package.json'), '{ "private": true }\n');
    // Its peer dependency is stripe > 18.
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', `@supabase/stripe-sync-engine@${version}`, 'stripe@19', 'fastify@5', 'pino@9'], {
      cwd: dir,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const script = path.join(dir, 'server.cjs');
  writeFileSync(script, HARNESS);
  // Fastify 5 warns that the disableRequestLogging option its app passes is deprecated.
  const server = await startServer(script, databaseUrl, { NODE_NO_WARNINGS: '1' }, '/healthz');
  return { process: server, webhookPath: '/webhooks' };
}

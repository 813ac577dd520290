// `npm run console:screenshots`: the README's pictures of the console, taken by Chromium from the
// real service on realistic data (scripts/lib/console-seed.ts: a Stripe stream folded by the real
// workers, arriving over the last 12 hours, with failures, orphans and a subscriber). Writes docs/*.png.
// A tool, not a test (tap runs *.test.ts only); under test/ because playwright-core is a
// devDependency and scripts/ holds what the production image may run.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { connect } from '../src/db/client.ts';
import { migrate } from '../src/db/migrate.ts';
import { benchDatabase } from '../scripts/bench-lib.ts';
import { launchChromium } from './helpers/browser.ts';
import { seedConsoleData } from '../scripts/lib/console-seed.ts';
import { root, startService } from '../scripts/lib/service.ts';

const out = path.join(root, 'docs');
const token = 'console-screenshots-0123456789';
const progress = (msg: string) => process.stderr.write(`console:screenshots: ${msg}\n`);

const db = await benchDatabase();
const sql = connect(db.url, { max: 4, statementTimeoutMs: 0 });
await migrate(sql);
if ((await sql`select 1 from events limit 1`).length === 0) {
  progress(`folded ${await seedConsoleData(sql, db.url, { customers: 150, hours: 12, failEvery: 120, subscriber: true })} events`);
}
// Nothing folds while the pictures are taken: the retrying events stay as they are.
const service = await startService(db.url, { ADMIN_TOKEN: token, ROLE: 'api' });
const browser = await launchChromium();
try {
  await mkdir(out, { recursive: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 960 }, deviceScaleFactor: 1, colorScheme: 'light' });
  const page = await context.newPage();
  await page.goto(`${service.url}/console/signin`);
  await page.fill('input[name=token]', token);
  await page.press('input[name=token]', 'Enter');
  await page.waitForURL(`${service.url}/console`);
  // The day's charts are read in the background: reload until they are there.
  for (let i = 0; i < 50 && (await page.locator('#day-received-title').count()) === 0; i++) {
    await page.waitForTimeout(200);
    await page.reload();
  }
  await page.locator('figure.chart canvas').nth(5).waitFor();
  await page.screenshot({ path: path.join(out, 'console-overview.png') });

  const [event] = await sql<{ id: string }[]>`
    select id::text from events
     where type = 'invoice.paid' and status = 'PROCESSED' and jsonb_array_length(result -> 'parked') > 0
     order by received_at desc limit 1`;
  const [fallback] = await sql<{ id: string }[]>`select id::text from events where type = 'invoice.paid' and status = 'PROCESSED' order by received_at desc limit 1`;
  await page.goto(`${service.url}/console/events/${(event ?? fallback)!.id}`);
  await page.screenshot({ path: path.join(out, 'console-event.png') });
  progress(`wrote ${path.join(out, 'console-overview.png')} and console-event.png`);
} finally {
  await browser.close();
  await service.stop();
  await sql.end();
  await db.stop();
}

// The console in a real Chromium (Debian's, driven by playwright-core) against the real app on a
// socket, a real database and real fold workers: sign in, filter, open an event, replay it and see
// its status change, find an object by its id, follow new events; and a wrong token, a form without
// its CSRF token and a <script> in a payload fail safely. Also: no Content-Security-Policy
// violation on any page, the keyboard, a phone's width, and pages without JavaScript.
import t from 'tap';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createSubscription } from '../src/db/subscriptions.ts';
import { generateSecret } from '../src/outbox/sign.ts';
import { startWorkers } from '../src/worker/index.ts';
import { silentLogger } from '../src/log.ts';
import { buildStream } from '../scripts/lib/stream.ts';
import { waitFor } from '../scripts/lib/wait.ts';
import { testConfig } from './helpers/app.ts';
import { launchChromium, skipWithoutChromium } from './helpers/browser.ts';
import { CONSOLE_TOKEN, consoleApp, serveApp } from './helpers/console.ts';
import { createTestDatabase } from './helpers/db.ts';
import { seedEvent } from './helpers/events.ts';
import { drain, storeEvents, type Ev } from './helpers/fold.ts';

// Chromium's start, a stream folded, and page loads on a shared, loaded 2-core machine.
t.setTimeout(300_000);

t.test('the console in Chromium', { skip: skipWithoutChromium() }, async (t) => {
  const db = await createTestDatabase(t);
  const stream = buildStream({ seed: 9, customers: 3 }) as unknown as Ev[];
  await storeEvents(db.sql, stream);
  await drain(db.sql);
  // A real event that failed (say, a deploy broke the fold) and folds fine once replayed.
  const [broken] = await db.sql<{ id: string; event_id: string }[]>`
    update events set status = 'FAILED', attempts = 8, last_error = 'canceling statement due to statement timeout', result = null
     where id = (select id from events where type = 'invoice.paid' order by id limit 1)
    returning id::text, event_id`;
  const evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">';
  // Folded by the workers below, so the customer's row holds it too.
  const injected = await seedEvent(db.sql, {
    type: 'customer.updated',
    status: 'RECEIVED',
    object: { id: 'cus_evil1', object: 'customer', name: evil, description: evil },
  });
  const [sub] = await db.sql<{ id: string }[]>`select id from subscriptions order by id limit 1`;

  const app = consoleApp(db.sql);
  const server = await serveApp(app);
  const workers = await startWorkers({
    sql: db.sql,
    databaseUrl: db.url,
    config: testConfig({ WORKER_CONCURRENCY: '1', WORKER_POLL_MS: '50' }),
    log: silentLogger(),
    schedules: false,
  });
  const browser: Browser = await launchChromium();
  t.teardown(async () => {
    await browser.close();
    await workers.stop();
    await server.close();
  });

  const problems: string[] = [];
  /** A page that records CSP violations and script errors, for the check at the end. */
  const open = async (context: BrowserContext): Promise<Page> => {
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(`${page.url()}: ${m.text()}`);
    });
    page.on('pageerror', (err) => problems.push(`${page.url()}: ${err.message}`));
    page.on('dialog', (d) => {
      problems.push(`${page.url()}: a dialog opened: ${d.message()}`);
      void d.dismiss();
    });
    return page;
  };
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await open(context);
  const url = (path: string) => server.url + path;
  const statusOf = async (id: string) => (await db.sql`select status from events where id = ${id}`)[0]!.status as string;

  await t.test('a wrong token fails safely; the right one opens the overview, charts drawn', async (t) => {
    await page.goto(url('/console'));
    t.match(page.url(), /\/console\/signin\?next=%2Fconsole$/, 'sent to sign in');
    await page.fill('input[name=token]', 'not-the-token-0123456789abcdef');
    await page.press('input[name=token]', 'Enter');
    await page.getByText('That is not the admin token.').waitFor();
    t.same(await context.cookies(), [], 'no cookie');
    await page.fill('input[name=token]', CONSOLE_TOKEN);
    await page.press('input[name=token]', 'Enter');
    await page.waitForURL(url('/console'));
    const [cookie] = await context.cookies();
    t.match(cookie, { name: 'wi_console', httpOnly: true, sameSite: 'Strict', path: '/console' });
    t.notOk(cookie!.value.includes(CONSOLE_TOKEN));
    t.equal(await page.locator('.card.bad .value').textContent(), '1', 'one failed event, shown first');
    await page.locator('figure.chart canvas').first().waitFor();
    t.ok((await page.locator('figure.chart canvas').count()) >= 4, 'uPlot drew the hour');
    t.equal(await page.evaluate('document.cookie'), '', 'the session cookie is out of reach of scripts');
  });

  await t.test('filter the events, open the failed one, replay it, and see its status change', async (t) => {
    await page.goto(url('/console/events'));
    await page.check('input[name=status][value=FAILED]');
    await page.click('form.filters button[type=submit]');
    await page.waitForURL(/status=FAILED/);
    const rows = page.locator('#rows tr');
    await waitFor(async () => (await rows.count()) === 1, { what: 'the filtered listing' });
    t.match(await rows.first().textContent(), /invoice\.paid.*FAILED/);

    await rows.first().locator('a').click();
    await page.waitForURL(url(`/console/events/${broken!.id}`));
    t.match(await page.locator('h1').textContent(), /invoice\.paid/);
    t.match(await page.locator('#event-status').textContent(), /FAILED/);

    await page.getByRole('link', { name: 'Replay…' }).click();
    t.match(await page.locator('main').textContent(), /Its status becomes RECEIVED \(now FAILED\)/, 'says what replay will do');
    await page.getByRole('button', { name: 'Replay this event' }).click();
    await page.getByText('Replayed: the event is back in the queue').waitFor();
    // The page follows the event while it waits to be folded: no reload.
    await page.locator('#event-status .status.PROCESSED').waitFor({ timeout: 60_000 });
    t.equal(await statusOf(broken!.id), 'PROCESSED', 'folded by the worker');
    t.match(await page.locator('#event-live').textContent(), /Rows the fold wrote or compared/);
  });

  await t.test('find an object by its id from the search box', async (t) => {
    await page.fill('input[name=id]', sub!.id);
    await page.press('input[name=id]', 'Enter');
    await page.waitForURL(url(`/console/objects/${sub!.id}`));
    t.match(await page.locator('h1').textContent(), new RegExp(`subscription ${sub!.id}`));
    t.equal(await page.locator('td .status.good', { hasText: 'current' }).count(), 1, 'the timeline marks the snapshot that won');
    await page.locator('a[href^="/console/objects/cus_"]').first().click();
    await page.waitForURL(/\/console\/objects\/cus_/);
    t.match(await page.locator('h1').textContent(), /^customer /, 'parents are links');
  });

  await t.test('an injected <script> in a payload is shown as text and never runs', async (t) => {
    await page.goto(url(`/console/events/${injected.id}`));
    await page.getByText('<script>window.__pwned=1</script>').first().waitFor();
    t.equal(await page.evaluate('typeof window.__pwned'), 'undefined', 'nothing ran');
    t.equal(await page.locator('main img').count(), 0, 'no element was injected');
    await waitFor(async () => (await db.sql`select 1 from customers where id = 'cus_evil1'`).length === 1, { what: 'the fold' });
    await page.goto(url('/console/objects/cus_evil1'));
    t.match(await page.locator('h1').textContent(), /customer cus_evil1/);
    await page.getByText('<script>window.__pwned=1</script>').first().waitFor();
    t.equal(await page.evaluate('typeof window.__pwned'), 'undefined');
  });

  await t.test('a form without its CSRF token is refused and changes nothing', async (t) => {
    const [done] = await db.sql<{ id: string }[]>`select id::text from events where status = 'PROCESSED' order by id limit 1`;
    await page.goto(url(`/console/events/${done!.id}/replay`));
    await page.evaluate(`document.querySelector('main input[name=csrf]').remove()`);
    await page.getByRole('button', { name: 'Replay this event' }).click();
    await page.getByText('did not come from the console').waitFor();
    t.equal(await statusOf(done!.id), 'PROCESSED', 'not replayed');
  });

  await t.test('keyboard: the skip link first, then the filters and search work from the keyboard', async (t) => {
    await page.goto(url('/console/events'));
    await page.keyboard.press('Tab');
    t.equal(await page.evaluate('document.activeElement.textContent'), 'Skip to content');
    await page.keyboard.press('Enter');
    t.equal(await page.evaluate('document.activeElement.id'), 'main', 'focus moves to the content');
    await page.focus('input[name=type]');
    await page.keyboard.type('invoice.*');
    await page.keyboard.press('Enter');
    await page.waitForURL(/type=invoice\.\*/);
    const types = await page.locator('#rows tr td:nth-child(3)').allTextContents();
    t.ok(types.length > 0 && types.every((x) => x.startsWith('invoice.')), 'filtered from the keyboard');
    await page.focus('input[name=type]');
    const outline = await page.evaluate(`getComputedStyle(document.querySelector('input[name=type]')).outlineStyle`);
    t.not(outline, 'none', 'focus is visible');
  });

  await t.test('following: a new event shows up without a reload', async (t) => {
    await page.goto(url('/console/events?follow=1'));
    await page.locator('#follow').waitFor();
    const fresh = await seedEvent(db.sql, { type: 'charge.refunded' });
    await page.getByText(fresh.event_id).waitFor({ timeout: 30_000 });
    t.equal(await page.getByText(fresh.event_id).count(), 1, 'shown once');
  });

  await t.test('readable on a phone: no page scrolls sideways', async (t) => {
    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, storageState: await context.storageState() });
    const p = await open(phone);
    const paths = ['/console', '/console/events', `/console/events/${broken!.id}`, `/console/objects/${sub!.id}`, '/console/orphans', '/console/subscriptions', '/console/deliveries'];
    for (const path of paths) {
      await p.goto(url(path));
      // A page wider than the phone makes a mobile browser zoom out: innerWidth grows with it.
      const [scroll, width] = (await p.evaluate('[document.documentElement.scrollWidth, window.innerWidth]')) as number[];
      t.ok(scroll! <= 390 && width === 390, `${path}: ${scroll} px wide in a 390 px screen`);
    }
    await phone.close();
  });

  await t.test('without JavaScript every page still reads', async (t) => {
    const plain = await browser.newContext({ javaScriptEnabled: false, storageState: await context.storageState() });
    const p = await plain.newPage();
    await p.goto(url('/console'));
    t.match(await p.locator('main').textContent(), /received: [\d,]+ in all/, 'the charts say their numbers');
    await p.goto(url('/console/events?status=PROCESSED'));
    t.ok((await p.locator('#rows tr').count()) > 0);
    await p.goto(url(`/console/events/${broken!.id}`));
    t.ok(await p.locator('.json details[open]').count(), 'the payload tree opens and folds without a script');
    // The outbox's pages: a subscription (whose types match nothing here, so the relay stays idle).
    const s = await createSubscription(db.sql, { url: 'https://example.com/hooks', description: 'billing', types: ['test.never'], secret: generateSecret() });
    await p.goto(url('/console/subscriptions'));
    t.equal(await p.getByRole('link', { name: s.id }).count(), 1, 'the subscription is listed');
    t.equal(await p.locator('form[method=post] input[name=csrf]').count() > 0, true, 'the create form is a plain form');
    await p.goto(url(`/console/subscriptions/${s.id}`));
    t.match(await p.locator('main').textContent(), /Attempts per minute, last hour.*sent: 0 in all/s, 'its charts say their numbers');
    t.equal(await p.getByRole('button', { name: 'Rotate the secret' }).count(), 1);
    await p.goto(url('/console/deliveries?status=DEAD'));
    t.match(await p.locator('h1').textContent(), /Dead letters/);
    await plain.close();
  });

  t.same(problems, [], 'no CSP violation, script error or dialog on any page');
});

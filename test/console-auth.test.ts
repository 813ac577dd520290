// The console's gate through app.request() against a real database: off without ADMIN_TOKEN,
// sign-in, the session cookie (what it holds and its flags), sign-out, CSRF on every POST, the
// security headers, and pages that carry no inline script or style and escape what events say.
import t from 'tap';
import { createSessions, SESSION_SECONDS } from '../src/console/session.ts';
import { safeNext } from '../src/console/index.ts';
import { createTestDatabase } from './helpers/db.ts';
import { testApp } from './helpers/app.ts';
import { seedEvent } from './helpers/events.ts';
import { CONSOLE_TOKEN, consoleApp, csrfToken, form, getPage, ORIGIN, signIn } from './helpers/console.ts';

const db = await createTestDatabase(t);
const app = consoleApp(db.sql);
const status = async (id: string) => (await db.sql`select status from events where id = ${id}`)[0]!.status as string;

t.test('without ADMIN_TOKEN the console is off and says how to turn it on', async (t) => {
  const off = testApp(db.sql, { ADMIN_TOKEN: undefined });
  for (const path of ['/console', '/console/signin', '/console/events']) {
    const res = await off.request(path);
    t.equal(res.status, 404, path);
    t.match(await res.text(), /Set <code>ADMIN_TOKEN<\/code>/);
  }
  const res = await off.request('/console/signin', form({ token: CONSOLE_TOKEN }));
  t.equal(res.status, 404, 'no sign-in either');
  t.notOk(res.headers.get('set-cookie'));
});

t.test('signed out: every page sends to the sign-in form, htmx requests get HX-Redirect', async (t) => {
  for (const path of ['/console', '/console/events?status=FAILED', '/console/objects/cus_1', '/console/orphans']) {
    const res = await app.request(path);
    t.equal(res.status, 303, path);
    t.equal(res.headers.get('location'), `/console/signin?next=${encodeURIComponent(path)}`);
  }
  const hx = await app.request('/console/events/follow', { headers: { 'hx-request': 'true' } });
  t.equal(hx.status, 401);
  t.match(hx.headers.get('hx-redirect'), /^\/console\/signin\?next=/);
  const page = await app.request('/console/signin');
  t.equal(page.status, 200);
  t.match(await page.text(), /type="password" name="token"/);
});

t.test('a wrong token is refused and sets no cookie', async (t) => {
  for (const token of ['', 'wrong-token-0123456789abcdef', `${CONSOLE_TOKEN}x`, CONSOLE_TOKEN.slice(0, -1)]) {
    const res = await app.request('/console/signin', form({ token }));
    t.equal(res.status, 401, JSON.stringify(token));
    t.notOk(res.headers.get('set-cookie'));
    t.match(await res.text(), /not the admin token/);
  }
});

t.test('sign-in from another origin, or with none, is refused (hono/csrf)', async (t) => {
  const cases: Record<string, string>[] = [{ origin: 'https://evil.example' }, { origin: '' }, { 'sec-fetch-site': 'cross-site', origin: 'null' }];
  for (const headers of cases) {
    const res = await app.request('/console/signin', form({ token: CONSOLE_TOKEN }, headers));
    t.equal(res.status, 403, JSON.stringify(headers));
    t.notOk(res.headers.get('set-cookie'));
  }
});

t.test('the session cookie: not the token, HttpOnly, SameSite=Strict, scoped to /console, Secure behind https', async (t) => {
  const res = await app.request('/console/signin', form({ token: CONSOLE_TOKEN, next: '/console/orphans' }));
  t.equal(res.status, 303);
  t.equal(res.headers.get('location'), '/console/orphans', 'back to where the operator was going');
  const cookie = res.headers.get('set-cookie')!;
  t.match(cookie, /^wi_console=/);
  t.match(cookie, /HttpOnly/);
  t.match(cookie, /SameSite=Strict/);
  t.match(cookie, /Path=\/console/);
  t.match(cookie, new RegExp(`Max-Age=${SESSION_SECONDS}`));
  t.notMatch(cookie, /Secure/, 'plain http: a Secure cookie would never come back');
  t.notOk(cookie.includes(CONSOLE_TOKEN), 'the token itself is not in the cookie');
  t.notOk(cookie.includes(Buffer.from(CONSOLE_TOKEN).toString('base64')), 'nor encoded');

  const https = await app.request('/console/signin', form({ token: CONSOLE_TOKEN }, { 'x-forwarded-proto': 'https', origin: 'https://localhost' }));
  t.equal(https.status, 303, 'behind a TLS proxy the https origin is this site');
  t.match(https.headers.get('set-cookie'), /Secure/);
});

t.test('a forged, altered or expired session is refused', async (t) => {
  const cookie = await signIn(app);
  t.equal((await getPage(app, cookie, '/console/orphans')).status, 200, 'the real one works');
  const value = cookie.split('=')[1]!;
  const [id, expires, mac] = value.split('.');
  const forged = [
    `${id}.${Number(expires) + 3600}.${mac}`, // longer life, same signature
    `${'A'.repeat(24)}.${expires}.${mac}`, // another id
    `${id}.${expires}.${'A'.repeat(43)}`,
    CONSOLE_TOKEN,
    '',
  ];
  for (const v of forged) {
    const res = await app.request('/console/orphans', { headers: { cookie: `wi_console=${v}` } });
    t.equal(res.status, 303, `refused: ${v.slice(0, 20)}...`);
  }
  // Expiry, with a clock of our own.
  let now = 1_000_000;
  const sessions = createSessions(CONSOLE_TOKEN, () => now);
  const issued = sessions.issue();
  t.ok(sessions.read(issued.cookie));
  now += SESSION_SECONDS;
  t.notOk(sessions.read(issued.cookie), 'expired after SESSION_SECONDS');
  t.notOk(createSessions('another-token-0123456789abcdef', () => 1_000_000).read(issued.cookie), 'another ADMIN_TOKEN ends every session');
});

t.test('sign-out ends the session', async (t) => {
  const cookie = await signIn(app);
  const csrf = await csrfToken(app, cookie);
  const res = await app.request('/console/signout', form({ csrf }, { cookie }));
  t.equal(res.status, 303);
  t.match(res.headers.get('set-cookie'), /wi_console=;.*Max-Age=0/);
  t.equal((await app.request('/console/orphans', { headers: { cookie } })).status, 303, 'the old cookie no longer works');
});

t.test('every POST needs the session CSRF token and this origin; a refused replay changes nothing', async (t) => {
  const event = await seedEvent(db.sql, { type: 'invoice.paid', status: 'FAILED', lastError: 'boom', attempts: 8 });
  const cookie = await signIn(app);
  const csrf = await csrfToken(app, cookie);
  const path = `/console/events/${event.id}/replay`;
  const refused: [string, RequestInit][] = [
    ['no token', form({}, { cookie })],
    ['a wrong token', form({ csrf: 'A'.repeat(43) }, { cookie })],
    ['another session token', form({ csrf: await csrfToken(app, await signIn(app)) }, { cookie })],
    ['another origin', form({ csrf }, { cookie, origin: 'https://evil.example' })],
  ];
  for (const [what, init] of refused) {
    const res = await app.request(path, init);
    t.equal(res.status, 403, what);
    t.equal(await status(event.id), 'FAILED', `${what}: not replayed`);
  }
  const bulk = await app.request('/console/events/replay', form({ status: 'FAILED' }, { cookie }));
  t.equal(bulk.status, 403, 'bulk replay without the token');
  t.equal(await status(event.id), 'FAILED');
  const signout = await app.request('/console/signout', form({}, { cookie }));
  t.equal(signout.status, 403, 'even signing out');

  const ok = await app.request(path, form({ csrf }, { cookie }));
  t.equal(ok.status, 303, 'with both');
  t.equal(await status(event.id), 'RECEIVED', 'replayed');
});

t.test('security headers on pages and assets; pages are never cached', async (t) => {
  const cookie = await signIn(app);
  for (const path of ['/console/signin', '/console', '/console/orphans']) {
    const res = await app.request(path, { headers: { cookie } });
    const csp = res.headers.get('content-security-policy') ?? '';
    t.match(csp, /default-src 'none'/, path);
    t.match(csp, /script-src 'self'/);
    t.match(csp, /style-src 'self'/);
    t.match(csp, /frame-ancestors 'none'/);
    t.match(csp, /form-action 'self'/);
    t.notMatch(csp, /unsafe-inline|unsafe-eval/);
    t.equal(res.headers.get('x-frame-options'), 'DENY');
    t.equal(res.headers.get('referrer-policy'), 'no-referrer');
    t.equal(res.headers.get('x-content-type-options'), 'nosniff');
    t.equal(res.headers.get('cache-control'), 'no-store');
  }
  const page = await (await app.request('/console', { headers: { cookie } })).text();
  const assets = [...page.matchAll(/(?:src|href)="(\/console\/assets\/[^"]+)"/g)].map((m) => m[1]!.replaceAll('&amp;', '&'));
  t.ok(assets.length >= 4, 'css and scripts come from /console/assets');
  for (const asset of assets) {
    const res = await app.request(asset);
    t.equal(res.status, 200, asset);
    t.match(res.headers.get('cache-control'), /immutable/, 'versioned by content hash');
  }
  t.equal((await app.request('/console/assets/../../package.json')).status, 404);
  t.equal((await app.request('/console/assets/package.json')).status, 404);
});

t.test('no inline script, style or handler on any page; what an event says is escaped', async (t) => {
  const evil = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">"\'';
  const event = await seedEvent(db.sql, {
    type: 'customer.updated',
    status: 'FAILED',
    lastError: evil,
    object: { id: 'cus_evil1', object: 'customer', name: evil, email: evil, metadata: { [evil]: evil } },
  });
  const cookie = await signIn(app);
  const pages = [
    '/console',
    '/console/events',
    `/console/events?type=${encodeURIComponent(evil)}`,
    `/console/events/${event.id}`,
    `/console/events/${event.id}/replay`,
    '/console/events/replay?status=FAILED',
    '/console/objects/cus_evil1',
    '/console/orphans',
    '/console/signin',
  ];
  for (const path of pages) {
    const { html } = await getPage(app, cookie, path);
    t.notOk(html.includes('<script>window'), `${path}: the payload's script is text`);
    t.notOk(/<img[^>]*onerror/i.test(html), `${path}: no injected element`);
    t.notOk(/<script(?![^>]*\ssrc=)[^>]*>/i.test(html), `${path}: every script has a src`);
    t.notOk(/<style|\sstyle="/i.test(html), `${path}: no inline style`);
    t.notOk(/\son[a-z]+="/i.test(html), `${path}: no inline event handler`);
  }
  const { html } = await getPage(app, cookie, `/console/events/${event.id}`);
  t.ok(html.includes('&lt;script&gt;window.__pwned=1&lt;/script&gt;'), 'shown, escaped');
});

t.test('the redirect after sign-in stays inside the console', async (t) => {
  t.equal(safeNext('/console/events?status=FAILED'), '/console/events?status=FAILED');
  for (const next of ['//evil.example', 'https://evil.example', '/consolex', '/console@evil.example', '/console\\..\\', '/\\evil.example', undefined]) {
    t.equal(safeNext(next), '/console', String(next));
  }
  const res = await app.request('/console/signin', form({ token: CONSOLE_TOKEN, next: '//evil.example/' }));
  t.equal(res.headers.get('location'), '/console');
  t.equal(ORIGIN, 'http://localhost');
});

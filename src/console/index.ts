// The operator's console at /console: server-rendered pages over the same db/ queries as the admin
// API. This file is the gate: security headers on every answer, sign-in and the session cookie,
// CSRF checks on every POST, HTML error pages. The pages are in pages/; it never writes SQL.
import { Hono, type Context } from 'hono';
import { csrf } from 'hono/csrf';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { HTTPException } from 'hono/http-exception';
import { secureHeaders } from 'hono/secure-headers';
import type postgres from 'postgres';
import type { Config } from '../config.ts';
import { HttpError } from '../errors.ts';
import type { AppEnv } from '../http/app.ts';
import type { Logger } from '../log.ts';
import { mountAssets, type Assets } from './assets.ts';
import { html, render } from './html.ts';
import { BASE, notice, page, type View } from './layout.ts';
import { mountEvent } from './pages/event.ts';
import { mountEvents } from './pages/events.ts';
import { mountObject } from './pages/object.ts';
import { mountDeliveries } from './pages/deliveries.ts';
import { mountOrphans } from './pages/orphans.ts';
import { mountOverview } from './pages/overview.ts';
import { signInPage } from './pages/signin.ts';
import { mountSubscriptions } from './pages/subscriptions.ts';
import { createSessions, SESSION_COOKIE, SESSION_SECONDS, type Session, type Sessions } from './session.ts';

export type ConsoleEnv = AppEnv & { Variables: { session: Session; view: View } };
export type ConsoleApp = Hono<ConsoleEnv>;

export type ConsoleDeps = {
  /** The operators' pool (the admin API's), whose statement timeout suits their queries. */
  sql: postgres.Sql;
  /** ADMIN_TOKEN; unset: the console is off. */
  token: string | undefined;
  log: Logger;
  /** For the outbox's pages (URL checks, the rotation overlap). */
  config: Config;
};

/** What the pages get. */
export type PageDeps = { sql: postgres.Sql; log: Logger; config: Config };

// No inline script or style anywhere: scripts and styles come from /console/assets only. uPlot
// draws on a canvas and sizes its elements through the CSSOM, which style-src does not govern.
const CSP = {
  defaultSrc: ["'none'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  formAction: ["'self'"],
  frameAncestors: ["'none'"],
  baseUri: ["'none'"],
};

/** https as the browser sees it: directly, or through a proxy that says so. */
function isHttps(c: Context): boolean {
  const forwarded = c.req.header('x-forwarded-proto')?.split(',')[0]?.trim().toLowerCase();
  return forwarded ? forwarded === 'https' : new URL(c.req.url).protocol === 'https:';
}

/** The origin the browser uses for this service, for the CSRF origin check behind a TLS proxy. */
function publicOrigin(c: Context): string {
  const url = new URL(c.req.url);
  return `${isHttps(c) ? 'https' : url.protocol.slice(0, -1)}://${c.req.header('host') ?? url.host}`;
}

/** Only a path inside the console: never an open redirect. */
export function safeNext(next: string | undefined): string {
  if (!next || !next.startsWith(`${BASE}`) || next.startsWith('//') || /[\\\u0000-\u001f]/.test(next)) return BASE;
  const rest = next.slice(BASE.length);
  return rest === '' || rest.startsWith('/') || rest.startsWith('?') ? next : BASE;
}

export function mountConsole(app: Hono<AppEnv>, deps: ConsoleDeps): void {
  const console_ = new Hono<ConsoleEnv>();
  console_.use(
    secureHeaders({
      contentSecurityPolicy: CSP,
      xFrameOptions: 'DENY',
      referrerPolicy: 'no-referrer',
      crossOriginResourcePolicy: 'same-origin',
      crossOriginOpenerPolicy: 'same-origin',
      strictTransportSecurity: false,
    }),
  );
  const assets = mountAssets(console_, BASE);

  if (!deps.token) {
    // As the admin API: off without ADMIN_TOKEN, and saying how to turn it on.
    console_.all('*', (c) => {
      const body = html`<h1>The console is off</h1>
        <p>Set <code>ADMIN_TOKEN</code> (at least 16 characters, e.g. <code>openssl rand -hex 24</code>) and restart the service to turn it on.</p>`;
      return c.html(render(page({ assets, csrf: undefined }, { title: 'Console off', body })), 404);
    });
    app.route(BASE, console_);
    return;
  }
  const sessions = createSessions(deps.token);
  const pageDeps: PageDeps = { sql: deps.sql, log: deps.log, config: deps.config };

  // Pages carry operators' data: never cached, never from a shared cache.
  console_.use(async (c, next) => {
    await next();
    if (!c.res.headers.has('cache-control')) c.header('Cache-Control', 'no-store');
  });

  // Every POST: the Origin (or Sec-Fetch-Site) must be this site's, and, once signed in, the form
  // must carry the session's token. Either alone would do against today's browsers; both cost nothing.
  console_.use(csrf({ origin: (origin, c) => origin === publicOrigin(c) }));

  console_.get('/signin', (c) => {
    if (sessions.read(getCookie(c, SESSION_COOKIE))) return c.redirect(safeNext(c.req.query('next')), 303);
    return c.html(render(signInPage({ assets, csrf: undefined }, { next: safeNext(c.req.query('next')) })));
  });

  console_.post('/signin', async (c) => {
    const form = await c.req.parseBody();
    const offered = typeof form.token === 'string' ? form.token.trim() : '';
    const next = safeNext(typeof form.next === 'string' ? form.next : undefined);
    if (!offered || !sessions.checkToken(offered)) {
      c.get('log').warn({ ip: c.req.header('x-forwarded-for') }, 'console: sign-in with a wrong token');
      return c.html(render(signInPage({ assets, csrf: undefined }, { next, error: 'That is not the admin token.' })), 401);
    }
    const { cookie } = sessions.issue();
    setCookie(c, SESSION_COOKIE, cookie, {
      path: BASE,
      httpOnly: true,
      sameSite: 'Strict',
      secure: isHttps(c),
      maxAge: SESSION_SECONDS,
    });
    c.get('log').info('console: signed in');
    return c.redirect(next, 303);
  });

  // Everything below needs a session.
  console_.use(async (c, next) => {
    if (c.req.path.startsWith(`${BASE}/assets/`)) return next();
    const session = sessions.read(getCookie(c, SESSION_COOKIE));
    if (!session) return askToSignIn(c);
    if (c.req.method === 'POST') {
      const form = await c.req.parseBody();
      if (!sessions.checkCsrf(session, typeof form.csrf === 'string' ? form.csrf : undefined)) {
        c.get('log').warn({ path: c.req.path }, 'console: POST without the session CSRF token refused');
        const body = notice('bad', 'This form has expired or did not come from the console. Go back, reload the page and try again.');
        return c.html(render(page({ assets, csrf: undefined }, { title: 'Refused', body })), 403);
      }
    }
    c.set('session', session);
    c.set('view', { assets, csrf: sessions.csrfToken(session) });
    await next();
  });

  console_.post('/signout', (c) => {
    sessions.end(c.get('session'));
    deleteCookie(c, SESSION_COOKIE, { path: BASE, secure: isHttps(c) });
    c.get('log').info('console: signed out');
    return c.redirect(`${BASE}/signin`, 303);
  });

  mountOverview(console_, pageDeps);
  mountEvents(console_, pageDeps);
  mountEvent(console_, pageDeps);
  mountObject(console_, pageDeps);
  mountOrphans(console_, pageDeps);
  mountSubscriptions(console_, pageDeps);
  mountDeliveries(console_, pageDeps);

  console_.all('*', (c) => errorPage(c, 404, 'No such page in the console.'));
  console_.onError((err, c) => {
    if (err instanceof HTTPException && err.status === 403) {
      // hono/csrf: a POST from another origin.
      c.get('log').warn({ path: c.req.path, origin: c.req.header('origin') }, 'console: POST from another origin refused');
      return errorPage(c, 403, 'This form did not come from the console (another origin). Open the console and try again.');
    }
    if (err instanceof HttpError) {
      if (err.status >= 500) c.get('log').warn({ err: err.message }, 'console: query refused');
      return errorPage(c, err.status, err.message);
    }
    c.get('log').error({ err }, 'console: unhandled error');
    return errorPage(c, 500, 'Something went wrong on our side; the log has the details. Retry in a moment.');
  });

  app.route(BASE, console_);

  function askToSignIn(c: Context<ConsoleEnv>) {
    const target = `${BASE}/signin?next=${encodeURIComponent(c.req.method === 'GET' ? c.req.path + new URL(c.req.url).search : BASE)}`;
    // htmx follows HX-Redirect with a full page load; a plain browser follows the 303.
    if (c.req.header('hx-request')) return c.body(null, 401, { 'HX-Redirect': target });
    return c.redirect(target, 303);
  }

  function errorPage(c: Context<ConsoleEnv>, status: number, message: string) {
    const view = c.get('view') ?? { assets, csrf: undefined };
    const body = html`<h1>${status === 404 ? 'Not found' : 'Could not show this page'}</h1>${notice('bad', message)}
      <p><a href=${BASE}>Back to the overview</a></p>`;
    return c.html(render(page(view, { title: 'Error', body })), status as 400);
  }
}

export type { Assets, Sessions };

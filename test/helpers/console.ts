// The console as its tests use it: the real app with an ADMIN_TOKEN, signed in through the real
// sign-in form, and served on a real socket for the browser.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type postgres from 'postgres';
import { testApp } from './app.ts';

export const CONSOLE_TOKEN = 'console-test-token-0123456789abcdef';
/** app.request() resolves paths against this origin. */
export const ORIGIN = 'http://localhost';

export function consoleApp(sql: postgres.Sql, overrides: Record<string, string | undefined> = {}) {
  return testApp(sql, { ADMIN_TOKEN: CONSOLE_TOKEN, ...overrides });
}

type App = { request: Hono['request'] };

export function form(fields: Record<string, string | string[]>, headers: Record<string, string> = {}): RequestInit {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) for (const one of Array.isArray(v) ? v : [v]) body.append(k, one);
  return { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN, ...headers } };
}

/** Signs in with the token; returns the Cookie header for the following requests. */
export async function signIn(app: App, token = CONSOLE_TOKEN): Promise<string> {
  const res = await app.request('/console/signin', form({ token, next: '/console' }));
  const cookie = res.headers.get('set-cookie')?.split(';')[0];
  if (res.status !== 303 || !cookie) throw new Error(`sign-in answered ${res.status}`);
  return cookie;
}

/** A signed-in GET: status and HTML. */
export async function getPage(app: App, cookie: string, path: string): Promise<{ status: number; html: string; res: Response }> {
  const res = await app.request(path, { headers: { cookie } });
  return { status: res.status, html: await res.text(), res };
}

/** The session's CSRF token, as the pages' forms carry it. */
export async function csrfToken(app: App, cookie: string): Promise<string> {
  const { html } = await getPage(app, cookie, '/console/orphans');
  const match = /name="csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error('no CSRF field on the page');
  return match[1]!;
}

/** Serves the app on 127.0.0.1 on a free port, for a browser. */
export async function serveApp(app: Hono<any>): Promise<{ url: string; close: () => Promise<void> }> {
  return new Promise((resolve) => {
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }, (info: AddressInfo) => {
      resolve({
        url: `http://127.0.0.1:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
  });
}

// Console sessions. Signing in with ADMIN_TOKEN (compared in constant time, as the admin API does)
// sets a cookie holding a random session id and its expiry, signed with a key derived from the
// token: never the token itself. Each session has its own CSRF token, derived from its id, so the
// server stores nothing. Rotating ADMIN_TOKEN ends every session.
import { createHmac, randomBytes } from 'node:crypto';
import { sameToken } from '../http/admin.ts';

export const SESSION_COOKIE = 'wi_console';
/** An operator's shift: after this the console asks for the token again. */
export const SESSION_SECONDS = 12 * 60 * 60;

export type Session = { id: string; expires: number };

export type Sessions = {
  /** True when `offered` is the admin token. */
  checkToken(offered: string): boolean;
  /** A new session and the cookie value that carries it. */
  issue(): { session: Session; cookie: string };
  /** The session a cookie value carries, if its signature holds, it has not expired and was not ended. */
  read(cookie: string | undefined): Session | undefined;
  /** Signing out: the session's cookie is refused from now on (by this process; it expires anyway). */
  end(session: Session): void;
  /** The CSRF token the session's forms carry. */
  csrfToken(session: Session): string;
  checkCsrf(session: Session, offered: string | undefined): boolean;
};

const mac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest('base64url');

export function createSessions(token: string, now: () => number = () => Math.floor(Date.now() / 1000)): Sessions {
  // A key of its own, so that nothing the cookie carries is computed with the token itself.
  const key = createHmac('sha256', token).update('webhook-inbox console session key v1').digest();
  // Ended sessions until they would have expired anyway. Another instance behind the same load
  // balancer does not know of them: signing out there relies on the cookie being deleted.
  const ended = new Map<string, number>();

  const forget = () => {
    const t = now();
    for (const [id, expires] of ended) if (expires <= t) ended.delete(id);
  };

  return {
    checkToken: (offered) => sameToken(offered, token),
    issue() {
      const session = { id: randomBytes(18).toString('base64url'), expires: now() + SESSION_SECONDS };
      const body = `${session.id}.${session.expires}`;
      return { session, cookie: `${body}.${mac(key, body)}` };
    },
    read(cookie) {
      const match = /^([A-Za-z0-9_-]{24})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(cookie ?? '');
      if (!match) return undefined;
      const [, id, expires, signature] = match as unknown as [string, string, string, string];
      if (!sameToken(signature, mac(key, `${id}.${expires}`))) return undefined;
      if (Number(expires) <= now() || ended.has(id)) return undefined;
      return { id, expires: Number(expires) };
    },
    end(session) {
      forget();
      ended.set(session.id, session.expires);
    },
    csrfToken: (session) => mac(key, `csrf.${session.id}`),
    checkCsrf: (session, offered) => offered !== undefined && sameToken(offered, mac(key, `csrf.${session.id}`)),
  };
}

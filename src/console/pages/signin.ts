// The sign-in page: one field for ADMIN_TOKEN. The form posts to this origin only (CSP
// form-action) and the token never appears in a URL.
import { html, type Node } from '../html.ts';
import { BASE, notice, page, type View } from '../layout.ts';

export function signInPage(view: View, options: { next: string; error?: string }): Node {
  const body = html`<div class="signin">
    <h1>webhook-inbox console</h1>
    ${options.error ? notice('bad', options.error) : null}
    <form class="stack" method="post" action=${`${BASE}/signin`}>
      <input type="hidden" name="next" value=${options.next} />
      <label>Admin token
        <input type="password" name="token" autocomplete="current-password" required autofocus />
      </label>
      <button type="submit">Sign in</button>
    </form>
    <p class="muted">The token is the service's <code>ADMIN_TOKEN</code>. Without one, <code>npm start</code> on the
      embedded Postgres writes a token to <code>.data/admin-token</code>.</p>
  </div>`;
  return page(view, { title: 'Sign in', body });
}

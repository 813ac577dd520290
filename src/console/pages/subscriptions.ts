// Subscriptions (the outbox's receivers): their health and circuit, the outbox's statistics, charts
// of attempts per minute, and what an operator does to one: create, edit, enable or disable, rotate
// its secret (the new one is shown once), recover what failed in a window. Queries and validation
// are the admin API's (db/subscriptions.ts, http/subscriptions.ts); secrets and header values are
// never shown again.
import type { Context } from 'hono';
import { z } from 'zod';
import { sentSeries } from '../../db/console.ts';
import { filterFields } from '../../db/event-filter.ts';
import { listDeliveries } from '../../db/deliveries.ts';
import {
  createSubscription,
  getSubscription,
  listSubscriptions,
  outboxStats,
  recentTransitions,
  recoverDeliveries,
  rotateSecret,
  updateSubscription,
  type OutboxStats,
  type SubscriptionItem,
  type WindowStats,
} from '../../db/subscriptions.ts';
import { BadRequestError, HttpError } from '../../errors.ts';
import { query } from '../../http/admin.ts';
import { subscriptionFields } from '../../http/subscriptions.ts';
import { generateSecret } from '../../outbox/sign.ts';
import { validateSubscriptionUrl } from '../../outbox/ssrf.ts';
import { sentBuckets, sentChart } from '../chart.ts';
import { html, render, type Child, type Node } from '../html.ts';
import { age, BASE, count, csrfField, notice, page, time, type View } from '../layout.ts';
import type { ConsoleApp, ConsoleEnv, PageDeps } from '../index.ts';
import { deliveryRows } from './deliveries.ts';

const ID = /^ep_[0-9a-f]{24}$/;

export function circuit(state: string, enabled: boolean): Node {
  const kind = !enabled || state === 'disabled' ? 'bad' : state === 'closed' ? 'good' : state === 'open' ? 'bad' : 'warn';
  return html`<span class=${`status ${kind}`}>${enabled ? state.replace('_', '-') : 'disabled'}</span>`;
}

const percent = (x: number | null) => (x === null ? '–' : `${(x * 100).toFixed(1)}%`);
const ms = (x: number | null) => (x === null ? '–' : `${Math.round(x)} ms`);

function statsTable(s: OutboxStats): Node {
  const row = (label: string, w: WindowStats) => html`<tr>
    <th scope="row">${label}</th><td class="num">${count(w.delivered)}</td><td class="num">${count(w.failed_attempts)}</td>
    <td class="num">${count(w.dead)}</td><td class="num">${count(w.superseded)}</td><td class="num">${percent(w.success_rate)}</td>
    <td class="num">${ms(w.latency_p50_ms)}</td><td class="num">${ms(w.latency_p99_ms)}</td></tr>`;
  return html`<p>Waiting to be sent: <strong>${count(s.pending)}</strong>${s.pending > 0 ? `, the oldest for ${age(s.oldest_pending_age_s)}` : ''}.</p>
    <div class="table-wrap"><table>
      <thead><tr><th scope="col"></th><th scope="col" class="num">Delivered</th><th scope="col" class="num">Failed attempts</th>
        <th scope="col" class="num">Dead</th><th scope="col" class="num">Superseded</th><th scope="col" class="num">Success rate</th>
        <th scope="col" class="num">Latency p50</th><th scope="col" class="num">p99</th></tr></thead>
      <tbody>${row('Last hour', s.last_hour)}${row('Last 24 hours', s.last_day)}</tbody>
    </table></div>`;
}

/** Comma- or space-separated message types: none means every type. */
function typesOf(text: string): string[] | null {
  const types = text.split(/[\s,]+/).filter((t) => t !== '');
  return types.length === 0 ? null : types;
}

/** One form field through the admin API's own validation; the message names the field. */
function check<T extends z.ZodType>(schema: T, name: string, value: unknown): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  throw new BadRequestError(`${name}: ${r.error.issues[0]!.message}`, name);
}

type FormValues = { url: string; description: string; types: string };

function subscriptionForm(view: View, action: string, values: FormValues, submit: string, extra: Child = null): Node {
  return html`<form class="stack" method="post" action=${action}>
    ${csrfField(view)}
    <label>URL <input type="url" name="url" value=${values.url} required placeholder="https://example.com/hooks" /></label>
    <label>Description <input type="text" name="description" value=${values.description} /></label>
    <label>Message types <input type="text" name="types" value=${values.types} placeholder="invoice.*, customer.updated (empty: every type)" /></label>
    ${extra}
    <p><button type="submit">${submit}</button></p>
  </form>`;
}

function secretShown(view: View, id: string, secret: string, what: string): Node {
  const body = html`<h1>${what}</h1>
    ${notice('good', 'Copy the signing secret now: it is not shown again.')}
    <p><code class="mono">${secret}</code></p>
    <p><a href=${`${BASE}/subscriptions/${id}`}>Go to the subscription</a></p>`;
  return page(view, { title: what, section: 'subscriptions', body });
}

export function mountSubscriptions(app: ConsoleApp, deps: PageDeps): void {
  const { sql, config } = deps;

  async function checkUrl(url: string): Promise<void> {
    check(subscriptionFields.url, 'url', url);
    const checked = await validateSubscriptionUrl(url, { allowHttp: config.OUTBOX_ALLOW_HTTP, allowNetworks: config.OUTBOX_ALLOW_NETWORKS });
    if (!checked.ok) throw new BadRequestError(`url: ${checked.error}`, 'url');
  }

  async function readForm(c: Context<ConsoleEnv>): Promise<{ url: string; description: string | null; types: string[] | null; values: FormValues; enabled: boolean }> {
    const form = await c.req.parseBody();
    const text = (k: string) => (typeof form[k] === 'string' ? (form[k] as string).trim() : '');
    const values = { url: text('url'), description: text('description'), types: text('types') };
    const types = typesOf(values.types);
    if (types) check(subscriptionFields.types, 'types', types);
    if (values.description) check(subscriptionFields.description, 'description', values.description);
    return { url: values.url, description: values.description || null, types, values, enabled: form.enabled === 'on' };
  }

  async function load(id: string): Promise<SubscriptionItem> {
    if (!ID.test(id)) throw new BadRequestError('subscription: expected ep_ and 24 hex digits');
    const found = await query(() => getSubscription(sql, id));
    if (!found) throw new HttpError(404, `no subscription ${id}`);
    return found;
  }

  async function listPage(view: View, options: { error?: string; values?: FormValues } = {}): Promise<Node> {
    const [items, stats] = await query(() => Promise.all([listSubscriptions(sql), outboxStats(sql)]));
    const body = html`<h1>Subscriptions</h1>
      <h2>Every subscription</h2>
      ${statsTable(stats)}
      <h2>Receivers</h2>
      ${items.length === 0
        ? html`<p class="muted">No subscription yet: changes of the object tables are not sent anywhere.</p>`
        : html`<div class="table-wrap"><table>
            <thead><tr><th scope="col">Subscription</th><th scope="col">URL</th><th scope="col">Types</th><th scope="col">Circuit</th>
              <th scope="col">Last success</th><th scope="col">Last failure</th></tr></thead>
            <tbody>${items.map(
              (s) => html`<tr>
                <td><a class="mono" href=${`${BASE}/subscriptions/${s.id}`}>${s.id}</a>${s.description ? html`<br /><span class="muted">${s.description}</span>` : null}</td>
                <td class="mono">${s.url}</td>
                <td class="mono">${s.types ? s.types.join(', ') : 'every type'}</td>
                <td>${circuit(s.circuit.state, s.enabled)}${s.circuit.consecutive_failures > 0 ? html` <span class="muted">${count(s.circuit.consecutive_failures)} failures in a row</span>` : null}</td>
                <td>${time(s.last_success_at)}</td>
                <td>${time(s.last_failure_at)}</td>
              </tr>`,
            )}</tbody></table></div>`}
      <h2>New subscription</h2>
      ${options.error ? notice('bad', options.error) : null}
      ${subscriptionForm(view, `${BASE}/subscriptions`, options.values ?? { url: '', description: '', types: '' }, 'Create')}`;
    return page(view, { title: 'Subscriptions', section: 'subscriptions', body });
  }

  async function detailPage(view: View, s: SubscriptionItem, messages: { error?: string; done?: string } = {}): Promise<Node> {
    const [transitions, stats, recent, day] = await query(() =>
      Promise.all([
        recentTransitions(sql, s.id),
        outboxStats(sql, s.id),
        listDeliveries(sql, { subscription: s.id }, { limit: 20 }),
        sentSeries(sql, 24 * 60, s.id),
      ]),
    );
    const hour = { minutes: day.minutes.slice(-60), sent: day.sent.slice(-60), failed: day.failed.slice(-60) };
    const form = { url: s.url, description: s.description ?? '', types: s.types?.join(', ') ?? '' };
    const body = html`<h1>Subscription <span class="mono">${s.id}</span></h1>
      ${messages.done ? notice('good', messages.done) : null}
      ${messages.error ? notice('bad', messages.error) : null}
      <dl class="facts">
        <dt>URL</dt><dd class="mono">${s.url}</dd>
        <dt>Types</dt><dd class="mono">${s.types ? s.types.join(', ') : 'every type'}</dd>
        <dt>Circuit</dt><dd>${circuit(s.circuit.state, s.enabled)}
          ${s.circuit.consecutive_failures > 0 ? ` ${count(s.circuit.consecutive_failures)} failures in a row` : ''}
          ${s.circuit.failing_since ? html`, failing since ${time(s.circuit.failing_since)}` : null}
          ${s.circuit.next_probe_at ? html`, next probe ${time(s.circuit.next_probe_at)}` : null}</dd>
        ${s.enabled ? null : html`<dt>Disabled</dt><dd>${s.disabled_reason ?? ''} ${time(s.disabled_at)}</dd>`}
        ${s.deleted_at ? html`<dt>Deleted</dt><dd>${time(s.deleted_at)}</dd>` : null}
        <dt>Headers sent</dt><dd class="mono">${s.header_names.length ? s.header_names.join(', ') : 'none'} <span class="muted">(values never shown)</span></dd>
        ${s.previous_secret_expires_at ? html`<dt>Previous secret</dt><dd>still signs until ${time(s.previous_secret_expires_at)}</dd>` : null}
        <dt>Last success</dt><dd>${time(s.last_success_at)}</dd>
        <dt>Last failure</dt><dd>${time(s.last_failure_at)}</dd>
        <dt>Created</dt><dd>${time(s.created_at)}</dd>
      </dl>
      <h2>Statistics</h2>
      ${statsTable(stats)}
      <div class="charts">
        ${sentChart('sub-hour', 'Attempts per minute, last hour', hour, hour)}
        ${sentChart('sub-day', 'Attempts per minute, last 24 hours (mean of each 10 minutes)', sentBuckets(day, 10), day)}
      </div>
      <p><a href=${`${BASE}/deliveries?subscription=${s.id}`}>All its deliveries</a> ·
         <a href=${`${BASE}/deliveries?subscription=${s.id}&status=DEAD`}>Its dead letters</a></p>
      <h2>Recent deliveries</h2>
      ${deliveryRows(recent.items, { select: false })}
      <h2>Circuit changes</h2>
      ${transitions.length === 0
        ? html`<p class="muted">None.</p>`
        : html`<div class="table-wrap"><table><thead><tr><th scope="col">When</th><th scope="col">From</th><th scope="col">To</th><th scope="col">Why</th></tr></thead>
            <tbody>${transitions.map((t) => html`<tr><td>${time(t.at)}</td><td>${t.from}</td><td>${t.to}</td><td>${t.reason}</td></tr>`)}</tbody></table></div>`}
      ${s.deleted_at
        ? null
        : html`<div class="cols">
            <section aria-labelledby="edit"><h2 id="edit">Edit</h2>
              ${subscriptionForm(view, `${BASE}/subscriptions/${s.id}`, form, 'Save',
                html`<label class="check"><input type="checkbox" name="enabled" checked=${s.enabled} /> Enabled (enabling also closes its circuit)</label>`)}
            </section>
            <section aria-labelledby="recover"><h2 id="recover">Recover</h2>
              <p>Send again what failed or died in a window (by its last attempt): those deliveries become pending and are due now.</p>
              <form class="stack" method="post" action=${`${BASE}/subscriptions/${s.id}/recover`}>
                ${csrfField(view)}
                <label>Since <input type="text" name="since" required placeholder="24h, 2024-05-01T18:00:00Z" /></label>
                <label>Until <input type="text" name="until" placeholder="empty: now" /></label>
                <p><button type="submit">Recover</button></p>
              </form>
              <h2>Signing secret</h2>
              <form method="post" action=${`${BASE}/subscriptions/${s.id}/rotate-secret`}>
                ${csrfField(view)}
                <p>A new secret, shown once; the old one keeps signing beside it for ${age(config.OUTBOX_ROTATION_OVERLAP / 1000)}.</p>
                <button type="submit" class="danger">Rotate the secret</button>
              </form>
            </section>
          </div>`}`;
    return page(view, { title: `Subscription ${s.id}`, section: 'subscriptions', body, charts: true });
  }

  app.get('/subscriptions', async (c) => c.html(render(await listPage(c.get('view')))));

  app.post('/subscriptions', async (c) => {
    const view = c.get('view');
    let values: FormValues = { url: '', description: '', types: '' };
    try {
      const f = await readForm(c);
      values = f.values;
      await checkUrl(f.url);
      const secret = generateSecret();
      const created = await query(() => createSubscription(sql, { url: f.url, description: f.description ?? undefined, types: f.types ?? undefined, secret }));
      c.get('log').info({ subscriptionId: created.id, types: created.types }, 'console: subscription created');
      return c.html(render(secretShown(view, created.id, secret, 'Subscription created')), 201);
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      return c.html(render(await listPage(view, { error: err.message, values })), 400);
    }
  });

  app.get('/subscriptions/:id', async (c) => c.html(render(await detailPage(c.get('view'), await load(c.req.param('id'))))));

  app.post('/subscriptions/:id', async (c) => {
    const s = await load(c.req.param('id'));
    try {
      const f = await readForm(c);
      if (f.url !== s.url) await checkUrl(f.url);
      const updated = await query(() => updateSubscription(sql, s.id, { url: f.url, description: f.description, types: f.types, enabled: f.enabled }));
      if (!updated) throw new HttpError(404, `no subscription ${s.id}`);
      c.get('log').info({ subscriptionId: s.id }, 'console: subscription changed');
      return c.html(render(await detailPage(c.get('view'), updated, { done: 'Saved.' })));
    } catch (err) {
      if (!(err instanceof BadRequestError)) throw err;
      return c.html(render(await detailPage(c.get('view'), s, { error: err.message })), 400);
    }
  });

  app.post('/subscriptions/:id/rotate-secret', async (c) => {
    const s = await load(c.req.param('id'));
    const secret = generateSecret();
    const rotated = await query(() => rotateSecret(sql, s.id, secret, config.OUTBOX_ROTATION_OVERLAP));
    if (!rotated) throw new HttpError(404, `no subscription ${s.id}`);
    c.get('log').info({ subscriptionId: s.id }, 'console: subscription secret rotated');
    return c.html(render(secretShown(c.get('view'), s.id, secret, 'Secret rotated')));
  });

  app.post('/subscriptions/:id/recover', async (c) => {
    const s = await load(c.req.param('id'));
    const form = await c.req.parseBody();
    const window = z
      .object({ since: filterFields.from.unwrap(), until: filterFields.to })
      .safeParse({ since: form.since, until: typeof form.until === 'string' && form.until.trim() !== '' ? form.until : undefined });
    if (!window.success) return c.html(render(await detailPage(c.get('view'), s, { error: `${String(window.error.issues[0]!.path[0])}: ${window.error.issues[0]!.message}` })), 400);
    const recovered = await query(() => recoverDeliveries(sql, s.id, window.data.since, window.data.until));
    c.get('log').info({ subscriptionId: s.id, recovered }, 'console: deliveries recovered');
    return c.html(render(await detailPage(c.get('view'), s, { done: `${count(recovered)} deliveries will be sent again.` })));
  });
}

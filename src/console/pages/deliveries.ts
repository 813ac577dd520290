// Deliveries: what the outbox sent, is sending or gave up on, filtered by status, subscription and
// object, newest first; the dead-letter queue is status DEAD. One delivery shows every attempt and
// what came back, and its message. Replay (one, the ones ticked, or all a filter matches) goes
// through a confirmation that counts. Queries are the admin API's (db/deliveries.ts).
import type { Context } from 'hono';
import {
  DELIVERY_STATUSES,
  decodeDeliveryCursor,
  getDelivery,
  listDeliveries,
  replayDeliveries,
  replayDryRun,
  type DeliveryFilter,
  type DeliveryItem,
  type DeliveryStatus,
  type ReplayTarget,
} from '../../db/deliveries.ts';
import { BadRequestError, HttpError } from '../../errors.ts';
import { query } from '../../http/admin.ts';
import { withParams } from '../filters.ts';
import { html, render, type Node } from '../html.ts';
import { jsonTree } from '../json-tree.ts';
import { BASE, count, csrfField, notice, objectLink, page, time, type View } from '../layout.ts';
import type { ConsoleApp, ConsoleEnv, PageDeps } from '../index.ts';

const PAGE_SIZE = 50;
const SUB = /^ep_[0-9a-f]{24}$/;
const OBJECT = /^[A-Za-z0-9_.-]{3,255}$/;

function deliveryStatus(s: DeliveryStatus): Node {
  const kind = s === 'DELIVERED' ? 'good' : s === 'DEAD' ? 'bad' : s === 'FAILED' ? 'warn' : 'none';
  return html`<span class=${`status ${kind}`}>${s}</span>`;
}

/** The filter from a query string or a posted form; a bad field is named, never a 500. */
function readFilter(get: (name: string) => string[]): { filter: DeliveryFilter; params: URLSearchParams; error?: string } {
  const params = new URLSearchParams();
  const filter: DeliveryFilter = {};
  const status = get('status').flatMap((s) => s.split(',')).map((s) => s.trim().toUpperCase()).filter((s) => s !== '');
  const bad = status.find((s) => !(DELIVERY_STATUSES as readonly string[]).includes(s));
  if (bad) return { filter, params, error: `status: expected ${DELIVERY_STATUSES.join(', ')}` };
  if (status.length > 0) {
    filter.status = status as DeliveryStatus[];
    for (const s of status) params.append('status', s);
  }
  const sub = (get('subscription')[0] ?? '').trim();
  if (sub) {
    if (!SUB.test(sub)) return { filter, params, error: 'subscription: expected ep_ and 24 hex digits' };
    filter.subscription = sub;
    params.set('subscription', sub);
  }
  const object = (get('object_id')[0] ?? '').trim();
  if (object) {
    if (!OBJECT.test(object)) return { filter, params, error: 'object_id: expected a Stripe id such as in_1Abc' };
    filter.object_id = object;
    params.set('object_id', object);
  }
  return { filter, params };
}

export function deliveryRows(items: DeliveryItem[], options: { select: boolean }): Node {
  if (items.length === 0) return html`<p class="muted">No deliveries.</p>`;
  return html`<div class="table-wrap"><table>
    <thead><tr>
      ${options.select ? html`<th scope="col"><span class="visually-hidden">Select</span></th>` : null}
      <th scope="col">Delivery</th><th scope="col">Created</th><th scope="col">Message</th><th scope="col">Subscription</th>
      <th scope="col">Status</th><th scope="col" class="num">Attempts</th><th scope="col">Last answer</th>
    </tr></thead>
    <tbody>${items.map(
      (d) => html`<tr>
        ${options.select
          ? html`<td>${d.status === 'DEAD' || d.status === 'FAILED' ? html`<input type="checkbox" name="ids" value=${d.id} form="replay-selected" aria-label=${`Select delivery ${d.id}`} />` : null}</td>`
          : null}
        <td><a class="mono" href=${`${BASE}/deliveries/${d.id}`}>#${d.id}</a></td>
        <td>${time(d.created_at)}</td>
        <td class="mono">${d.type} ${objectLink(d.object_id)} v${String(d.version)}</td>
        <td><a class="mono" href=${`${BASE}/subscriptions/${d.subscription_id}`}>${d.subscription_id}</a></td>
        <td>${deliveryStatus(d.status)}</td>
        <td class="num">${String(d.attempt_count)}</td>
        <td class="err">${d.last_status ? `HTTP ${d.last_status}` : ''} ${d.last_error ?? ''}</td>
      </tr>`,
    )}</tbody>
  </table></div>`;
}

function replayConfirm(view: View, target: ReplayTarget, params: URLSearchParams, matched: number, sample: DeliveryItem[]): Node {
  const body = html`<h1>Send ${count(matched)} deliveries again?</h1>
    <p>Each becomes pending, due now, with its attempts counted afresh; the relay sends it with the same
      webhook-id, so a receiver that already has it can tell. A version older than one the subscriber
      already received is never sent (it is superseded instead). Only DEAD and FAILED deliveries of
      subscriptions not deleted are sent again.</p>
    ${matched === 0
      ? notice('info', 'Nothing to send again.')
      : html`<form method="post" action=${`${BASE}/deliveries/replay`}>
          ${csrfField(view)}
          ${'ids' in target
            ? target.ids.map((id) => html`<input type="hidden" name="ids" value=${id} />`)
            : [...params].map(([k, v]) => html`<input type="hidden" name=${k} value=${v} />`)}
          <input type="hidden" name="confirmed" value="1" />
          <p><button type="submit" class="danger">Send ${count(matched)} again</button>
             <a class="button secondary" href=${withParams(`${BASE}/deliveries`, params)}>Cancel</a></p>
        </form>`}
    ${sample.length > 0 ? html`<h2>The first ${sample.length}</h2>${deliveryRows(sample, { select: false })}` : null}`;
  return page(view, { title: 'Replay deliveries', section: 'deliveries', body });
}

function formValues(form: Record<string, string | File | (string | File)[]>) {
  return (name: string) => {
    const v = form[name];
    return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');
  };
}

export function mountDeliveries(app: ConsoleApp, deps: PageDeps): void {
  const { sql } = deps;

  app.get('/deliveries', async (c) => {
    const view = c.get('view');
    const { filter, params, error: filterError } = readFilter((n) => c.req.queries(n) ?? []);
    const cursorText = c.req.query('cursor');
    const cursor = cursorText ? decodeDeliveryCursor(cursorText) : undefined;
    const error = filterError ?? (cursorText && !cursor ? 'cursor: not a cursor from a previous page' : undefined);
    const listing = error ? { items: [], next_cursor: null } : await query(() => listDeliveries(sql, filter, { limit: PAGE_SIZE, cursor }));
    const dead = filter.status?.length === 1 && filter.status[0] === 'DEAD';
    const body = html`<h1>${dead ? 'Dead letters' : 'Deliveries'}</h1>
      <form class="filters" method="get" action=${`${BASE}/deliveries`}>
        <fieldset><legend>Status</legend>
          ${DELIVERY_STATUSES.map((s) => html`<label><input type="checkbox" name="status" value=${s} checked=${filter.status?.includes(s) ?? false} /> ${s}</label>`)}
        </fieldset>
        <label>Subscription <input type="text" name="subscription" value=${filter.subscription ?? ''} placeholder="ep_..." size="28" /></label>
        <label>Object <input type="text" name="object_id" value=${filter.object_id ?? ''} placeholder="in_..." size="20" /></label>
        <button type="submit">Filter</button> <a href=${`${BASE}/deliveries`}>Clear</a>
      </form>
      ${error ? notice('bad', error) : null}
      ${c.req.query('replayed') ? notice('good', `${c.req.query('replayed')} deliveries will be sent again.`) : null}
      <p class="pager">
        <a href=${`${BASE}/deliveries?status=DEAD`}>Dead letters</a>
        <a href=${withParams(`${BASE}/deliveries/replay`, params)}>Send again every DEAD or FAILED one this filter matches…</a>
      </p>
      <form id="replay-selected" method="post" action=${`${BASE}/deliveries/replay`}>
        ${csrfField(view)}
        <button type="submit" class="secondary">Send the selected again…</button>
      </form>
      ${deliveryRows(listing.items, { select: true })}
      ${listing.next_cursor ? html`<p class="pager"><a rel="next" href=${withParams(`${BASE}/deliveries`, params, { cursor: listing.next_cursor })}>Older →</a></p>` : null}`;
    return c.html(render(page(view, { title: dead ? 'Dead letters' : 'Deliveries', section: 'deliveries', body })), error ? 400 : 200);
  });

  // Bulk replay: GET (a filter) or POST without `confirmed` (ticked ids) shows what would be sent;
  // the POST with `confirmed` sends.
  async function replay(c: Context<ConsoleEnv>, get: (name: string) => string[], confirmed: boolean) {
    const view = c.get('view');
    const ids = get('ids').filter((id) => /^[1-9]\d{0,17}$/.test(id));
    const { filter, params, error } = readFilter(get);
    if (error) throw new BadRequestError(error);
    const target: ReplayTarget = ids.length > 0 ? { ids: ids.slice(0, 10_000) } : { filter };
    if (!confirmed) {
      const dry = await query(() => replayDryRun(sql, target));
      return c.html(render(replayConfirm(view, target, params, dry.matched, dry.sample)));
    }
    const done = await query(() => replayDeliveries(sql, target));
    c.get('log').info({ replayed: done.length }, 'console: deliveries replayed');
    return c.redirect(withParams(`${BASE}/deliveries`, params, { replayed: String(done.length) }), 303);
  }

  app.get('/deliveries/replay', (c) => replay(c, (n) => c.req.queries(n) ?? [], false));
  app.post('/deliveries/replay', async (c) => {
    const get = formValues(await c.req.parseBody({ all: true }));
    return replay(c, get, get('confirmed')[0] === '1');
  });

  app.get('/deliveries/:id', async (c) => {
    const id = c.req.param('id');
    if (!/^[1-9]\d{0,17}$/.test(id)) throw new BadRequestError('delivery: expected its number');
    const d = await query(() => getDelivery(sql, id));
    if (!d) throw new HttpError(404, `no delivery ${id}`);
    const view = c.get('view');
    const body = html`<h1>Delivery <span class="mono">#${d.id}</span></h1>
      <dl class="facts">
        <dt>Status</dt><dd>${deliveryStatus(d.status)}${d.next_attempt_at ? html` next attempt ${time(d.next_attempt_at)}` : null}</dd>
        <dt>Message</dt><dd class="mono">${d.message_id} · ${d.type} ${objectLink(d.object_id)} v${String(d.version)}${d.previous_version === null ? '' : ` (after v${d.previous_version})`}</dd>
        <dt>Subscription</dt><dd><a class="mono" href=${`${BASE}/subscriptions/${d.subscription_id}`}>${d.subscription_id}</a></dd>
        ${d.body.source_event ? html`<dt>From event</dt><dd><a class="mono" href=${`${BASE}/events/${encodeURIComponent(d.body.source_event)}`}>${d.body.source_event}</a></dd>` : null}
        <dt>Created</dt><dd>${time(d.created_at)}</dd>
        <dt>Finished</dt><dd>${time(d.finished_at)}</dd>
        ${d.superseded_by ? html`<dt>Superseded by</dt><dd><a href=${`${BASE}/deliveries/${d.superseded_by}`}>#${d.superseded_by}</a></dd>` : null}
      </dl>
      ${d.status === 'DEAD' || d.status === 'FAILED'
        ? html`<form method="post" action=${`${BASE}/deliveries/replay`}>${csrfField(view)}<input type="hidden" name="ids" value=${d.id} />
            <button type="submit">Send again…</button></form>`
        : null}
      <h2>Attempts</h2>
      ${d.attempts.length === 0
        ? html`<p class="muted">Not sent yet.</p>`
        : html`<div class="table-wrap"><table>
            <thead><tr><th scope="col" class="num">#</th><th scope="col">At</th><th scope="col" class="num">Took</th><th scope="col">Answer</th><th scope="col">Error</th><th scope="col">Response body</th></tr></thead>
            <tbody>${d.attempts.map(
              (a) => html`<tr><td class="num">${String(a.attempt)}</td><td>${time(a.attempted_at)}</td><td class="num">${count(a.duration_ms)} ms</td>
                <td>${a.status_code === null ? a.outcome : `HTTP ${a.status_code}`}</td><td class="err">${a.error ?? ''}</td>
                <td class="err mono">${a.response_body ?? ''}</td></tr>`,
            )}</tbody></table></div>`}
      <h2>What it sends</h2>
      ${jsonTree({ links: d.body.links, data: d.body.data }, 2)}`;
    return c.html(render(page(view, { title: `Delivery ${d.id}`, section: 'deliveries', body })));
  });
}

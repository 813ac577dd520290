// One event: its status, attempts and last error, what its fold did (the rows it wrote, as links;
// the links it parked and whether they still wait), its verified payload as a folding tree, and
// Replay, behind a page that says what replay will do. While the event waits to be folded, the
// page updates itself (htmx; without JavaScript it reloads).
import type { Context } from 'hono';
import { EVENT_REF_HELP, parseEventRef, type EventRef } from '../../db/event-filter.ts';
import { stillWaiting } from '../../db/console.ts';
import { getEvent, type EventDetail } from '../../db/event-lookup.ts';
import type { FoldResult, LinkRef } from '../../db/fold.ts';
import { replayEvent } from '../../db/replay.ts';
import { BadRequestError, EventNotFoundError } from '../../errors.ts';
import { query } from '../../http/admin.ts';
import { html, render, type Child, type Node } from '../html.ts';
import { jsonTree } from '../json-tree.ts';
import { BASE, csrfField, notice, objectLink, page, status, time, type View } from '../layout.ts';
import type { ConsoleApp, ConsoleEnv, PageDeps } from '../index.ts';

const POLL_EVERY_S = 2;

function ref(c: Context<ConsoleEnv>): EventRef {
  const r = parseEventRef(c.req.param('ref') ?? '');
  if (!r) throw new BadRequestError(`event: ${EVENT_REF_HELP}`);
  return r;
}

async function load(deps: PageDeps, c: Context<ConsoleEnv>): Promise<EventDetail> {
  const event = await query(() => getEvent(deps.sql, ref(c)));
  if (!event) throw new EventNotFoundError(c.req.param('ref') ?? '');
  return event;
}

const eventUrl = (e: { id: string }) => `${BASE}/events/${e.id}`;

/** A fold's result, with lists an older or hand-written result may lack as empty ones. */
function foldResult(r: unknown): FoldResult | undefined {
  if (typeof r !== 'object' || r === null || !Array.isArray((r as FoldResult).objects)) return undefined;
  const f = r as Partial<FoldResult>;
  return { objects: f.objects ?? [], parked: Array.isArray(f.parked) ? f.parked : [], resolved: Array.isArray(f.resolved) ? f.resolved : [] };
}

function linkText(l: LinkRef): Node {
  return html`<span>${objectLink(l.child_id)} <span class="muted">${l.link_column}</span> → ${objectLink(l.parent_id)}</span>`;
}

function foldSection(event: EventDetail, waiting: LinkRef[]): Node {
  const raw = event.result;
  if (raw === null || raw === undefined) {
    return html`<p class="muted">${event.status === 'RECEIVED' ? 'Not folded yet.' : 'No result recorded.'}</p>`;
  }
  const r = foldResult(raw);
  if (!r) {
    const ignored = typeof raw === 'object' && 'ignored' in raw ? String((raw as { ignored: unknown }).ignored) : undefined;
    return ignored !== undefined ? html`<p>Ignored: ${ignored}</p>` : jsonTree(raw, 2);
  }
  const stillWaits = new Set(waiting.map((w) => `${w.child_table}/${w.child_id}/${w.link_column}/${w.parent_id}`));
  return html`<div>
    ${r.objects.length === 0
      ? html`<p class="muted">It wrote no rows.</p>`
      : html`<div class="table-wrap"><table>
          <caption class="muted">Rows the fold wrote or compared</caption>
          <thead><tr><th scope="col">Table</th><th scope="col">Object</th><th scope="col">Outcome</th><th scope="col" class="num">Version</th></tr></thead>
          <tbody>${r.objects.map(
            (o) => html`<tr><td>${o.table}</td><td>${objectLink(o.id)}</td><td>${o.action}</td><td class="num">${o.version === null ? '–' : String(o.version)}</td></tr>`,
          )}</tbody></table></div>`}
    ${r.parked.length > 0
      ? html`<h3>Links it parked (the parent had not arrived)</h3><ul>${r.parked.map(
          (l) => html`<li>${linkText(l)} ${stillWaits.has(`${l.child_table}/${l.child_id}/${l.link_column}/${l.parent_id}`) ? html`<span class="status warn">still waits</span>` : html`<span class="status good">resolved since</span>`}</li>`,
        )}</ul>`
      : null}
    ${r.resolved.length > 0 ? html`<h3>Links it resolved (it brought a parent others waited for)</h3><ul>${r.resolved.map((l) => html`<li>${linkText(l)}</li>`)}</ul>` : null}
  </div>`;
}

/** The part that changes while the event is folded; it polls itself until the event is finished. */
function live(event: EventDetail, waiting: LinkRef[], replayed: boolean): Node {
  const waitingForFold = event.status === 'RECEIVED';
  return html`<div id="event-live" hx-get=${waitingForFold ? eventUrl(event) : undefined} hx-trigger=${waitingForFold ? `every ${POLL_EVERY_S}s` : undefined}
      hx-select="#event-live" hx-swap="outerHTML">
    ${replayed ? notice('good', 'Replayed: the event is back in the queue and will be folded again.') : null}
    <dl class="facts">
      <dt>Status</dt><dd id="event-status">${status(event.status)}${waitingForFold ? html` <span class="muted">${event.attempts > 0 ? 'retrying' : 'waiting to be folded'}, due ${time(event.next_attempt_at)}</span>` : null}</dd>
      <dt>Attempts</dt><dd>${String(event.attempts)}</dd>
      <dt>Received</dt><dd>${time(event.received_at)}</dd>
      <dt>Finished</dt><dd>${time(event.processed_at)}</dd>
      ${event.locked_until && waitingForFold ? html`<dt>Lease</dt><dd>${event.locked_by ?? ''} until ${time(event.locked_until)}</dd>` : null}
      <dt>Last error</dt><dd>${event.last_error ? html`<pre class="json">${event.last_error}</pre>` : html`<span class="muted">none</span>`}</dd>
    </dl>
    <h2>What the fold did</h2>
    ${foldSection(event, waiting)}
  </div>`;
}

function eventPage(view: View, event: EventDetail, waiting: LinkRef[], replayed: boolean): Node {
  const object = (event.payload as { data?: { object?: { id?: unknown; object?: unknown } } } | null)?.data?.object;
  const body = html`<h1><span class="mono">${event.type}</span></h1>
    <dl class="facts">
      <dt>Event</dt><dd class="mono">${event.source}:${event.event_id} <span class="muted">(#${event.id})</span></dd>
      ${event.object_id ? html`<dt>About</dt><dd>${typeof object?.object === 'string' ? `${object.object} ` : ''}${objectLink(event.object_id)}</dd>` : null}
      ${event.object_customer ? html`<dt>Customer</dt><dd>${objectLink(event.object_customer)}</dd>` : null}
      <dt>Created at the source</dt><dd>${time(event.created)}</dd>
      ${event.api_version ? html`<dt>API version</dt><dd class="mono">${event.api_version}</dd>` : null}
      ${event.account ? html`<dt>Account</dt><dd class="mono">${event.account}</dd>` : null}
      ${event.livemode === null ? null : html`<dt>Mode</dt><dd>${event.livemode ? 'live' : 'test'}</dd>`}
    </dl>
    <p><a class="button" href=${`${eventUrl(event)}/replay`}>Replay…</a></p>
    ${live(event, waiting, replayed)}
    <h2>Payload <span class="muted">(as received and verified)</span></h2>
    ${jsonTree(event.payload, 3)}`;
  return page(view, { title: `${event.type} ${event.event_id}`, section: 'events', body, refreshSeconds: event.status === 'RECEIVED' ? 5 : undefined });
}

function replayConfirm(view: View, event: EventDetail): Node {
  const leased = event.status === 'RECEIVED' && event.locked_until !== null && event.locked_until > new Date();
  const what: Child = html`<ul>
    <li>Its status becomes <strong>RECEIVED</strong> (now ${event.status}), its attempts 0, and it is due at once: a worker folds it again in a moment.</li>
    <li>Rows whose snapshot is newer than this event's stay as they are (the result will say <em>stale</em>); rows holding this event's own snapshot are compared again (<em>unchanged</em>).</li>
    <li>Links to parents that have not arrived are parked again; the last error stays until the next attempt replaces it.</li>
    ${event.status === 'IGNORED' ? html`<li>It was ignored (${String((event.result as { ignored?: unknown } | null)?.ignored ?? 'not folded')}): unless that changed, it will be ignored again.</li>` : null}
  </ul>`;
  const body = html`<h1>Replay <span class="mono">${event.event_id}</span>?</h1>
    <p class="mono">${event.type} · received ${time(event.received_at)}</p>
    ${what}
    ${leased
      ? notice('bad', 'A worker is folding this event right now; replay it once its lease ends.')
      : html`<form method="post" action=${`${eventUrl(event)}/replay`}>
          ${csrfField(view)}
          <button type="submit" class="danger">Replay this event</button>
          <a class="button secondary" href=${eventUrl(event)}>Cancel</a>
        </form>`}`;
  return page(view, { title: 'Replay event', section: 'events', body });
}

export function mountEvent(app: ConsoleApp, deps: PageDeps): void {
  app.get('/events/:ref', async (c) => {
    const event = await load(deps, c);
    const parked = foldResult(event.result)?.parked ?? [];
    const waiting = await query(() => stillWaiting(deps.sql, parked));
    return c.html(render(eventPage(c.get('view'), event, waiting, c.req.query('replayed') === '1')));
  });

  app.get('/events/:ref/replay', async (c) => {
    const event = await load(deps, c);
    return c.html(render(replayConfirm(c.get('view'), event)));
  });

  app.post('/events/:ref/replay', async (c) => {
    const done = await query(() => replayEvent(deps.sql, ref(c)));
    if (done.outcome === 'missing') throw new EventNotFoundError(c.req.param('ref') ?? '');
    if (done.outcome === 'leased') {
      const event = await load(deps, c);
      return c.html(render(replayConfirm(c.get('view'), event)), 409);
    }
    c.get('log').info({ id: done.id }, 'console: event replayed');
    return c.redirect(`${BASE}/events/${done.id}?replayed=1`, 303);
  });
}

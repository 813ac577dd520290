// Events: the admin API's filters (status, source, type pattern, time range), keyset pages newest
// first, following new events as they arrive (htmx polls; without JavaScript the page reloads), and
// replaying every event a filter matches, after a confirmation that counts them.
import type { Context } from 'hono';
import { newerEvents, settledCursors, SETTLED_SECONDS, type CursorRow } from '../../db/console.ts';
import { encodeCursor, isEmptyFilter } from '../../db/event-filter.ts';
import { listEvents, type EventItem } from '../../db/event-lookup.ts';
import { countReplayable, replayEvents, sampleReplayable } from '../../db/replay.ts';
import { EVENT_STATUSES } from '../../db/schema.ts';
import { query } from '../../http/admin.ts';
import { filterParams, readCursor, readFilter, withParams, type FilterForm, type ParsedFilter } from '../filters.ts';
import { html, render, renderFragment, type Node } from '../html.ts';
import { BASE, count, csrfField, eventLink, notice, page, status, time, type View } from '../layout.ts';
import type { ConsoleApp, ConsoleEnv, PageDeps } from '../index.ts';

const PAGE_SIZE = 50;
const FOLLOW_BATCH = 100;
const FOLLOW_EVERY_S = 3;
const REPLAY_SAMPLE = 10;

const fromQuery = (c: Context<ConsoleEnv>): ParsedFilter => readFilter((name) => c.req.queries(name) ?? []);

function filterForm(form: FilterForm, follow: boolean): Node {
  return html`<form class="filters" method="get" action=${`${BASE}/events`}
      hx-get=${`${BASE}/events`} hx-target="#results" hx-select="#results" hx-swap="outerHTML" hx-push-url="true">
    <fieldset>
      <legend>Status</legend>
      ${EVENT_STATUSES.map(
        (s) => html`<label><input type="checkbox" name="status" value=${s} checked=${form.status.includes(s)} /> ${s}</label>`,
      )}
    </fieldset>
    <label>Source <input type="text" name="source" value=${form.source} placeholder="stripe" size="10" /></label>
    <label>Type <input type="text" name="type" value=${form.type} placeholder="invoice.*" size="18" /></label>
    <label>From <input type="text" name="from" value=${form.from} placeholder="24h, 2024-05-01" size="14" /></label>
    <label>To <input type="text" name="to" value=${form.to} placeholder="2024-05-02T00:00:00Z" size="14" /></label>
    ${follow ? html`<input type="hidden" name="follow" value="1" />` : null}
    <button type="submit">Filter</button>
    <a href=${`${BASE}/events`}>Clear</a>
  </form>`;
}

export function eventRow(e: EventItem): Node {
  const error = e.last_error && e.last_error.length > 160 ? `${e.last_error.slice(0, 160)}…` : e.last_error;
  return html`<tr>
    <td>${time(e.received_at)}</td>
    <td>${eventLink(e)}</td>
    <td class="mono">${e.type}</td>
    <td>${e.source}</td>
    <td>${status(e.status)}</td>
    <td class="num">${String(e.attempts)}</td>
    <td class="err">${error ?? ''}</td>
  </tr>`;
}

const HEAD = html`<thead><tr>
  <th scope="col">Received</th><th scope="col">Event</th><th scope="col">Type</th><th scope="col">Source</th>
  <th scope="col">Status</th><th scope="col" class="num">Attempts</th><th scope="col">Last error</th>
</tr></thead>`;

type FollowState = { after: string | undefined; shown: string[] };

/** The row that polls for newer events and replaces itself with the next one (and the new rows). */
function followRow(params: URLSearchParams, state: FollowState, behind: boolean): Node {
  const url = withParams(`${BASE}/events/follow`, params, { after: state.after, shown: state.shown.join(',') || undefined });
  return html`<tr id="follow" hx-get=${url} hx-trigger=${`every ${FOLLOW_EVERY_S}s`} hx-swap="outerHTML">
    <td colspan="7" class="muted" aria-live="polite">
      ${behind ? 'More events arrived than one update shows; catching up.' : `Following: new events appear here (events show up about ${SETTLED_SECONDS} s after they arrive).`}
    </td>
  </tr>`;
}

/**
 * Where following continues after these rows (oldest first): after the newest settled one; the
 * unsettled ones after it are fetched again by the next poll, and must not be shown twice.
 */
export function followState(rows: CursorRow[], previous: FollowState): FollowState {
  let after = previous.after;
  const shown: string[] = [];
  for (const r of rows) {
    if (r.settled) after = encodeCursor(r.cursor_time, r.id);
    else shown.push(r.id);
  }
  return { after, shown };
}

async function followStart(deps: PageDeps, items: EventItem[]): Promise<FollowState> {
  const rows = (await query(() => settledCursors(deps.sql, items.map((i) => i.id)))).reverse();
  if (rows.length === 0) {
    // Nothing on screen yet: start from now, less the settling time.
    const [now] = await query(() => deps.sql<{ t: string }[]>`
      select to_char((now() - make_interval(secs => ${SETTLED_SECONDS})) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as t`);
    return { after: encodeCursor(now!.t, '0'), shown: [] };
  }
  const state = followState(rows, { after: undefined, shown: [] });
  // None of the rows is settled: continue after the oldest on screen.
  return state.after ? state : { after: encodeCursor(rows[0]!.cursor_time, rows[0]!.id), shown: rows.slice(1).map((r) => r.id) };
}

export function mountEvents(app: ConsoleApp, deps: PageDeps): void {
  app.get('/events', async (c) => {
    const parsed = fromQuery(c);
    const params = filterParams(parsed.form);
    const cursorText = c.req.query('cursor');
    const cursor = readCursor(cursorText);
    const follow = c.req.query('follow') === '1' && !cursor;
    const view = c.get('view');
    let error = parsed.error;
    if (cursorText && !cursor) error = 'cursor: not a cursor from a previous page; start again from the newest';
    const listing = error ? { items: [], next_cursor: null } : await query(() => listEvents(deps.sql, parsed.filter, { limit: PAGE_SIZE, cursor }));
    const state = follow && !error ? await followStart(deps, listing.items) : undefined;
    const replayable = !isEmptyFilter(parsed.filter) && !error;

    const body = html`<h1>Events</h1>
      ${filterForm(parsed.form, follow)}
      <div id="results">
        ${error ? notice('bad', error) : null}
        ${c.req.query('replayed') ? notice('good', `Put ${c.req.query('replayed')} events back to be folded again.`) : null}
        <p class="pager">
          ${follow
            ? html`<a href=${withParams(`${BASE}/events`, params)}>Stop following</a>`
            : html`<a href=${withParams(`${BASE}/events`, params, { follow: '1' })}>Follow new events</a>`}
          ${cursor ? html`<a href=${withParams(`${BASE}/events`, params)}>Newest</a>` : null}
          ${replayable ? html`<a href=${withParams(`${BASE}/events/replay`, params)}>Replay the events this filter matches…</a>` : null}
        </p>
        <div class="table-wrap">
          <table>
            <caption class="muted">${listing.items.length === 0 ? 'No events match.' : `${listing.items.length} events, newest first${cursor ? ' (older page)' : ''}.`}</caption>
            ${HEAD}
            <tbody id="rows">
              ${state ? followRow(params, state, false) : null}
              ${listing.items.map(eventRow)}
            </tbody>
          </table>
        </div>
        ${listing.next_cursor
          ? html`<p class="pager"><a rel="next" href=${withParams(`${BASE}/events`, params, { cursor: listing.next_cursor })}>Older events →</a></p>`
          : null}
      </div>`;
    return c.html(render(page(view, { title: 'Events', section: parsed.form.status.join() === 'FAILED' ? 'failed' : 'events', body, refreshSeconds: follow ? 10 : undefined })), error ? 400 : 200);
  });

  // A poll while following: the rows that arrived since, newest first, under a new follow row.
  app.get('/events/follow', async (c) => {
    const parsed = fromQuery(c);
    const after = readCursor(c.req.query('after'));
    if (parsed.error || !after) return c.body(null, 204);
    const previousShown = (c.req.query('shown') ?? '').split(',').filter((id) => /^\d{1,18}$/.test(id)).slice(0, FOLLOW_BATCH);
    const rows = await query(() => newerEvents(deps.sql, parsed.filter, after, FOLLOW_BATCH));
    const seen = new Set(previousShown);
    const fresh = rows.filter((r) => !seen.has(r.id)).reverse();
    const state = followState(rows, { after: c.req.query('after'), shown: previousShown });
    const out = html`${followRow(filterParams(parsed.form), state, rows.length === FOLLOW_BATCH)}${fresh.map(eventRow)}`;
    return c.html(renderFragment(out));
  });

  app.get('/events/replay', async (c) => {
    const parsed = fromQuery(c);
    const view = c.get('view');
    if (parsed.error || isEmptyFilter(parsed.filter)) {
      const body = html`<h1>Replay events</h1>${notice('bad', parsed.error ?? 'Choose a filter first: replaying every event is not offered here.')}
        <p><a href=${`${BASE}/events`}>Back to the events</a></p>`;
      return c.html(render(page(view, { title: 'Replay events', section: 'events', body })), 400);
    }
    const [matched, sample] = await query(() => Promise.all([countReplayable(deps.sql, parsed.filter), sampleReplayable(deps.sql, parsed.filter, REPLAY_SAMPLE)]));
    const params = filterParams(parsed.form);
    return c.html(render(page(view, { title: 'Replay events', section: 'events', body: bulkConfirm(view, parsed.form, params, matched, sample) })));
  });

  app.post('/events/replay', async (c) => {
    const form = await c.req.parseBody({ all: true });
    const get = (name: string) => {
      const v = form[name];
      return (Array.isArray(v) ? v : v === undefined ? [] : [v]).filter((x): x is string => typeof x === 'string');
    };
    const parsed = readFilter(get);
    if (parsed.error || isEmptyFilter(parsed.filter)) return c.redirect(withParams(`${BASE}/events/replay`, filterParams(parsed.form)), 303);
    const done = await query(() => replayEvents(deps.sql, parsed.filter, { batchSize: 1000 }));
    c.get('log').info({ filter: parsed.filter, replayed: done.replayed }, 'console: events replayed');
    return c.redirect(withParams(`${BASE}/events`, filterParams(parsed.form), { replayed: String(done.replayed) }), 303);
  });
}

function bulkConfirm(view: View, form: FilterForm, params: URLSearchParams, matched: number, sample: EventItem[]): Node {
  return html`<h1>Replay ${count(matched)} events?</h1>
    <p>These events match the filter ${html`<code>${params.toString() || 'all'}</code>`} and no worker holds them right now.
      Replay puts each back to be folded again, oldest first, in batches: its status becomes RECEIVED, its
      attempts 0, and it is due at once. Folding an event again is safe: rows that a newer snapshot
      wrote since are left as they are (the result says <em>stale</em>), rows it wrote itself are unchanged.</p>
    ${matched === 0
      ? notice('info', 'Nothing to replay.')
      : html`<form method="post" action=${`${BASE}/events/replay`}>
          ${csrfField(view)}
          ${form.status.map((s) => html`<input type="hidden" name="status" value=${s} />`)}
          ${(['source', 'type', 'from', 'to'] as const).map((k) => (form[k] ? html`<input type="hidden" name=${k} value=${form[k]} />` : null))}
          <p><button type="submit" class="danger">Replay ${count(matched)} events</button>
             <a class="button secondary" href=${withParams(`${BASE}/events`, params)}>Cancel</a></p>
        </form>`}
    ${sample.length > 0
      ? html`<h2>The first ${sample.length} it would replay</h2>
        <div class="table-wrap"><table>${HEAD}<tbody>${sample.map(eventRow)}</tbody></table></div>`
      : null}`;
}

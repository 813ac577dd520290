// Orphans: links still waiting for their parent object, oldest first, with the event that parked
// each. A few seconds old is normal under out-of-order delivery; hours old means the parent never came.
import { listOrphans } from '../../db/console.ts';
import { query } from '../../http/admin.ts';
import { html, render } from '../html.ts';
import { age, BASE, count, eventLink, objectLink, page, time } from '../layout.ts';
import type { ConsoleApp, PageDeps } from '../index.ts';

const PAGE_SIZE = 100;

export function mountOrphans(app: ConsoleApp, deps: PageDeps): void {
  app.get('/orphans', async (c) => {
    const offset = Math.max(0, Math.min(10_000_000, Number.parseInt(c.req.query('offset') ?? '0', 10) || 0));
    const { total, items } = await query(() => listOrphans(deps.sql, PAGE_SIZE, offset));
    const body = html`<h1>Orphans</h1>
      <p>Rows whose parent has not arrived: the child is written with its link empty, and the link waits here until the
        parent's event is folded. Seconds are normal when Stripe delivers out of order; hours mean the parent never came
        to this endpoint (another account, an event type not enabled, or an object older than the endpoint): backfill it
        with <code>npm run replay -- --file</code>.</p>
      <p><strong>${count(total)}</strong> links wait${total > 0 && offset > 0 ? `, showing from number ${count(offset + 1)}` : ''}.</p>
      ${items.length === 0
        ? null
        : html`<div class="table-wrap"><table>
            <caption class="muted">Oldest first</caption>
            <thead><tr><th scope="col">Waiting since</th><th scope="col">Age</th><th scope="col">Child</th><th scope="col">Link</th><th scope="col">Waits for</th><th scope="col">Parked by</th></tr></thead>
            <tbody>${items.map(
              (o) => html`<tr>
                <td>${time(o.since)}</td>
                <td class="num">${age(o.age_seconds)}</td>
                <td>${o.child_table} ${objectLink(o.child_id)}</td>
                <td class="mono">${o.link_column}</td>
                <td>${o.parent_table} ${objectLink(o.parent_id)}</td>
                <td>${o.event_row_id ? eventLink({ id: o.event_row_id, event_id: o.event_id }) : html`<span class="mono">${o.event_id}</span> <span class="muted">(purged)</span>`}
                  ${o.event_type ? html`<span class="muted mono">${o.event_type}</span>` : null}</td>
              </tr>`,
            )}</tbody>
          </table></div>`}
      <p class="pager">
        ${offset > 0 ? html`<a href=${`${BASE}/orphans${offset - PAGE_SIZE > 0 ? `?offset=${offset - PAGE_SIZE}` : ''}`}>← Older</a>` : null}
        ${offset + items.length < total ? html`<a rel="next" href=${`${BASE}/orphans?offset=${offset + PAGE_SIZE}`}>Newer →</a>` : null}
      </p>`;
    return c.html(render(page(c.get('view'), { title: 'Orphans', section: 'orphans', body })));
  });
}

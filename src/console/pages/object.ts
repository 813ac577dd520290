// One Stripe object, found by its id (cus_, in_, sub_, pi_...): its newest row, its parents and
// children as links, the links that still wait (for its parents, or for it), and its timeline:
// every event that touched it, in Stripe's order, marking the one whose snapshot the row holds.
import {
  findObject,
  objectChildren,
  objectManyParents,
  objectPending,
  objectTimeline,
  type FoundObject,
  type PendingLink,
  type TimelineEntry,
} from '../../db/console.ts';
import { parseEventRef } from '../../db/event-filter.ts';
import { BadRequestError } from '../../errors.ts';
import { query } from '../../http/admin.ts';
import { objectOfId, SPECS } from '../../stripe/catalog.ts';
import { html, render, type Node } from '../html.ts';
import { jsonTree } from '../json-tree.ts';
import { age, BASE, count, eventLink, objectLink, page, status, time, type View } from '../layout.ts';
import type { ConsoleApp, PageDeps } from '../index.ts';

const ID = /^[A-Za-z0-9_.-]{3,255}$/;

/** The objects that carry this one embedded in their snapshots (a subscription carries its items). */
function carrierIds(found: FoundObject, waits: PendingLink[]): string[] {
  const ids: string[] = [];
  for (const carrier of SPECS.values()) {
    if (!carrier.embeds.some((e) => e.object === found.spec.object)) continue;
    for (const link of found.spec.links) {
      if (link.parent !== carrier.object) continue;
      const set = found.row[link.column];
      if (typeof set === 'string') ids.push(set);
      for (const w of waits) if (w.link_column === link.column) ids.push(w.parent_id);
    }
  }
  return [...new Set(ids)];
}

function timelineTable(entries: TimelineEntry[], winner: string | undefined): Node {
  if (entries.length === 0) return html`<p class="muted">No stored event is about this object (retention may have purged them).</p>`;
  return html`<div class="table-wrap"><table>
    <caption class="muted">${count(entries.length)} events, in the order Stripe created them</caption>
    <thead><tr><th scope="col">Created</th><th scope="col">Event</th><th scope="col">Type</th><th scope="col">Status</th><th scope="col">Fold outcome</th><th scope="col">Snapshot</th></tr></thead>
    <tbody>${entries.map(
      (e) => html`<tr>
        <td>${time(e.created ?? e.received_at)}</td>
        <td>${eventLink(e)}</td>
        <td class="mono">${e.type}</td>
        <td>${status(e.status)}</td>
        <td>${e.outcome ? `${e.outcome.action}${e.outcome.version === null ? '' : ` → v${e.outcome.version}`}` : html`<span class="muted">–</span>`}</td>
        <td>${e.source === 'stripe' && e.event_id === winner ? html`<span class="status good">current</span>` : null}</td>
      </tr>`,
    )}</tbody>
  </table></div>`;
}

function pendingList(links: PendingLink[], now: Date, side: 'child' | 'parent'): Node {
  return html`<ul>${links.map(
    (l) => html`<li>
      ${side === 'child'
        ? html`<span class="mono">${l.link_column}</span> waits for ${l.parent_table} ${objectLink(l.parent_id)}`
        : html`${l.child_table} ${objectLink(l.child_id)} <span class="mono">${l.link_column}</span> waits for it`}
      since ${time(l.since)} (${age((now.getTime() - l.since.getTime()) / 1000)}), parked by
      ${l.event_row_id ? eventLink({ id: l.event_row_id, event_id: l.event_id }) : html`<span class="mono">${l.event_id}</span>`}
    </li>`,
  )}</ul>`;
}

async function objectPage(deps: PageDeps, view: View, id: string): Promise<{ node: Node; found: boolean }> {
  const found = await query(() => findObject(deps.sql, id));
  const now = new Date();
  if (!found) {
    // A parent that has not arrived has no row, but its children may wait for it.
    const object = objectOfId(id);
    const table = object ? SPECS.get(object)?.table : undefined;
    const [timeline, pending] = await query(() =>
      Promise.all([objectTimeline(deps.sql, id), table ? objectPending(deps.sql, table, id) : { waits: [], awaited: [] }]),
    );
    const awaited = pending.awaited;
    const body = html`<h1><span class="mono">${id}</span></h1>
      <p>No table holds a row for this id${timeline.length > 0 ? ' (it may be an object webhook-inbox does not fold, or one still waiting to be folded)' : ''}.</p>
      ${awaited.length > 0 ? html`<h2>Children waiting for it</h2>${pendingList(awaited, now, 'parent')}` : null}
      <h2>Timeline</h2>${timelineTable(timeline, undefined)}`;
    return { node: page(view, { title: id, section: 'objects', body }), found: false };
  }

  const { spec, row } = found;
  const [pending, children, many] = await query(() =>
    Promise.all([objectPending(deps.sql, spec.table, id), objectChildren(deps.sql, spec, id), objectManyParents(deps.sql, spec, id)]),
  );
  const timeline = await query(() =>
    objectTimeline(deps.sql, id, { table: spec.table, carriers: carrierIds(found, pending.waits), lastEventId: row.last_event_id }),
  );
  const refs = Object.entries(spec.columns).filter(([name, c]) => c.type === 'text' && name.endsWith('_id'));

  const body = html`<h1>${spec.object} <span class="mono">${id}</span></h1>
    <dl class="facts">
      <dt>Table</dt><dd class="mono">${spec.table}</dd>
      <dt>Status</dt><dd>${row.status ?? html`<span class="muted">none</span>`}${row.deleted ? html` <span class="status bad">deleted</span>` : null}</dd>
      ${typeof row.amount === 'number' ? html`<dt>Amount</dt><dd>${count(row.amount)} ${String(row.currency ?? '')}</dd>` : null}
      <dt>Created at Stripe</dt><dd>${time(row.created as string | null)}</dd>
      <dt>Version</dt><dd>${String(row.version)} <span class="muted">(changes so far)</span></dd>
      <dt>Snapshot from</dt><dd><span class="mono">${row.last_event_id}</span>, created ${time(row.last_event_created)}</dd>
      <dt>Written</dt><dd>${time(row.updated_at)}</dd>
    </dl>

    <div class="cols">
      <section aria-labelledby="parents">
        <h2 id="parents">Parents</h2>
        ${spec.links.length + refs.length + many.length === 0
          ? html`<p class="muted">This object has no parents.</p>`
          : html`<ul>
              ${spec.links.map((l) => {
                const value = row[l.column];
                const waits = pending.waits.filter((w) => w.link_column === l.column);
                return html`<li><span class="mono">${l.column}</span>: ${typeof value === 'string'
                  ? objectLink(value)
                  : waits.length > 0
                    ? html`<span class="status warn">waits</span> for ${objectLink(waits[0]!.parent_id)} since ${time(waits[0]!.since)}`
                    : html`<span class="muted">none</span>`}</li>`;
              })}
              ${refs.map(([name]) => {
                const value = row[name];
                return html`<li><span class="mono">${name}</span>: ${typeof value === 'string' ? objectLink(value) : html`<span class="muted">none</span>`} <span class="muted">(reference, no foreign key)</span></li>`;
              })}
              ${many.map((m) => html`<li><span class="mono">${m.table}</span>: ${m.ids.length === 0 ? html`<span class="muted">none</span>` : m.ids.map((p) => html`${objectLink(p)} `)}</li>`)}
            </ul>`}
        ${pending.waits.length > 0 ? html`<h3>Links still waiting for their parent</h3>${pendingList(pending.waits, now, 'child')}` : null}
      </section>
      <section aria-labelledby="children">
        <h2 id="children">Children</h2>
        ${children.length === 0 ? html`<p class="muted">No rows point at this object.</p>` : null}
        ${children.map(
          (ch) => html`<h3 class="mono">${ch.table}.${ch.column} <span class="muted">(${count(ch.total)})</span></h3>
            <ul>${ch.rows.map((r) => html`<li>${objectLink(r.id)} ${r.status ? html`<span class="muted">${r.status}</span>` : null}${r.deleted ? ' (deleted)' : ''}</li>`)}
            ${ch.total > ch.rows.length ? html`<li class="muted">and ${count(ch.total - ch.rows.length)} more</li>` : null}</ul>`,
        )}
        ${pending.awaited.length > 0 ? html`<h3>Children waiting for it</h3>${pendingList(pending.awaited, now, 'parent')}` : null}
      </section>
    </div>

    <h2>Timeline</h2>
    ${timelineTable(timeline, row.last_event_id)}

    <h2>Newest snapshot</h2>
    ${jsonTree(row.data, 2)}`;
  return { node: page(view, { title: `${spec.object} ${id}`, section: 'objects', body }), found: true };
}

export function mountObject(app: ConsoleApp, deps: PageDeps): void {
  // The search box: an event reference goes to the event, anything else to the object.
  app.get('/objects', (c) => {
    const text = (c.req.query('id') ?? '').trim();
    if (text === '') return c.redirect(BASE, 303);
    if (parseEventRef(text)) return c.redirect(`${BASE}/events/${encodeURIComponent(text)}`, 303);
    return c.redirect(`${BASE}/objects/${encodeURIComponent(text)}`, 303);
  });

  app.get('/objects/:id', async (c) => {
    const id = c.req.param('id');
    if (!ID.test(id)) throw new BadRequestError('id: expected a Stripe id such as cus_9Xyz or in_1Abc (letters, digits, _ . -)');
    const { node, found } = await objectPage(deps, c.get('view'), id);
    return c.html(render(node), found ? 200 : 404);
  });
}

// Overview: the first answers at 3 a.m. Is anything failing, since when, how far behind are the
// workers, what waits for a parent; and per-minute charts of deliveries received, events folded and
// the backlog over the last hour and day. It updates itself every 15 s (htmx; without JavaScript
// it reloads), and shows the same numbers as text for readers without JavaScript.
import { failingSubscriptions, minuteSeries, overview, sentSeries, totals, type MinuteSeries, type SentSeries } from '../../db/console.ts';
import { query } from '../../http/admin.ts';
import type { Logger } from '../../log.ts';
import { chart, mean, sentBuckets, sentChart } from '../chart.ts';
import { html, render, type Node } from '../html.ts';
import { BASE, ageSince, count, page, time } from '../layout.ts';
import type { ConsoleApp, PageDeps } from '../index.ts';

const REFRESH_S = 15;
/** PROCESSED and IGNORED are most of the table: recounted in the background at most this often. */
const TOTALS_EVERY_MS = 60_000;
/** The day's charts likewise: reading a day of minutes walks two indexes over every event of the day. */
const DAY_EVERY_MS = 60_000;

/** `shown` is what the chart draws, `raw` the minutes its numbers are counted from. */
function charts(prefix: string, shown: MinuteSeries, raw: MinuteSeries, note: string, sent: { shown: SentSeries; raw: SentSeries }): Node {
  return html`<div class="charts">
    ${chart(`${prefix}-received`, `Deliveries received per minute${note}`, shown.minutes, [{ label: 'received', values: shown.received, raw: raw.received }], 'per minute')}
    ${chart(`${prefix}-folded`, `Events folded per minute${note}`, shown.minutes, [
      { label: 'folded', values: shown.folded, raw: raw.folded, kind: 'good' },
      { label: 'failed', values: shown.failed, raw: raw.failed, kind: 'bad' },
    ], 'per minute')}
    ${chart(`${prefix}-backlog`, 'Backlog (events waiting to be folded)', shown.minutes, [{ label: 'backlog', values: shown.backlog, raw: raw.backlog, kind: 'warn' }], 'events')}
    ${sentChart(`${prefix}-sent`, `Deliveries sent to subscribers per minute${note}`, sent.shown, sent.raw)}
  </div>`;
}

/**
 * A day of minutes in buckets of `size` minutes: rates as the mean per minute (a day of single
 * minutes is mostly noise at 1280 px), the backlog as it stood at the end of each bucket.
 */
function buckets(s: MinuteSeries, size: number): MinuteSeries {
  const out: MinuteSeries = { minutes: [], received: [], folded: [], failed: [], backlog: [] };
  for (let i = s.minutes.length % size; i < s.minutes.length; i += size) {
    out.minutes.push(s.minutes[i]!);
    out.received.push(mean(s.received, i, size));
    out.folded.push(mean(s.folded, i, size));
    out.failed.push(mean(s.failed, i, size));
    out.backlog.push(s.backlog[Math.min(i + size, s.minutes.length) - 1]!);
  }
  return out;
}

function card(label: string, value: string, note: Node | string | null, options: { href?: string; kind?: 'bad' | 'warn' } = {}): Node {
  const inner = html`<span class="label">${label}</span><span class="value">${value}</span>${note ? html`<span class="note">${note}</span>` : null}`;
  return html`<li class=${`card ${options.kind ?? ''}`}>${options.href ? html`<a href=${options.href}>${inner}</a>` : inner}</li>`;
}

/**
 * A value too slow to compute on a page's time (PROCESSED and IGNORED counted exactly; a day of
 * minutes on millions of events), refreshed in the background at most every `everyMs`: a page
 * shows the last one with its age and never waits for it.
 */
function inBackground<T>(load: () => Promise<T>, everyMs: number, log: Logger, what: string): () => { value: T; at: Date } | undefined {
  let last: { value: T; at: Date } | undefined;
  let running = false;
  let startedAt = 0;
  return () => {
    if (!running && Date.now() - startedAt >= everyMs) {
      running = true;
      startedAt = Date.now();
      const at = new Date();
      load()
        .then((value) => (last = { value, at }))
        .catch((err) => log.warn({ err: (err as Error).message }, `console: could not read ${what}`))
        .finally(() => (running = false));
    }
    return last;
  };
}

export function mountOverview(app: ConsoleApp, deps: PageDeps): void {
  const finished = inBackground(() => totals(deps.sql), TOTALS_EVERY_MS, deps.log, 'the finished events');
  // The day's backlog is worked back from the backlog when the day was read.
  const lastDay = inBackground(
    async () => ({
      folded: await minuteSeries(deps.sql, 24 * 60, (await overview(deps.sql)).received),
      sent: await sentSeries(deps.sql, 24 * 60),
    }),
    DAY_EVERY_MS,
    deps.log,
    "the day's minutes",
  );

  app.get('/', async (c) => {
    const o = await query(() => overview(deps.sql));
    const [hour, sentHour, subs] = await query(() =>
      Promise.all([minuteSeries(deps.sql, 60, o.received), sentSeries(deps.sql, 60), failingSubscriptions(deps.sql)]),
    );
    const t = finished()?.value;
    const day = lastDay();
    const failedHref = `${BASE}/events?status=FAILED`;
    const body = html`<h1>Overview</h1>
      <div id="overview" hx-get=${BASE} hx-select="#overview" hx-trigger=${`every ${REFRESH_S}s`} hx-swap="outerHTML">
        <p class="muted">As of ${time(o.now)}; updates every ${REFRESH_S} s.</p>
        <ul class="cards">
          ${card('Failed', count(o.failed), o.failed > 0 ? html`since ${ageSince(o.failed_oldest, o.now)} ago, last ${ageSince(o.failed_newest, o.now)} ago` : 'none', {
            href: failedHref,
            kind: o.failed > 0 ? 'bad' : undefined,
          })}
          ${card('Waiting to be folded', count(o.received), o.received > 0 ? `oldest waits ${ageSince(o.oldest_unprocessed, o.now)}` : 'none', {
            href: `${BASE}/events?status=RECEIVED`,
            kind: o.oldest_unprocessed && o.now.getTime() - o.oldest_unprocessed.getTime() > 60_000 ? 'warn' : undefined,
          })}
          ${card('Retrying', count(o.retrying), 'failed at least once, will retry', { kind: o.retrying > 0 ? 'warn' : undefined, href: `${BASE}/events?status=RECEIVED` })}
          ${card('Pending links', count(o.pending_links), o.pending_links > 0 ? `oldest waits ${ageSince(o.oldest_pending_link, o.now)}` : 'none', {
            href: `${BASE}/orphans`,
            kind: o.oldest_pending_link && o.now.getTime() - o.oldest_pending_link.getTime() > 3_600_000 ? 'warn' : undefined,
          })}
          ${card('Failing subscriptions', count(subs.failing), subs.total === 0 ? 'no subscription' : subs.failing > 0 && subs.since ? `of ${count(subs.total)}, failing since ${ageSince(subs.since, o.now)} ago` : `of ${count(subs.total)}`, {
            href: `${BASE}/subscriptions`,
            kind: subs.failing > 0 ? 'bad' : undefined,
          })}
          ${card('Processed', t ? count(t.processed) : '…', t ? `counted ${ageSince(t.counted_at, o.now)} ago` : 'being counted')}
          ${card('Ignored', t ? count(t.ignored) : '…', 'types not folded')}
        </ul>
        <h2>Last hour</h2>
        ${charts('hour', hour, hour, '', { shown: sentHour, raw: sentHour })}
        <h2>Last 24 hours</h2>
        ${day
          ? html`<p class="muted">As of ${time(day.at)}; read again at most every ${DAY_EVERY_MS / 1000} s.</p>
              ${charts('day', buckets(day.value.folded, 10), day.value.folded, ' (mean of each 10 minutes)', {
                shown: sentBuckets(day.value.sent, 10),
                raw: day.value.sent,
              })}`
          : html`<p class="muted">Being read; shown at the next update.</p>`}
      </div>`;
    return c.html(render(page(c.get('view'), { title: 'Overview', section: 'overview', body, charts: true, refreshSeconds: 60 })));
  });
}

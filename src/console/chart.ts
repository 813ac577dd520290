// One per-minute chart: a figure whose numbers travel in data-chart (drawn by assets/console.js
// with uPlot) and are also said in words below it, for readers without JavaScript or without
// sight. Shared by the overview and the subscription pages; only markup, no data access.
import type { SentSeries } from '../db/console.ts';
import { html, type Node } from './html.ts';
import { count } from './layout.ts';

export type Series = { label: string; values: number[]; kind?: 'good' | 'bad' | 'warn' };
export type Unit = 'per minute' | 'events';

/** What a series says in words. */
function summary(label: string, raw: number[], unit: Unit): string {
  const last = raw.at(-1) ?? 0;
  const peak = Math.max(0, ...raw);
  if (unit === 'events') return `${label}: now ${count(last)}, highest ${count(peak)}`;
  return `${label}: ${count(raw.reduce((a, b) => a + b, 0))} in all, ${count(last)} in the last minute, at most ${count(peak)} in one minute`;
}

/** `values` is what the chart draws, `raw` the minutes its numbers are counted from. */
export function chart(id: string, title: string, minutes: number[], series: (Series & { raw: number[] })[], unit: Unit): Node {
  const spec = JSON.stringify({ x: minutes, series: series.map(({ raw: _, ...s }) => s), unit });
  return html`<figure class="chart">
    <figcaption id=${`${id}-title`}>${title}</figcaption>
    <div class="plot" data-chart=${spec} role="img" aria-labelledby=${`${id}-title`} aria-describedby=${`${id}-numbers`}></div>
    <p class="numbers" id=${`${id}-numbers`}>${series.map((s) => summary(s.label, s.raw, unit)).join('; ')}.</p>
  </figure>`;
}

/** Mean per minute over each `size` minutes: a day of single minutes is mostly noise at 1280 px. */
export function mean(values: number[], from: number, size: number): number {
  return Math.round((values.slice(from, from + size).reduce((a, b) => a + b, 0) / size) * 10) / 10;
}

export function sentBuckets(s: SentSeries, size: number): SentSeries {
  const out: SentSeries = { minutes: [], sent: [], failed: [] };
  for (let i = s.minutes.length % size; i < s.minutes.length; i += size) {
    out.minutes.push(s.minutes[i]!);
    out.sent.push(mean(s.sent, i, size));
    out.failed.push(mean(s.failed, i, size));
  }
  return out;
}

/** Delivery attempts per minute and their failures. */
export function sentChart(id: string, title: string, shown: SentSeries, raw: SentSeries): Node {
  return chart(id, title, shown.minutes, [
    { label: 'sent', values: shown.sent, raw: raw.sent },
    { label: 'failed', values: shown.failed, raw: raw.failed, kind: 'bad' },
  ], 'per minute');
}

// The page shell every console page shares (head, skip link, navigation, object search, sign-out)
// and the small pieces pages repeat: times and ages, status badges, links to events and objects.
// Only markup: no data access.
import type { Assets } from './assets.ts';
import { html, type Child, type Node } from './html.ts';

export const BASE = '/console';

/** What every page needs from the request: where assets are, and the session's CSRF token. */
export type View = { assets: Assets; csrf: string | undefined };

export type Section = 'overview' | 'events' | 'failed' | 'orphans' | 'objects' | 'subscriptions' | 'deliveries';

const NAV: { section: Section; label: string; href: string }[] = [
  { section: 'overview', label: 'Overview', href: `${BASE}` },
  { section: 'events', label: 'Events', href: `${BASE}/events` },
  { section: 'failed', label: 'Failed', href: `${BASE}/events?status=FAILED` },
  { section: 'orphans', label: 'Orphans', href: `${BASE}/orphans` },
  { section: 'subscriptions', label: 'Subscriptions', href: `${BASE}/subscriptions` },
  { section: 'deliveries', label: 'Deliveries', href: `${BASE}/deliveries` },
];

// htmx reads its settings from this tag. No eval and no inline styles (the CSP forbids both), and
// requests only to this origin.
const HTMX_CONFIG = JSON.stringify({
  includeIndicatorStyles: false,
  allowEval: false,
  allowScriptTags: false,
  selfRequestsOnly: true,
  historyCacheSize: 0,
});

export function page(
  view: View,
  options: { title: string; section?: Section; body: Child; charts?: boolean; refreshSeconds?: number },
): Node {
  const { assets } = view;
  return html`<html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="no-referrer" />
      <meta name="htmx-config" content=${HTMX_CONFIG} />
      <title>${options.title} · webhook-inbox</title>
      <link rel="icon" href="data:," />
      <link rel="stylesheet" href=${assets.url('console.css')} />
      ${options.charts ? html`<link rel="stylesheet" href=${assets.url('uPlot.min.css')} />` : null}
      ${options.refreshSeconds ? html`<noscript><meta http-equiv="refresh" content=${String(options.refreshSeconds)} /></noscript>` : null}
      <script src=${assets.url('htmx.min.js')} defer></script>
      ${options.charts ? html`<script src=${assets.url('uPlot.iife.min.js')} defer></script>` : null}
      <script src=${assets.url('console.js')} defer></script>
    </head>
    <body>
      <a class="skip" href="#main">Skip to content</a>
      ${view.csrf === undefined ? null : header(view, options.section)}
      <main id="main" tabindex="-1">${options.body}</main>
    </body>
  </html>`;
}

function header(view: View, section: Section | undefined): Node {
  return html`<header class="top">
    <a class="brand" href=${BASE}>webhook-inbox</a>
    <nav aria-label="Console">
      <ul>
        ${NAV.map(
          (n) => html`<li><a href=${n.href} aria-current=${n.section === section ? 'page' : undefined}>${n.label}</a></li>`,
        )}
      </ul>
    </nav>
    <form class="find" method="get" action=${`${BASE}/objects`} role="search">
      <input type="search" name="id" aria-label="Stripe id (cus_, in_, sub_, pi_...) or event id" placeholder="cus_..., in_..., evt_..." required />
      <button type="submit">Find</button>
    </form>
    <form class="logout" method="post" action=${`${BASE}/signout`}>
      <input type="hidden" name="csrf" value=${view.csrf} />
      <button type="submit">Sign out</button>
    </form>
  </header>`;
}

/** A hidden CSRF field for a form of this session. */
export function csrfField(view: View): Node {
  return html`<input type="hidden" name="csrf" value=${view.csrf ?? ''} />`;
}

// ---- Small pieces ----------------------------------------------------------------------------------

/** 2026-12-01 23:38:24Z, in a <time> element. */
export function time(value: Date | string | null | undefined): Child {
  if (value === null || value === undefined) return html`<span class="muted">–</span>`;
  const d = value instanceof Date ? value : new Date(value);
  const iso = d.toISOString();
  return html`<time datetime=${iso}>${iso.slice(0, 19).replace('T', ' ')}Z</time>`;
}

/** "45 s", "12 min", "3 h 5 min", "2 d 4 h". */
export function age(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

export function ageSince(then: Date | null | undefined, now: Date): string {
  return then ? age((now.getTime() - then.getTime()) / 1000) : '–';
}

export function count(n: number): string {
  return n.toLocaleString('en-US');
}

export function status(value: string | null | undefined): Node {
  return html`<span class=${`status ${value ?? 'none'}`}>${value ?? '–'}</span>`;
}

export function eventLink(e: { id: string; source?: string; event_id?: string }, label?: Child): Node {
  return html`<a class="mono" href=${`${BASE}/events/${encodeURIComponent(e.id)}`}>${label ?? e.event_id ?? e.id}</a>`;
}

export function objectLink(id: string): Node {
  return html`<a class="mono" href=${`${BASE}/objects/${encodeURIComponent(id)}`}>${id}</a>`;
}

export function notice(kind: 'bad' | 'good' | 'info', text: Child): Node {
  return html`<div class=${`notice ${kind === 'info' ? '' : kind}`} role=${kind === 'bad' ? 'alert' : 'status'}>${text}</div>`;
}

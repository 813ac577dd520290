// The events filter as the console's forms and links carry it: the operator's own text (so "24h"
// stays relative in a link), parsed with the admin API's vocabulary (db/event-filter.ts) so both
// accept and refuse the same things.
import { z } from 'zod';
import { checkWindow, decodeCursor, filterFields, type EventFilter } from '../db/event-filter.ts';
import { EVENT_STATUSES } from '../db/schema.ts';

/** What the form sent, as text. */
export type FilterForm = { status: string[]; source: string; type: string; from: string; to: string };

const schema = z.object({ ...filterFields }).superRefine(checkWindow);

export type ParsedFilter = { form: FilterForm; filter: EventFilter; error?: string };

/** Reads the filter from a query string or a posted form (repeated `status`, empty fields = unset). */
export function readFilter(get: (name: string) => string[]): ParsedFilter {
  const one = (name: string) => (get(name)[0] ?? '').trim();
  const form: FilterForm = {
    status: get('status').flatMap((s) => s.split(',')).map((s) => s.trim().toUpperCase()).filter((s) => s !== ''),
    source: one('source'),
    type: one('type'),
    from: one('from'),
    to: one('to'),
  };
  const input: Record<string, unknown> = {};
  if (form.status.length > 0) input.status = form.status;
  for (const k of ['source', 'type', 'from', 'to'] as const) if (form[k] !== '') input[k] = form[k];
  const parsed = schema.safeParse(input);
  if (parsed.success) return { form, filter: parsed.data };
  const issue = parsed.error.issues[0]!;
  return { form, filter: {}, error: `${String(issue.path[0] ?? 'filter')}: ${issue.message}` };
}

/** The filter as query parameters, for links that keep it. */
export function filterParams(form: FilterForm): URLSearchParams {
  const params = new URLSearchParams();
  for (const s of form.status) if ((EVENT_STATUSES as readonly string[]).includes(s)) params.append('status', s);
  for (const k of ['source', 'type', 'from', 'to'] as const) if (form[k] !== '') params.set(k, form[k]);
  return params;
}

export function withParams(path: string, params: URLSearchParams, extra: Record<string, string | undefined> = {}): string {
  const all = new URLSearchParams(params);
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) all.set(k, v);
  const q = all.toString();
  return q ? `${path}?${q}` : path;
}

export function readCursor(text: string | undefined): { receivedAt: string; id: string } | undefined {
  return text ? decodeCursor(text) : undefined;
}

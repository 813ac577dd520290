// A JSON value as a tree of nested <details>: every object and array folds without JavaScript, and
// every key and value is text (escaped by the renderer). A value too large to be read as a tree is
// shown formatted as one block instead.
import { html, type Child, type Node } from './html.ts';

const MAX_NODES = 3000;

function size(value: unknown, budget: { left: number }): void {
  if (--budget.left < 0) return;
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) {
      size(v, budget);
      if (budget.left < 0) return;
    }
  }
}

function leaf(value: unknown): Node {
  if (value === null) return html`<span class="z">null</span>`;
  if (typeof value === 'string') return html`<span class="s">${JSON.stringify(value)}</span>`;
  if (typeof value === 'number') return html`<span class="n">${String(value)}</span>`;
  if (typeof value === 'boolean') return html`<span class="b">${String(value)}</span>`;
  return html`<span>${JSON.stringify(value)}</span>`;
}

function branch(key: string | undefined, value: unknown, depth: number, openDepth: number): Child {
  const label = key === undefined ? null : html`<span class="k">${key}</span>: `;
  if (value === null || typeof value !== 'object') return html`<div class="row">${label}${leaf(value)}</div>`;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  const shape = Array.isArray(value) ? `[${entries.length}]` : `{${entries.length}}`;
  if (entries.length === 0) return html`<div class="row">${label}<span class="z">${Array.isArray(value) ? '[]' : '{}'}</span></div>`;
  return html`<details open=${depth < openDepth}>
    <summary>${label}<span class="muted">${shape}</span></summary>
    ${entries.map(([k, v]) => branch(k, v, depth + 1, openDepth))}
  </details>`;
}

/** `openDepth`: levels open at first (the rest is folded). */
export function jsonTree(value: unknown, openDepth = 3): Node {
  const budget = { left: MAX_NODES };
  size(value, budget);
  if (budget.left < 0) return html`<pre class="json">${JSON.stringify(value, null, 2)}</pre>`;
  return html`<div class="json">${branch(undefined, value, 0, openDepth)}</div>`;
}

// The console's templates: Hono's own JSX (hono/jsx renders and escapes), written as tagged
// templates because Node runs .ts files by stripping types and cannot compile .tsx. htm turns each
// template into hono/jsx calls once and caches it; every ${value} is escaped when rendered.
import htmModule from 'htm';
import { jsx, Fragment } from 'hono/jsx';

// htm's types describe its CommonJS build; Node imports its ES module, whose default is the function.
const htm = htmModule as unknown as typeof htmModule.default;

export type Node = ReturnType<typeof jsx>;
/** Anything a template accepts as a child. */
export type Child = Node | string | number | null | undefined | false | Child[];

const bound = htm.bind(jsx);

/** A template with one root element (or several, wrapped in a fragment). */
export function html(strings: TemplateStringsArray, ...values: unknown[]): Node {
  const out = bound(strings, ...values);
  return Array.isArray(out) ? jsx(Fragment, {}, ...out) : out;
}

/** Renders a page or fragment to the string a response sends. */
export function render(node: Node): string {
  return '<!doctype html>' + String(node);
}

/** Renders a fragment for htmx to swap in (no doctype). */
export function renderFragment(node: Node): string {
  return String(node);
}

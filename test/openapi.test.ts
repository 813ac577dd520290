// /openapi.json documents every route the app serves, and nothing it does not.
import t from 'tap';
import { createTestDatabase } from './helpers/db.ts';
import { testApp } from './helpers/app.ts';

const db = await createTestDatabase(t);
const app = testApp(db.sql, { ADMIN_TOKEN: 'admin-token-0123456789abcdef' });

t.test('every route is in /openapi.json and every documented path is served', async (t) => {
  const res = await app.request('/openapi.json');
  t.equal(res.status, 200);
  const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
  t.match(doc.openapi, /^3\.1/);
  const documented = new Set(
    Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)),
  );
  const served = new Set(
    app.routes
      // The console's HTML pages (/console) are for browsers, not part of the JSON API.
      .filter((r) => r.method !== 'ALL' && !r.path.startsWith('/console'))
      .map((r) => `${r.method} ${r.path.replace(/:(\w+)/g, '{$1}').replace(/\/$/, '') || '/'}`),
  );
  t.same([...served].filter((r) => !documented.has(r)).sort(), [], 'no route without its entry');
  t.same([...documented].filter((r) => !served.has(r)).sort(), [], 'no entry without its route');
});

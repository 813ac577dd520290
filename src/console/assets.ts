// The console's static files: its stylesheet and chart script, and htmx and uPlot served from
// node_modules (no CDN, no build step). Read once at startup; each URL carries a hash of its
// content, so browsers may keep a file forever and a new version gets a new URL.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Hono } from 'hono';

const require = createRequire(import.meta.url);
const own = (name: string) => new URL(`./assets/${name}`, import.meta.url);
const dependency = (pkg: string, file: string) => path.join(path.dirname(require.resolve(`${pkg}/package.json`)), file);

const FILES = {
  'console.css': { from: own('console.css'), type: 'text/css; charset=utf-8' },
  'console.js': { from: own('console.js'), type: 'text/javascript; charset=utf-8' },
  'htmx.min.js': { from: dependency('htmx.org', 'dist/htmx.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.iife.min.js': { from: dependency('uplot', 'dist/uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  'uPlot.min.css': { from: dependency('uplot', 'dist/uPlot.min.css'), type: 'text/css; charset=utf-8' },
} as const;

export type AssetName = keyof typeof FILES;

type Asset = { body: Uint8Array<ArrayBuffer>; type: string; hash: string };

export type Assets = {
  /** The URL of a file, with its content hash. */
  url(name: AssetName): string;
};

/** Reads the files and serves them under `${base}/assets/`. */
export function mountAssets(app: Hono<any>, base: string): Assets {
  const assets = new Map<string, Asset>();
  for (const [name, file] of Object.entries(FILES)) {
    const body = new Uint8Array(readFileSync(file.from));
    assets.set(name, { body, type: file.type, hash: createHash('sha256').update(body).digest('hex').slice(0, 12) });
  }
  app.get('/assets/:name', (c) => {
    const asset = assets.get(c.req.param('name'));
    if (!asset) return c.text('not found', 404);
    const versioned = c.req.query('v') === asset.hash;
    return c.body(asset.body, 200, {
      'content-type': asset.type,
      'cache-control': versioned ? 'public, max-age=31536000, immutable' : 'no-cache',
      etag: `"${asset.hash}"`,
      'x-content-type-options': 'nosniff',
    });
  });
  return { url: (name) => `${base}/assets/${name}?v=${assets.get(name)!.hash}` };
}

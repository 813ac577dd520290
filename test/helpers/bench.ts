// Runs `npm run bench` (scripts/bench.ts) against a test database's server, for the tests that keep
// the benchmark's phases from rotting: its exit code, its output and the rows of its JSON.
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { root } from '../../scripts/lib/service.ts';
import { runScript, type Run } from './spawn.ts';

export type BenchRun = Run & { rows: Record<string, string | number>[] };

export async function runBench(databaseUrl: string, args: string[]): Promise<BenchRun> {
  const out = path.join(await mkdtemp(path.join(tmpdir(), 'bench-run-')), 'bench.json');
  const run = await runScript(process.execPath, [path.join(root, 'scripts/bench.ts'), ...args, '--out', out], { env: { DATABASE_URL: databaseUrl } });
  const rows = run.code === 0 ? (JSON.parse(await readFile(out, 'utf8')) as { rows: BenchRun['rows'] }).rows : [];
  return { ...run, rows };
}

// Runs `npm run bench` (scripts/bench.ts) as a child process against a test database's server, for
// the tests that keep the benchmark's phases from rotting: its exit code, its output and its JSON.
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { root } from '../../scripts/lib/service.ts';

export type BenchRun = { code: number | null; stdout: string; stderr: string; rows: Record<string, string | number>[] };

export async function runBench(databaseUrl: string, args: string[]): Promise<BenchRun> {
  const out = path.join(await mkdtemp(path.join(tmpdir(), 'bench-run-')), 'bench.json');
  const child = spawn(process.execPath, [path.join(root, 'scripts/bench.ts'), ...args, '--out', out], {
    env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b) => (stdout += b));
  child.stderr.on('data', (b) => (stderr += b));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const rows = code === 0 ? (JSON.parse(await readFile(out, 'utf8')) as { rows: BenchRun['rows'] }).rows : [];
  return { code, stdout, stderr, rows };
}

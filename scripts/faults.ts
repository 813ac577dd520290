// `node scripts/faults.ts`: runs the fault tests (test/fault-*.test.ts) one at a time, so each has
// the machine to itself, and prints one line per test and round: pass/fail, seconds, and the
// summary the test printed (sent, acknowledged, stored, processed, lost). For a flakiness check,
// repeat them; to pick some, name them.
//   node scripts/faults.ts [--rounds N] [test/fault-kill.test.ts ...]
// Uses test/run.ts, so it starts its own throwaway Postgres (or uses TEST_DATABASE_URL).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { root } from './lib/service.ts';

const { values: args, positionals } = parseArgs({
  options: { rounds: { type: 'string', default: '1' }, help: { type: 'boolean', short: 'h' } },
  allowPositionals: true,
});
if (args.help) {
  console.log(`usage: npm run faults -- [--rounds N] [test/fault-*.test.ts ...]

Runs the fault tests one at a time (each has the machine to itself) and prints, per test and
round, pass or FAIL, the seconds it took, and its summary: events sent, acknowledged, stored,
processed, lost. Each starts its own throwaway Postgres (or uses TEST_DATABASE_URL).

  test/fault-kill.test.ts         kill -9 the service under a steady stream of signed deliveries,
                                  restart it: every 200 is stored and folded, the graph equals
                                  the in-order fold
  test/fault-db-outage.test.ts    stop Postgres under load and start it again: 503s while down,
                                  never a 200 that is not stored, resumes without a restart
  test/fault-worker-kill.test.ts  kill -9 a worker process holding leased events: another
                                  folds them once the lease runs out

  --rounds N   run everything N times (a flakiness check; default 1)
  -h, --help   this text

Exit status: 0 all passed, 1 any failed.`);
  process.exit(0);
}
const rounds = Number(args.rounds);
const files = positionals.length
  ? positionals
  : readdirSync(path.join(root, 'test'))
      .filter((f) => /^fault-.*\.test\.ts$/.test(f))
      .sort()
      .map((f) => `test/${f}`);

let failed = 0;
for (let round = 1; round <= rounds; round++) {
  for (const file of files) {
    const started = Date.now();
    const child = spawn(process.execPath, [path.join(root, 'test/run.ts'), file], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const code: number = await new Promise((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
    // The tests' own summaries are tap comments nested inside the file's subtest.
    const summaries = out
      .split('\n')
      .filter((l) => /^\s{4,}# /.test(l) && !/# (Subtest|time=)/.test(l))
      .map((l) => l.trim().slice(2));
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (code !== 0) {
      failed++;
      process.stdout.write(out.split('\n').filter((l) => /not ok/.test(l)).join('\n') + '\n');
    }
    console.log(`${code === 0 ? 'pass' : 'FAIL'}  ${file}  round ${round}  ${seconds} s`);
    for (const s of summaries) console.log(`      ${s}`);
  }
}
console.log(`${files.length * rounds - failed} of ${files.length * rounds} passed`);
process.exit(failed === 0 ? 0 : 1);

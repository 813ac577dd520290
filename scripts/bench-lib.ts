// Shared pieces of the benchmark scripts: a database to run against, closed loops, percentiles
// and a table. The service process and signed deliveries come from lib/service.ts and lib/deliver.ts.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { freePort, startEmbeddedPostgres, type Embedded } from '../src/db/embedded.ts';

/**
 * DATABASE_URL when given, else a fresh embedded Postgres with durable (default) settings; for the
 * embedded one, also the pid of its postmaster, whose process tree the CPU meter reads.
 */
export async function benchDatabase(): Promise<{ url: string; label: string; postmasterPid?: number; stop: () => Promise<void> }> {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, label: 'DATABASE_URL', stop: async () => {} };
  const dir = path.join(tmpdir(), `webhook-inbox-bench-${randomBytes(4).toString('hex')}`);
  const embedded: Embedded = await startEmbeddedPostgres({ dir, port: await freePort(), database: 'webhook_inbox_bench' });
  // embedded.dir: where the data really is (as root it may have moved to where postgres can reach).
  const postmasterPid = Number(readFileSync(path.join(embedded.dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const stop = async () => {
    await embedded.stop();
    // Each run's cluster is a few hundred MB; left behind, a day of runs filled 22 GB of /tmp.
    await rm(embedded.dir, { recursive: true, force: true });
  };
  return { url: embedded.url, label: 'embedded Postgres (fsync on)', postmasterPid, stop };
}

// ---------------------------------------------------------------------------------------------
// CPU per row. On 2 cores the load generator, the service and Postgres share the machine, so what
// a row costs each of them decides the throughput. Read from /proc (Linux); elsewhere the columns
// stay empty.

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux architecture Node runs on.

/** utime + stime (+ cutime + cstime: children it has reaped) of a process, in seconds. */
function procCpu(pid: number, reaped: boolean): number {
  try {
    // Fields after "(comm) ": state is 0, so utime/stime/cutime/cstime are 11 to 14.
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)!.split(' ');
    const ticks = Number(f[11]) + Number(f[12]) + (reaped ? Number(f[13]) + Number(f[14]) : 0);
    return ticks / TICKS_PER_SECOND;
  } catch {
    return NaN; // gone, or no /proc
  }
}

/** CPU seconds of a Postgres cluster: the postmaster, every live child, and the ones it reaped. */
function clusterCpu(postmasterPid: number): number {
  let total = procCpu(postmasterPid, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.split(') ').at(-1)!.split(' ')[1]) === postmasterPid) total += procCpu(Number(entry), false) || 0;
    } catch {
      // exited meanwhile: the postmaster's reaped time has it, or will
    }
  }
  return total;
}

export type CpuSnapshot = { bench: number; service: number; postgres: number };

/** CPU seconds used so far by this process, the given service processes, and the cluster. */
export function cpuSnapshot(servicePids: (number | undefined)[], postmasterPid?: number): CpuSnapshot {
  const own = process.cpuUsage();
  const pids = servicePids.filter((p): p is number => p !== undefined);
  return {
    bench: (own.user + own.system) / 1e6,
    service: existsSync('/proc/self/stat') && pids.length ? pids.reduce((sum, p) => sum + procCpu(p, false), 0) : NaN,
    postgres: postmasterPid !== undefined && existsSync('/proc/self/stat') ? clusterCpu(postmasterPid) : NaN,
  };
}

/** Table columns: µs of CPU per row for each party, between two snapshots (empty where unknown). */
export function cpuPerRow(before: CpuSnapshot, after: CpuSnapshot, rows: number, parties: (keyof CpuSnapshot)[]): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const party of ['bench', 'service', 'postgres'] as const) {
    const us = ((after[party] - before[party]) * 1e6) / rows;
    out[`${party} µs`] = parties.includes(party) && Number.isFinite(us) ? Math.round(us) : '';
  }
  return out;
}

/** Runs `total` tasks with `concurrency` loops; returns per-task ms and the wall time. */
export async function closedLoop<T>(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<{ results: T[]; seconds: number }> {
  const results: T[] = new Array(total);
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return { results, seconds: (performance.now() - started) / 1000 };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function printTable(rows: Record<string, string | number>[]): void {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v ?? ''));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => `| ${vals.map((v, i) => v.padEnd(widths[i]!)).join(' | ')} |`;
  console.log(line(cols));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of rows) console.log(line(cols.map((c) => cell(r[c]))));
}

/**
 * Open loop: starts task i at start + i/rate whatever earlier tasks are doing, like senders that
 * do not wait for each other. Each task gets its scheduled time, so latency can be measured from
 * when the request was due (no coordinated omission).
 */
export async function openLoop<T>(
  rate: number,
  seconds: number,
  task: (i: number, dueAt: number) => Promise<T>,
): Promise<{ results: T[]; lagMs: number }> {
  const total = Math.round(rate * seconds);
  const started = performance.now();
  const pending: Promise<T>[] = [];
  let worstLag = 0;
  let i = 0;
  while (i < total) {
    const now = performance.now();
    while (i < total && started + (i * 1000) / rate <= now) {
      const dueAt = started + (i * 1000) / rate;
      worstLag = Math.max(worstLag, now - dueAt);
      pending.push(task(i, dueAt));
      i++;
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  return { results: await Promise.all(pending), lagMs: worstLag };
}

/** Like closedLoop, but for `seconds` of wall time: as many tasks as fit, `concurrency` at a time. */
export async function closedLoopFor<T>(
  seconds: number,
  concurrency: number,
  task: (i: number) => Promise<T>,
): Promise<{ results: T[]; seconds: number }> {
  const results: T[] = [];
  let next = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return { results, seconds: (performance.now() - started) / 1000 };
}

/** A new, empty database `name` on the server of `url` (dropped first if it exists); its URL. */
export async function freshDatabase(url: string, name: string): Promise<string> {
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
    await admin.unsafe(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const fresh = new URL(url);
  fresh.pathname = `/${name}`;
  return fresh.toString();
}

export async function dropDatabase(url: string, name: string): Promise<void> {
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${name} with (force)`).finally(() => admin.end());
}

// The bench's soak mode (`npm run bench -- --soak 30m --soak-rate 100`): the service as users
// start it, fed realistic signed Stripe events (scripts/lib/stream.ts) at a steady rate for a long
// time, its memory sampled every 10 s. Prints a line a minute and a summary row: whether RSS stays
// flat. Reads the service from outside only (/proc and its /metrics).
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Stripe from 'stripe';
import { cpuPerRow, cpuSnapshot, openLoop, percentile } from '../bench-lib.ts';
import { deliver, SECRET } from './deliver.ts';
import { startService } from './service.ts';
import { buildStream, type StripeEvent } from './stream.ts';

export type SoakContext = {
  databaseUrl: string;
  serviceEnv: Record<string, string>;
  workers: string;
  seconds: number;
  rate: number;
  progress: (message: string) => void;
  rows: Record<string, string | number>[];
};

type Sample = { at: number; rssMb: number; heapMb: number; heapTotalMb: number; externalMb: number };

/** "30m", "90s", "1h" or plain seconds, as seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!match) throw new Error(`--soak: '${text}' is not a duration; write it like 300, 90s, 30m or 1h`);
  return Number(match[1]) * { s: 1, m: 60, h: 3600 }[(match[2] ?? 's') as 's' | 'm' | 'h'];
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? NaN) / 1024;
}

/** The V8 heap and external memory the service reports on /metrics (prom-client's defaults). */
async function heapMb(url: string): Promise<{ heapMb: number; heapTotalMb: number; externalMb: number }> {
  const text = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
  const read = (name: string) => Number(new RegExp(`^webhook_inbox_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
  return { heapMb: read('nodejs_heap_size_used_bytes'), heapTotalMb: read('nodejs_heap_size_total_bytes'), externalMb: read('nodejs_external_memory_bytes') };
}

/** Least-squares slope of RSS against time, MB per minute. */
function slope(samples: Sample[]): number {
  const n = samples.length;
  if (n < 2) return NaN;
  const mx = samples.reduce((s, p) => s + p.at, 0) / n;
  const my = samples.reduce((s, p) => s + p.rssMb, 0) / n;
  const cov = samples.reduce((s, p) => s + (p.at - mx) * (p.rssMb - my), 0);
  const varx = samples.reduce((s, p) => s + (p.at - mx) ** 2, 0);
  return (cov / varx) * 60;
}

export async function soak(ctx: SoakContext): Promise<void> {
  const service = await startService(ctx.databaseUrl, { ...ctx.serviceEnv, WORKER_CONCURRENCY: ctx.workers });
  // Events made as they are needed (a 30-minute run is 180,000 of them), each signed when sent:
  // Stripe's signature tolerance is 5 minutes.
  let seed = randomInt(1, 2 ** 30);
  let queue: StripeEvent[] = [];
  const nextEvent = () => {
    if (queue.length === 0) queue = buildStream({ seed: seed++, customers: 100 });
    return queue.shift()!;
  };
  const samples: Sample[] = [];
  let minute: { ms: number[]; bad: number } = { ms: [], bad: 0 };
  const started = performance.now();
  const sample = async () => {
    const at = (performance.now() - started) / 1000;
    samples.push({ at, rssMb: rssMb(service.pid), ...(await heapMb(service.url)) });
  };
  await sample();
  ctx.progress(`soak: ${ctx.rate} req/s for ${ctx.seconds} s, service pid ${service.pid}, RSS ${samples[0]!.rssMb.toFixed(0)} MB at start`);
  const sampler = setInterval(() => void sample(), 10_000);
  const reporter = setInterval(() => {
    const s = samples.at(-1)!;
    const m = minute;
    minute = { ms: [], bad: 0 };
    ctx.progress(
      `soak: minute ${Math.round((performance.now() - started) / 60_000)}: RSS ${s.rssMb.toFixed(0)} MB, V8 heap used ${s.heapMb.toFixed(0)} of ${s.heapTotalMb.toFixed(0)} MB, ` +
        `external ${s.externalMb.toFixed(0)} MB; ${m.ms.length} acks, p50 ${percentile(m.ms, 50).toFixed(0)} ms, p99 ${percentile(m.ms, 99).toFixed(0)} ms` +
        (m.bad ? `, ${m.bad} not 200` : ''),
    );
  }, 60_000);
  const all: number[] = [];
  let bad = 0;
  const cpu = cpuSnapshot([service.pid]);
  let cpuRow: Record<string, string | number> = {};
  try {
    await openLoop(ctx.rate, ctx.seconds, async (_i, dueAt) => {
      const event = nextEvent();
      const body = JSON.stringify(event);
      const r = await deliver(service.url, { body, signature: Stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET }) });
      const ms = performance.now() - dueAt;
      if (r.status === 200) {
        minute.ms.push(ms);
        all.push(ms);
      } else {
        minute.bad++;
        bad++;
      }
      return undefined;
    });
    await sample();
    cpuRow = cpuPerRow(cpu, cpuSnapshot([service.pid]), all.length + bad, ['service']);
    // Where the V8 heap's committed memory is, by space: what to look at when RSS is high.
    const metrics = await fetch(`${service.url}/metrics`).then((r) => r.text(), () => '');
    const spaces = [...metrics.matchAll(/^webhook_inbox_nodejs_heap_space_size_total_bytes\{space="(\w+)"\} (\S+)$/gm)]
      .filter((m) => Number(m[2]) > 2 ** 20).map((m) => `${m[1]} ${(Number(m[2]) / 2 ** 20).toFixed(0)}`);
    ctx.progress(`soak: V8 heap spaces at the end, MB committed: ${spaces.join(', ')}`);
  } finally {
    clearInterval(sampler);
    clearInterval(reporter);
    await service.stop();
  }
  const rss = samples.map((s) => s.rssMb);
  const secondHalf = samples.filter((s) => s.at >= ctx.seconds / 2);
  ctx.rows.push({
    measure: `soak: ${ctx.rate} req/s of realistic events for ${Math.round(ctx.seconds / 60)} min, service RSS (${samples.length} samples)`,
    'rows/s': ctx.rate,
    'p50 ms': percentile(all, 50), 'p99 ms': percentile(all, 99), 'max ms': percentile(all, 100),
    'RSS start MB': Math.round(rss[0]!), 'RSS max MB': Math.round(Math.max(...rss)), 'RSS end MB': Math.round(rss.at(-1)!),
    'MB/min, 2nd half': Math.round(slope(secondHalf) * 100) / 100,
    'heap end MB': Math.round(samples.at(-1)!.heapMb),
    'service µs': cpuRow['service µs'] ?? '',
    ...(bad ? { 'non-200': bad } : {}),
  });
}

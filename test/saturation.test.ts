// watchSaturation: the signal that pauses folding while requests come to a saturated event loop.
// Real event-loop utilization, measured while this test keeps the loop busy or idle.
import t from 'tap';
import { watchSaturation } from '../src/service.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Keeps the event loop about 95% busy for `ms`, yielding briefly so timers still run. */
async function burn(ms: number, onSlice: () => void = () => {}) {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const slice = performance.now() + 19;
    while (performance.now() < slice);
    onSlice();
    await new Promise((r) => setImmediate(r));
  }
}

t.test('saturated only while the loop is busy and requests keep arriving', async (t) => {
  let requests = 0;
  const loop = watchSaturation(() => requests);
  t.teardown(loop.stop);

  await sleep(120);
  t.notOk(loop.saturated(), 'idle loop');

  let seenSaturated = false;
  await burn(300, () => {
    requests++;
    seenSaturated ||= loop.saturated();
  });
  t.ok(seenSaturated && loop.saturated(), 'busy loop with requests arriving');

  await burn(300);
  t.notOk(loop.saturated(), 'busy loop, but no request came: folding alone never pauses itself');

  requests++;
  await sleep(120);
  t.notOk(loop.saturated(), 'idle again');
});

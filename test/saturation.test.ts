// watchSaturation: the signal that pauses folding while requests come to a saturated event loop.
// Real event-loop utilization, measured while this test keeps the loop busy or idle.
import t from 'tap';
import { peakOver, watchSaturation } from '../src/worker/yield.ts';

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

t.test('peakOver: the most requests in flight over the last window or two, not only now', async (t) => {
  // Its own clock, so a loaded machine's late timers cannot move the windows under the test.
  let now = 0;
  const recent = peakOver(40, () => now);
  recent.see(20);
  recent.see(3);
  t.equal(recent.peak(), 20, 'a dip between two batches does not hide the burst');
  now = 50;
  recent.see(2);
  t.equal(recent.peak(), 20, 'still counted during the next window');
  now = 150;
  t.equal(recent.peak(), 0, 'forgotten once two windows passed with nothing seen');
});

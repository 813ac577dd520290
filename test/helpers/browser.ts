// A real Chromium for the console's tests and its README screenshots: Debian's package driven by
// playwright-core (a devDependency, so it lives under test/), which never downloads a browser of
// its own. Where no Chromium is installed the tests say so and are skipped (`apt-get install
// chromium`; .ci/run installs it).
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

/** The Chromium executable, or undefined where there is none. CHROMIUM_PATH overrides the search. */
export function findChromium(): string | undefined {
  const wanted = process.env.CHROMIUM_PATH;
  if (wanted) return existsSync(wanted) ? wanted : undefined;
  return CANDIDATES.find((p) => existsSync(p));
}

/** For `{ skip }`: false when a Chromium is there, else the reason. */
export function skipWithoutChromium(): string | false {
  return findChromium()
    ? false
    : `no Chromium found (${process.env.CHROMIUM_PATH ?? CANDIDATES.join(', ')}): apt-get install chromium, or set CHROMIUM_PATH`;
}

// Headless, no sandbox (the tests run as root in CI), and none of Chromium's own background
// connections: on a closed network they are refused, and they are noise anyway. playwright-core
// gives every launch a fresh profile directory of its own.
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export async function launchChromium(): Promise<Browser> {
  const executablePath = findChromium();
  if (!executablePath) throw new Error('no Chromium: check skipWithoutChromium() first');
  return chromium.launch({ executablePath, args: ARGS, headless: true, timeout: 60_000 });
}
